// NCCL backend on the GPUs of this process (ncclCommInitAll; one GPU means world size 1):
// every collective checked element-wise through the benchmark path, the dtype mapping
// through a PreMulSum all-reduce (at world size 1 the only reduction that is not a copy),
// both all-to-all paths (ncclAlltoAll and the grouped send/recv fallback), the timeout
// abort of a receive nobody sends, and the issue-5 goal on the harness's overhead over the
// raw ncclAllReduce at 1 GiB. The NcclHost tests need no device (enum mapping, environment
// parsing); the NcclGpu tests skip without one. Without NCCL in the build a single skipped
// test says so, instead of the tests vanishing (review 3(b)3).
// Random inputs print their seed; rerun one with SEQSCALE_TEST_SEED=<n>.
#include <gtest/gtest.h>

#include "tests/support/gpu.h"

#if SEQSCALE_HAVE_NCCL
#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "comm/collectives/collective_bench.h"
#include "comm/nccl/nccl_communicator.h"
#include "comm/nccl/nccl_types.h"
#include "comm/staging_communicator.h"
#include "comm/strategies/cuda/strategy_math_cuda.h"
#include "comm/strategies/strategy.h"
#include "common/half.h"
#include "tests/support/errors.h"
#include "tests/support/seed.h"

namespace seqscale::comm {
namespace {

using testing_support::error_of;
using testing_support::test_seed;

#define ASSERT_CUDA_OK(call)                                        \
  do {                                                              \
    const cudaError_t seqscale_e_ = (call);                         \
    ASSERT_EQ(seqscale_e_, cudaSuccess) << #call << ": " << cudaGetErrorString(seqscale_e_); \
  } while (0)
#define ASSERT_NCCL_OK(call)                                        \
  do {                                                              \
    const ncclResult_t seqscale_r_ = (call);                        \
    ASSERT_EQ(seqscale_r_, ncclSuccess) << #call << ": " << ncclGetErrorString(seqscale_r_); \
  } while (0)

// Sets (or, with nullptr, unsets) an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = std::string(old);
    if (value) setenv(name, value, 1);
    else unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_) setenv(name_.c_str(), old_->c_str(), 1);
    else unsetenv(name_.c_str());
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

std::unique_ptr<Communicator> one_gpu(CommOptions o = options_from_env()) {
  auto all = make_nccl_communicators_single_process(RankLayout({}), o);
  return std::move(all.front());
}

// ---- host: the enum mapping and the environment (no device) --------------------------

// The collectives cannot catch a wrong mapping at world size 1 (every reduction of one
// value is a copy, fp16 and bf16 are the same size), so each enum is checked here.
TEST(NcclHost, DTypeMapsToNcclDataType) {
  EXPECT_EQ(nccl_type(DType::kFp32), ncclFloat32);
  EXPECT_EQ(nccl_type(DType::kFp16), ncclFloat16);
  EXPECT_EQ(nccl_type(DType::kBf16), ncclBfloat16);
  EXPECT_EQ(nccl_type(DType::kBool), ncclUint8);  // one byte per element
  EXPECT_EQ(nccl_type(DType::kInt32), ncclInt32);
  EXPECT_EQ(nccl_type(DType::kInt64), ncclInt64);
}

TEST(NcclHost, ReduceOpMapsToNcclRedOp) {
  EXPECT_EQ(nccl_op(ReduceOp::kSum), ncclSum);
  EXPECT_EQ(nccl_op(ReduceOp::kProd), ncclProd);
  EXPECT_EQ(nccl_op(ReduceOp::kMax), ncclMax);
  EXPECT_EQ(nccl_op(ReduceOp::kMin), ncclMin);
  EXPECT_EQ(nccl_op(ReduceOp::kAvg), ncclAvg);
}

// A typo in the timeout must not fall back to the 300 s default (review M-9).
TEST(NcclHost, CommTimeoutEnvIsStrict) {
  {
    ScopedEnv env("SEQSCALE_COMM_TIMEOUT_S", "7.5");
    EXPECT_EQ(options_from_env().timeout_s, 7.5);
  }
  {
    ScopedEnv env("SEQSCALE_COMM_TIMEOUT_S", nullptr);
    EXPECT_EQ(options_from_env({.timeout_s = 42}).timeout_s, 42);
  }
  for (const char* bad : {"abc", "20s", "0", "-1", "nan", "inf", "1e999"}) {
    ScopedEnv env("SEQSCALE_COMM_TIMEOUT_S", bad);
    EXPECT_EQ(error_of([] { options_from_env(); }),
              std::string("SEQSCALE_COMM_TIMEOUT_S is '") + bad + "', must be a positive number of seconds");
  }
}

// The mode is read before any device or NCCL call, so this needs no GPU.
TEST(NcclHost, BadAllToAllModeNamesTheVariable) {
  ScopedEnv env("SEQSCALE_NCCL_ALLTOALL", "alltoall");
  EXPECT_EQ(error_of([] { make_nccl_communicators_single_process(RankLayout({})); }),
            "SEQSCALE_NCCL_ALLTOALL is 'alltoall', must be auto, native or sendrecv");
}

// ---- device ------------------------------------------------------------------------

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

TEST(NcclGpu, CommTimeoutEnvReachesTheCommunicator) {
  SEQSCALE_REQUIRE_GPU();
  ScopedEnv env("SEQSCALE_COMM_TIMEOUT_S", "7.5");
  EXPECT_EQ(one_gpu()->options().timeout_s, 7.5);
}

// Host encoding of one element of `t` from a double (rounded to nearest even for the
// floating types) and back.
void encode(DType t, double v, unsigned char* out) {
  switch (t) {
    case DType::kFp32: {
      const float f = static_cast<float>(v);
      std::memcpy(out, &f, 4);
      return;
    }
    case DType::kFp16:
    case DType::kBf16: {
      // Through float: an expected value scalar * x (two 11-bit, or 8-bit, significands)
      // is exact in float, so its one rounding happens here, as on the device. (Inputs are
      // read back after encoding, so how they round does not matter.)
      const float f = static_cast<float>(v);
      const std::uint16_t h = t == DType::kFp16 ? float_to_fp16(f) : float_to_bf16(f);
      std::memcpy(out, &h, 2);
      return;
    }
    case DType::kInt32: {
      const auto i = static_cast<std::int32_t>(v);
      std::memcpy(out, &i, 4);
      return;
    }
    case DType::kInt64: {
      const auto i = static_cast<std::int64_t>(v);
      std::memcpy(out, &i, 8);
      return;
    }
    case DType::kBool: *out = static_cast<unsigned char>(v); return;
  }
}
double decode(DType t, const unsigned char* in) {
  switch (t) {
    case DType::kFp32: {
      float f;
      std::memcpy(&f, in, 4);
      return f;
    }
    case DType::kFp16:
    case DType::kBf16: {
      std::uint16_t h;
      std::memcpy(&h, in, 2);
      return t == DType::kFp16 ? fp16_to_float(h) : bf16_to_float(h);
    }
    case DType::kInt32: {
      std::int32_t i;
      std::memcpy(&i, in, 4);
      return i;
    }
    case DType::kInt64: {
      std::int64_t i;
      std::memcpy(&i, in, 8);
      return static_cast<double>(i);
    }
    case DType::kBool: return *in;
  }
  return 0;
}
// Relative spacing of the type: 2^-(significand bits).
double dtype_epsilon(DType t) {
  switch (t) {
    case DType::kFp32: return 0x1p-23;
    case DType::kFp16: return 0x1p-10;
    case DType::kBf16: return 0x1p-7;
    default: return 0;  // integers: exact
  }
}

// At world size 1 an all-reduce with PreMulSum(scalar) returns scalar * x, computed in
// the dtype NCCL was told: the one world-size-1 reduction whose result depends on reading
// fp16 as fp16 and bf16 as bf16 (a swapped mapping gives values orders of magnitude off).
// The datatype comes from nccl_type(), as in the communicator. The host computes
// scalar * x in double (exact for these operands) and rounds it once to the dtype.
// Tolerance: one unit in the last place (eps * |expected|): NCCL rounds the exact product
// once, so the result should be bit-exact; the ulp leaves room for a kernel that rounds
// differently, and is far below what a wrong interpretation produces. Integers: exact.
TEST(NcclGpu, PreMulSumMatchesHostPerDtype) {
  SEQSCALE_REQUIRE_GPU();
  std::mt19937_64 rng(test_seed());  // printed: rerun with SEQSCALE_TEST_SEED=<n>
  constexpr std::int64_t n = 4099;  // odd: not a multiple of any vector width, so tails run too
  int dev = 0;
  ASSERT_CUDA_OK(cudaSetDevice(dev));
  ncclComm_t raw = nullptr;
  ASSERT_NCCL_OK(ncclCommInitAll(&raw, 1, &dev));
  cudaStream_t st = nullptr;
  ASSERT_CUDA_OK(cudaStreamCreate(&st));
  void *send = nullptr, *recv = nullptr;
  ASSERT_CUDA_OK(cudaMalloc(&send, n * 8));
  ASSERT_CUDA_OK(cudaMalloc(&recv, n * 8));

  struct Case {
    DType t;
    double scalar;
  };
  // 3x needs two more significant bits than x, so it rounds; -0.5x is exact and flips the
  // sign. Integers: 3 only.
  const Case cases[] = {{DType::kFp32, 3}, {DType::kFp32, -0.5}, {DType::kFp16, 3}, {DType::kFp16, -0.5},
                        {DType::kBf16, 3}, {DType::kBf16, -0.5}, {DType::kInt32, 3},  {DType::kInt64, 3}};
  for (const Case& k : cases) {
    SCOPED_TRACE(std::string(dtype_name(k.t)) + " scalar " + std::to_string(k.scalar));
    const auto es = static_cast<std::size_t>(dtype_bytes(k.t));
    const bool floating = dtype_epsilon(k.t) > 0;
    // Floats: |x| in [0.25, 4) with either sign, so neither x nor 3x is subnormal or
    // overflows fp16; integers: 3x stays inside the type.
    std::uniform_real_distribution<double> mag(0.25, 4.0);
    std::uniform_int_distribution<std::int64_t> ints(-1'000'000, 1'000'000);
    std::vector<unsigned char> in(n * es), out(n * es);
    std::vector<double> x(n);
    for (std::int64_t i = 0; i < n; ++i) {
      double v = 0;
      if (floating) {
        const double sign = (rng() & 1) ? -1 : 1;  // drawn first: a fixed order keeps the seed replayable
        v = sign * mag(rng);
      } else {
        v = static_cast<double>(ints(rng));
      }
      encode(k.t, v, &in[i * es]);
      x[i] = decode(k.t, &in[i * es]);  // the value the device sees
    }
    unsigned char scalar[8] = {};
    encode(k.t, k.scalar, scalar);
    ASSERT_CUDA_OK(cudaMemcpy(send, in.data(), in.size(), cudaMemcpyHostToDevice));
    ASSERT_CUDA_OK(cudaMemset(recv, 0xff, n * es));
    ncclRedOp_t op;
    ASSERT_NCCL_OK(ncclRedOpCreatePreMulSum(&op, scalar, nccl_type(k.t), ncclScalarHostImmediate, raw));
    ASSERT_NCCL_OK(ncclAllReduce(send, recv, n, nccl_type(k.t), op, raw, st));
    ASSERT_CUDA_OK(cudaStreamSynchronize(st));
    ASSERT_NCCL_OK(ncclRedOpDestroy(op, raw));
    ASSERT_CUDA_OK(cudaMemcpy(out.data(), recv, out.size(), cudaMemcpyDeviceToHost));
    int wrong = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      unsigned char rounded[8];
      encode(k.t, k.scalar * x[i], rounded);
      const double want = decode(k.t, rounded), got = decode(k.t, &out[i * es]);
      if (!(std::abs(got - want) <= dtype_epsilon(k.t) * std::abs(want)) && ++wrong <= 5)
        ADD_FAILURE() << "element " << i << ": " << k.scalar << " * " << x[i] << " = " << got << ", want " << want;
    }
    EXPECT_EQ(wrong, 0);
  }
  ASSERT_CUDA_OK(cudaFree(send));
  ASSERT_CUDA_OK(cudaFree(recv));
  ASSERT_CUDA_OK(cudaStreamDestroy(st));
  ASSERT_NCCL_OK(ncclCommDestroy(raw));
}

// all_to_all over every visible GPU (world size 1 on a one-GPU machine: then one block,
// and the test checks that the chosen path moves it intact; from 2 GPUs on it also checks
// the block offsets). Rank r's block j holds value(r, j, i); afterwards rank r's block j
// must hold rank j's block r. Element counts are odd, and int64 has 8-byte elements, so an
// offset computed in elements instead of bytes shows.
void check_all_to_all(const char* mode, std::string_view want_path) {
  ScopedEnv env("SEQSCALE_NCCL_ALLTOALL", mode);
  int ndev = 0;
  ASSERT_CUDA_OK(cudaGetDeviceCount(&ndev));
  const int world = std::min(ndev, 8);
  auto comms = make_nccl_communicators_single_process(RankLayout::for_world(world, {}));
  ASSERT_EQ(nccl_all_to_all_path(*comms[0]), want_path);
  std::printf("all_to_all path %s (SEQSCALE_NCCL_ALLTOALL=%s, libnccl %d, world %d)\n",
              std::string(want_path).c_str(), mode, nccl_runtime_version(), world);
  constexpr std::int64_t m = 1003;  // elements per peer
  auto value = [&](int src, int dst, std::int64_t i) { return static_cast<double>((src * world + dst) * m + i); };
  for (DType t : {DType::kFp32, DType::kInt64}) {
    SCOPED_TRACE(dtype_name(t));
    const auto es = static_cast<std::size_t>(dtype_bytes(t));
    const std::size_t bytes = static_cast<std::size_t>(world * m) * es;
    std::vector<std::unique_ptr<BenchMemory>> mems;
    std::vector<void*> send(world), recv(world);
    for (int r = 0; r < world; ++r) {
      mems.push_back(make_device_memory(*comms[r]));
      send[r] = mems[r]->alloc(bytes);
      recv[r] = mems[r]->alloc(bytes);
      std::vector<unsigned char> host(bytes), junk(bytes, 0xff);
      for (int j = 0; j < world; ++j)
        for (std::int64_t i = 0; i < m; ++i) encode(t, value(r, j, i), &host[(j * m + i) * es]);
      mems[r]->upload(send[r], host.data(), bytes);
      mems[r]->upload(recv[r], junk.data(), bytes);
    }
    std::vector<WorkPtr> works;
    comms[0]->group_start();  // one thread drives every GPU: the ranks' calls form one group
    for (int r = 0; r < world; ++r) works.push_back(comms[r]->iall_to_all(GroupKind::kWorld, send[r], recv[r], m, t));
    comms[0]->group_end();
    wait_all(works);
    for (int r = 0; r < world; ++r) {
      std::vector<unsigned char> host(bytes);
      mems[r]->download(host.data(), recv[r], bytes);
      int wrong = 0;
      for (int j = 0; j < world; ++j)
        for (std::int64_t i = 0; i < m; ++i) {
          const double got = decode(t, &host[(j * m + i) * es]), want = value(j, r, i);
          if (got != want && ++wrong <= 5)
            ADD_FAILURE() << "rank " << r << " block " << j << " element " << i << ": " << got << ", want " << want;
        }
      EXPECT_EQ(wrong, 0) << "rank " << r;
      mems[r]->release(send[r]);
      mems[r]->release(recv[r]);
    }
  }
}

// The fallback, forced: what runs wherever libnccl is older than 2.28.
TEST(NcclGpu, AllToAllSendRecvPathMovesTheBlocks) {
  SEQSCALE_REQUIRE_GPU();
  check_all_to_all("sendrecv", "send/recv");
}

// ncclAlltoAll through the dlsym'd pointer. Skipped (and says why) on a libnccl older
// than 2.28; on 2.28 or later the lookup must find it, or the test fails.
TEST(NcclGpu, AllToAllNativePathMovesTheBlocks) {
  SEQSCALE_REQUIRE_GPU();
  if (nccl_runtime_version() < 22800)
    GTEST_SKIP() << "the loaded libnccl (" << nccl_runtime_version()
                 << ") predates ncclAlltoAll (2.28): only the send/recv path can run here";
  check_all_to_all("native", "ncclAlltoAll");
  check_all_to_all("auto", "ncclAlltoAll");  // the default picks it too
}

// Every strategy over NCCL on device buffers (staged from host buffers) with its dense
// math on the GPU kernels (cuBLAS fp32, softmax and Adam kernels; cpu_offload's Adam stays
// on the host by design) against its single-rank host double-accumulation reference within
// the strategy's tolerance, through run_checked. One GPU: world size 1, so this checks
// the NCCL path and the kernels, not the sharding (tests/consistency does that over MPI);
// on one-rank groups the emitters list no op and run_checked records none.
// The pipelines are left out: with one stage their sends go to self, which NCCL only
// matches inside one group.
TEST(NcclGpu, StrategiesRunOverNccl) {
  SEQSCALE_REQUIRE_GPU();
  auto c = one_gpu();
  auto mem = make_device_memory(*c);
  StagingCommunicator staged(*c, *mem);
  auto math = make_cuda_strategy_math(nccl_stream(*c));  // one stream for collectives and math
  for (const auto& def : registered_strategies()) {
    if (def.name.starts_with("pipeline")) continue;
    const RankLayout layout(def.dims(1));
    Tensors got;
    ASSERT_NO_THROW(got = run_checked(def, staged, *math, layout)) << def.name;
    const Tensors want = def.reference(layout, 0);
    for (const auto& [name, ref] : want) {
      ASSERT_EQ(got.at(name).size(), ref.size()) << def.name << " " << name;
      for (std::size_t i = 0; i < ref.size(); ++i)
        ASSERT_NEAR(got.at(name)[i], ref[i], def.tolerance * (1 + std::abs(ref[i]))) << def.name << " " << name;
    }
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
// Allowed: max(2%, 20 us) (review M-8). At world size 1 the 1 GiB all-reduce is a device
// copy of about 0.4-0.6 ms on H100/H200, so 2% is ~10 us, while the Communicator's fixed
// per-call cost (cudaSetDevice, event create/record/destroy, polling
// ncclCommGetAsyncError) is ~5-15 us: a bare 2% would fail on noise on one GPU. On more
// GPUs, or more bytes, the 2% term dominates again.
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
  ASSERT_NCCL_OK(ncclCommInitAll(&raw, 1, &dev));
  void *s = nullptr, *r = nullptr;
  ASSERT_CUDA_OK(cudaMalloc(&s, bytes));
  ASSERT_CUDA_OK(cudaMalloc(&r, bytes));
  cudaStream_t st;
  ASSERT_CUDA_OK(cudaStreamCreate(&st));
  for (int i = 0; i < 5; ++i) ASSERT_NCCL_OK(ncclAllReduce(s, r, n, ncclFloat32, ncclSum, raw, st));
  ASSERT_CUDA_OK(cudaStreamSynchronize(st));
  std::vector<double> via_us, raw_us;
  for (int round = 0; round < 7; ++round) {
    via_us.push_back(bench_collective(*c, nullptr, *mem, *find_collective("all_reduce"), bytes, DType::kFp32,
                                      ReduceOp::kSum, 0, o)
                         .time_us);
    double total = 0;
    for (int i = 0; i < o.iters; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      ASSERT_NCCL_OK(ncclAllReduce(s, r, n, ncclFloat32, ncclSum, raw, st));
      ASSERT_CUDA_OK(cudaStreamSynchronize(st));
      total += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    raw_us.push_back(total / o.iters * 1e6);
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const double via = median(via_us), raw_med = median(raw_us);
  const double allowed_us = std::max(0.02 * raw_med, 20.0);
  std::printf("all_reduce 1 GiB, medians of 7 rounds x %d: raw %.1f us, via Communicator %.1f us (%+.1f us, %+.2f%%; "
              "allowed +%.1f us)\n",
              o.iters, raw_med, via, via - raw_med, 100.0 * (via / raw_med - 1), allowed_us);
  EXPECT_LE(via, raw_med + allowed_us);
  ASSERT_CUDA_OK(cudaFree(s));
  ASSERT_CUDA_OK(cudaFree(r));
  ASSERT_CUDA_OK(cudaStreamDestroy(st));
  ASSERT_NCCL_OK(ncclCommDestroy(raw));
}

}  // namespace
}  // namespace seqscale::comm

#else  // !SEQSCALE_HAVE_NCCL

// Without NCCL at configure time the tests above are not compiled; this keeps their
// absence visible as a skip (ctest "Skipped", `--gtest_filter='NcclGpu*'` counts it)
// instead of a silent pass (review 3(b)3).
TEST(NcclGpu, NotBuiltWithoutNccl) {
  GTEST_SKIP() << "this build found no NCCL at configure time (SEQSCALE_HAVE_NCCL=0): the NCCL tests are not compiled";
}

#endif
