// Every registered strategy at the world size mpirun gives (CI: 2, 4, 8 ranks): the
// sharded outputs and gradients equal the single-rank reference within fp32 tolerance,
// and the bytes each group sent (the MPI backend's counters) equal the bytes the
// strategy's StepProgram declares, which is what the cost model prices. run() gets the
// host math (tests/comm/nccl_gpu_test.cpp passes the CUDA math), counted to show it is used.
#include <gtest/gtest.h>

#include <cmath>

#include "comm/mpi/mpi_communicator.h"
#include "comm/staging_communicator.h"
#include "comm/strategies/strategy.h"
#include "tests/comm/strategy_math_cases.h"

namespace seqscale::comm {
namespace {

class Strategy : public ::testing::TestWithParam<std::string> {};

// staged: through StagingCommunicator (host buffers copied into `mem` around each call,
// the path the strategies take over NCCL), whose counters must match the backend's.
void check_strategy(const StrategyDef* def, const RankLayout& layout, bool staged = false) {
  auto mpi = make_mpi_communicator(layout);
  HostMemory mem;
  std::unique_ptr<Communicator> wrapper;
  if (staged) wrapper = std::make_unique<StagingCommunicator>(*mpi, mem);
  Communicator* comm = staged ? wrapper.get() : mpi.get();
  const auto before = comm->snapshot();
  testing_cases::CountingMath math(host_strategy_math());
  const Tensors got = def->run(*comm, math, layout);
  EXPECT_GT(math.calls, 0) << def->name << " did its dense math without the StrategyMath it was given";
  const Tensors want = def->reference(layout, comm->rank());

  ASSERT_EQ(got.size(), want.size());
  for (const auto& [name, ref] : want) {
    auto it = got.find(name);
    ASSERT_NE(it, got.end()) << "missing tensor " << name;
    ASSERT_EQ(it->second.size(), ref.size()) << name;
    double worst = 0;
    std::size_t at = 0;
    for (std::size_t i = 0; i < ref.size(); ++i) {
      const double err = std::abs(static_cast<double>(it->second[i]) - ref[i]) / (1.0 + std::abs(ref[i]));
      if (err > worst) worst = err, at = i;
    }
    // fp32 with double accumulation on both sides; sums reordered across ranks.
    EXPECT_LE(worst, def->tolerance) << def->name << " " << name << "[" << at << "] = " << it->second[at]
                                     << ", reference " << ref[at] << " (rank " << comm->rank() << ")";
  }

  StepProgram declared;
  def->declare(layout, comm->rank(), declared);
  std::int64_t total = 0;
  for (int k = 0; k < kNumGroupKinds; ++k) {
    const auto g = static_cast<GroupKind>(k);
    EXPECT_EQ(bytes_since(before, *comm, g), declared.comm_bytes(g))
        << def->name << ": group " << group_name(g) << " sent bytes vs declared (rank " << comm->rank() << ")";
    total += declared.comm_bytes(g);
  }
  EXPECT_GT(total, 0) << def->name << " declares no communication";
  if (staged) {
    for (int k = 0; k < kNumGroupKinds; ++k)
      EXPECT_EQ(mpi->stats(static_cast<GroupKind>(k)).bytes, comm->stats(static_cast<GroupKind>(k)).bytes);
  }
}

// The strategy's axis spans the whole world.
TEST_P(Strategy, MatchesReferenceAndDeclaredBytes) {
  const StrategyDef* def = find_strategy(GetParam());
  ASSERT_NE(def, nullptr);
  check_strategy(def, RankLayout(def->dims(MpiSession::world_size())));
}

TEST_P(Strategy, ThroughHostStaging) {
  const StrategyDef* def = find_strategy(GetParam());
  ASSERT_NE(def, nullptr);
  check_strategy(def, RankLayout(def->dims(MpiSession::world_size())), true);
}

// The strategy's axis has 2 ranks and world/2 copies of it run at once on disjoint groups
// (pipeline: over dp; the others: over pp): groups are isolated, counters are per group.
TEST_P(Strategy, ConcurrentGroupsOfTwo) {
  const StrategyDef* def = find_strategy(GetParam());
  ASSERT_NE(def, nullptr);
  const int world = MpiSession::world_size();
  if (world % 2) GTEST_SKIP() << "needs an even world";
  ParallelDims d = def->dims(2);
  if (d.pp > 1) d.dp *= world / 2;
  else d.pp *= world / 2;
  check_strategy(def, RankLayout(d));
}

std::vector<std::string> names() {
  std::vector<std::string> out;
  for (const auto& d : registered_strategies()) out.push_back(d.name);
  return out;
}

INSTANTIATE_TEST_SUITE_P(All, Strategy, ::testing::ValuesIn(names()),
                         [](const auto& info) { return info.param; });

TEST(Strategies, AllTenAreRegistered) {
  for (const char* n : {"tensor_parallel", "megatron_sp", "ulysses", "zero1", "zero2", "zero3", "cpu_offload",
                        "pipeline_1f1b", "pipeline_interleaved", "dap", "lss", "moe_expert_parallel"})
    EXPECT_NE(find_strategy(n), nullptr) << n;
}

}  // namespace
}  // namespace seqscale::comm
