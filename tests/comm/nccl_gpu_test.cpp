// NCCL backend on the GPUs of this process (ncclCommInitAll; one GPU means world size 1):
// every collective checked element-wise through the benchmark path, the timeout abort of
// a receive nobody sends, and the issue-5 goal that the harness adds <= 2% over the raw
// ncclAllReduce at 1 GiB. Skipped without a GPU.
#include <gtest/gtest.h>

#include "tests/support/gpu.h"

#if SEQSCALE_HAVE_NCCL
#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include "comm/collectives/collective_bench.h"
#include "comm/nccl/nccl_communicator.h"
#include "comm/staging_communicator.h"
#include "comm/strategies/cuda/strategy_math_cuda.h"
#include "comm/strategies/strategy.h"

namespace seqscale::comm {
namespace {

std::unique_ptr<Communicator> one_gpu(CommOptions o = options_from_env()) {
  auto all = make_nccl_communicators_single_process(RankLayout({}), o);
  return std::move(all.front());
}

TEST(NcclGpu, EveryCollectiveChecksOut) {
  SEQSCALE_REQUIRE_GPU();
  auto c = one_gpu();
  auto mem = make_device_memory(*c);
  CollBenchOptions o;
  o.iters = 3;
  for (const auto& spec : registered_collectives())
    for (DType t : {DType::kFp32, DType::kBf16, DType::kFp16})
      for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kAvg}) {
        const auto r = bench_collective(*c, nullptr, *mem, spec, 1 << 20, t, op, 0, o);
        EXPECT_EQ(r.wrong, 0) << spec.name << " " << dtype_name(t) << " " << reduce_op_name(op);
      }
  EXPECT_GT(c->stats(GroupKind::kWorld).bytes, 0);
}

// Every strategy over NCCL on device buffers (staged from host buffers) with its dense
// math on the GPU kernels (cuBLAS fp32, softmax and Adam kernels; cpu_offload's Adam stays
// on the host by design) against its single-rank host double-accumulation reference within
// the strategy's tolerance, declared bytes == counted bytes. One GPU: world size 1, so this
// checks the NCCL path, the kernels and the counters, not the sharding (the MPI tests do
// that). The pipelines are left out: with one stage their sends go to self, which NCCL
// only matches inside one group.
TEST(NcclGpu, StrategiesRunOverNccl) {
  SEQSCALE_REQUIRE_GPU();
  auto c = one_gpu();
  auto mem = make_device_memory(*c);
  StagingCommunicator staged(*c, *mem);
  auto math = make_cuda_strategy_math(nccl_stream(*c));  // one stream for collectives and math
  for (const auto& def : registered_strategies()) {
    if (def.name.starts_with("pipeline")) continue;
    const RankLayout layout(def.dims(1));
    const auto before = staged.snapshot();
    const Tensors got = def.run(staged, *math, layout), want = def.reference(layout, 0);
    for (const auto& [name, ref] : want) {
      ASSERT_EQ(got.at(name).size(), ref.size()) << def.name << " " << name;
      for (std::size_t i = 0; i < ref.size(); ++i)
        ASSERT_NEAR(got.at(name)[i], ref[i], def.tolerance * (1 + std::abs(ref[i]))) << def.name << " " << name;
    }
    StepProgram p;
    def.declare(layout, 0, p);
    for (int k = 0; k < kNumGroupKinds; ++k)
      EXPECT_EQ(bytes_since(before, staged, static_cast<GroupKind>(k)), p.comm_bytes(static_cast<GroupKind>(k)))
          << def.name;
  }
}

TEST(NcclGpu, HungReceiveTimesOutAndAborts) {
  SEQSCALE_REQUIRE_GPU();
  auto c = one_gpu({.timeout_s = 1.0, .abort_on_timeout = false});
  auto mem = make_device_memory(*c);
  void* buf = mem->alloc(4);
  try {  // a receive from self with no matching send never completes
    c->recv(GroupKind::kWorld, buf, 1, DType::kFp32, 0);
    FAIL() << "expected CommTimeout";
  } catch (const CommTimeout& e) {
    EXPECT_NE(std::string(e.what()).find("recv on group world"), std::string::npos) << e.what();
  }
  mem->release(buf);
}

// Issue 5's goal: the harness adds <= 2% to the raw ncclAllReduce at 1 GiB. Both are timed
// the same way (launch, wait, per iteration), in alternating rounds so clock and thermal
// drift hit both, and compared by their medians over the rounds.
TEST(NcclGpu, HarnessOverheadAtOneGiBUnderTwoPercent) {
  SEQSCALE_REQUIRE_GPU();
  const std::int64_t bytes = std::int64_t{1} << 30, n = bytes / 4;
  auto c = one_gpu();
  auto mem = make_device_memory(*c);
  CollBenchOptions o;
  o.iters = 10;
  o.check = false;
  ncclComm_t raw;
  int dev = 0;
  ASSERT_EQ(ncclCommInitAll(&raw, 1, &dev), ncclSuccess);
  void *s = nullptr, *r = nullptr;
  ASSERT_EQ(cudaMalloc(&s, bytes), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&r, bytes), cudaSuccess);
  cudaStream_t st;
  ASSERT_EQ(cudaStreamCreate(&st), cudaSuccess);
  for (int i = 0; i < 5; ++i) ASSERT_EQ(ncclAllReduce(s, r, n, ncclFloat32, ncclSum, raw, st), ncclSuccess);
  ASSERT_EQ(cudaStreamSynchronize(st), cudaSuccess);
  std::vector<double> via_us, raw_us;
  for (int round = 0; round < 7; ++round) {
    via_us.push_back(bench_collective(*c, nullptr, *mem, *find_collective("all_reduce"), bytes, DType::kFp32,
                                      ReduceOp::kSum, 0, o)
                         .time_us);
    double total = 0;
    for (int i = 0; i < o.iters; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      ASSERT_EQ(ncclAllReduce(s, r, n, ncclFloat32, ncclSum, raw, st), ncclSuccess);
      ASSERT_EQ(cudaStreamSynchronize(st), cudaSuccess);
      total += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    raw_us.push_back(total / o.iters * 1e6);
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const double via = median(via_us), raw_med = median(raw_us);
  std::printf("all_reduce 1 GiB, medians of 7 rounds x %d: raw %.1f us, via Communicator %.1f us (%+.2f%%)\n", o.iters,
              raw_med, via, 100.0 * (via / raw_med - 1));
  EXPECT_LE(via, raw_med * 1.02);
  cudaFree(s);
  cudaFree(r);
  cudaStreamDestroy(st);
  ncclCommDestroy(raw);
}

}  // namespace
}  // namespace seqscale::comm
#endif
