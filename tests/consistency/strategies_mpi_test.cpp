// measured == emitted, for every registered strategy at the world size mpirun gives (CI:
// 2, 4 and 8 ranks): run_checked() records every call the strategy's run() makes on the
// MPI backend (collective, group, group size, the bytes the backend counts, phase) and
// compares them in order with the ops its emitter (workloads/parallel/) gives for the
// same tiny shapes, the emitter the cost model composes; and the sharded outputs and
// gradients equal the single-rank reference within the strategy's fp32 tolerance. run()
// gets the host math (tests/comm/nccl_gpu_test.cpp passes the CUDA math), counted to
// show it is used.
#include <gtest/gtest.h>

#include <cmath>

#include "comm/mpi/mpi_communicator.h"
#include "comm/staging_communicator.h"
#include "comm/strategies/strategy.h"
#include "tests/comm/strategy_math_cases.h"
#include "tests/consistency/consistency.h"

namespace seqscale::comm {
namespace {

class Strategy : public ::testing::TestWithParam<std::string> {};

// staged: through StagingCommunicator (host buffers copied into `mem` around each call,
// the path the strategies take over NCCL), whose counters must match the backend's.
void check_strategy(const StrategyDef& def, const RankLayout& layout, bool staged = false) {
  auto mpi = make_mpi_communicator(layout);
  HostMemory mem;
  std::unique_ptr<Communicator> wrapper;
  if (staged) wrapper = std::make_unique<StagingCommunicator>(*mpi, mem);
  Communicator* comm = staged ? wrapper.get() : mpi.get();
  testing_cases::CountingMath math(host_strategy_math());
  Tensors got;
  try {
    got = run_checked(def, *comm, math, layout);
  } catch (const ExecutedNotEmitted& e) {
    FAIL() << e.what() << " [" << layout.describe() << "]";
  }
  EXPECT_GT(math.calls, 0) << def.name << " did its dense math without the StrategyMath it was given";
  EXPECT_FALSE(def.emit(layout, comm->rank()).empty()) << def.name << " emits no communication";

  const Tensors want = def.reference(layout, comm->rank());
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
    EXPECT_LE(worst, def.tolerance) << def.name << " " << name << "[" << at << "] = " << it->second[at]
                                    << ", reference " << ref[at] << " (rank " << comm->rank() << ")";
  }
  if (staged) {
    for (int k = 0; k < kNumGroupKinds; ++k)
      EXPECT_EQ(mpi->stats(static_cast<GroupKind>(k)).bytes, comm->stats(static_cast<GroupKind>(k)).bytes);
  }
}

const StrategyDef& strategy(const std::string& name) {
  const StrategyDef* def = find_strategy(name);
  if (!def) throw std::invalid_argument("no strategy " + name);
  return *def;
}

// The strategy's axes span the whole world (pipelines: tp 2 from 4 ranks, so the
// boundary goes in scatter/gather form; lss: seq x dp).
TEST_P(Strategy, RunsWhatItEmitsAndMatchesTheReference) {
  const StrategyDef& def = strategy(GetParam());
  check_strategy(def, RankLayout(def.dims(MpiSession::world_size())));
}

TEST_P(Strategy, ThroughHostStaging) {
  const StrategyDef& def = strategy(GetParam());
  check_strategy(def, RankLayout(def.dims(MpiSession::world_size())), true);
}

// The strategy's axes on 2 ranks, world/2 copies of it at once on disjoint groups
// (pipeline: over dp; the others: over pp): groups are isolated, recordings per rank.
TEST_P(Strategy, ConcurrentGroupsOfTwo) {
  const StrategyDef& def = strategy(GetParam());
  const int world = MpiSession::world_size();
  if (world % 2) GTEST_SKIP() << "needs an even world";
  ParallelDims d = def.dims(2);
  if (d.pp > 1) d.dp *= world / 2;
  else d.pp *= world / 2;
  check_strategy(def, RankLayout(d));
}

std::vector<std::string> names() {
  std::vector<std::string> out;
  for (const auto& d : registered_strategies()) out.push_back(d.name);
  return out;
}

INSTANTIATE_TEST_SUITE_P(All, Strategy, ::testing::ValuesIn(names()), [](const auto& info) { return info.param; });

// Not a hand list (it went stale as strategies were added): every registered strategy is
// found under its own name, and on a 4-rank world it emits the collectives the model
// prices, so the parameterised tests above check something for each.
TEST(Strategies, EveryRegisteredStrategyIsFoundAndEmits) {
  ASSERT_FALSE(registered_strategies().empty());
  for (const StrategyDef& def : registered_strategies()) {
    EXPECT_EQ(find_strategy(def.name), &def) << def.name << " is registered twice";
    const RankLayout layout(def.dims(4));
    EXPECT_FALSE(def.emit(layout, 0).empty()) << def.name << " emits no collective on 4 ranks";
  }
}

// A run() that drifts from its emitter fails at run time with one line naming the first
// differing op: here the emitter forgets the backward all-reduce, then mislabels it.
TEST(RunChecked, NamesTheFirstOpThatDiffers) {
  const int n = MpiSession::world_size();
  const RankLayout layout(ParallelDims{.tp = n});
  StrategyDef def = strategy("tensor_parallel");
  const std::string bytes = std::to_string(6 * 8 * 4);  // its [6, 8] fp32 activation
  auto expect_message = [&](const std::string& want) {
    auto mpi = make_mpi_communicator(layout);
    try {
      run_checked(def, *mpi, host_strategy_math(), layout);
      ADD_FAILURE() << "expected ExecutedNotEmitted";
    } catch (const ExecutedNotEmitted& e) {
      EXPECT_EQ(std::string(e.what()), want);
    }
  };
  const auto emit = def.emit;
  const std::string rank = std::to_string(MpiSession::world_rank()), ranks = std::to_string(n);
  def.emit = [emit](const RankLayout& l, int r) {
    CommOps ops = emit(l, r);
    ops.pop_back();
    return ops;
  };
  expect_message("tensor_parallel (rank " + rank + "): op 1 executed all_reduce on tp (" + ranks + " ranks), " + bytes +
                 " B, backward; emitted no op (1 in all)");
  def.emit = [emit](const RankLayout& l, int r) {
    CommOps ops = emit(l, r);
    ops.back().phase = Phase::kForward;
    return ops;
  };
  expect_message("tensor_parallel (rank " + rank + "): op 1 executed all_reduce on tp (" + ranks + " ranks), " + bytes +
                 " B, backward; emitted all_reduce on tp (" + ranks + " ranks), " + bytes + " B, forward");
}

}  // namespace
}  // namespace seqscale::comm
