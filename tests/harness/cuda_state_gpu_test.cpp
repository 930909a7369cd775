// The CUDA harness's memory and timing on work of known size, through execute_point as a
// matrix run would do it:
// - copy of N = 256 MiB (kernels/gemm/gemm_bench.cu): peak_bytes is its two buffers from
//   the point's own pool: the L2-flush buffer (100 MiB on H100) is outside it and nothing is
//   subtracted; the fastest sample is no faster than the bytes it must move at the memory's
//   peak bandwidth;
// - an oom point leaves the process usable (out-of-memory is not sticky);
// - a cuBLAS GEMM inside a body: cuBLAS's own workspace (cudaMallocAsync on the device's
//   current pool since 12.2) stays out of peak_bytes.
// Skipped without a device.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "harness/bench/execute.h"
#include "harness/bench/registry.h"
#include "harness/matrix/matrix.h"
#include "common/check_cublas.h"
#include "tests/support/gpu.h"

namespace seqscale {
namespace {

constexpr double kMiB = 1024.0 * 1024.0;

// Short timing: enough samples for a median, well under a second per point.
MatrixPoint cuda_point(const std::string& bench, nlohmann::json params) {
  MatrixPoint p;
  p.suite = "kernels";
  p.bench = bench;
  p.backend = "cuda";
  p.id = "kernels/" + bench + "/cuda/" + params.dump();
  p.params = std::move(params);
  p.timing.warmup_s = 0.01;
  p.timing.min_samples = 10;
  p.timing.max_samples = 50;
  p.timing.max_noise = 0.05;
  p.timing.time_cap_s = 1;
  return p;
}

// The point used one timer for all of its samples, and says which.
void expect_one_timer(const PointResult& r) {
  EXPECT_TRUE(r.timing == "cupti" || r.timing == "events") << r.timing;
  if (auto it = r.metrics.find("cupti_fallback_samples"); it != r.metrics.end()) {
    EXPECT_EQ(r.timing == "cupti", it->second == 0) << r.timing << " with " << it->second << " CUPTI misses";
  } else {
    EXPECT_EQ(r.timing, "events");  // CUPTI off or unavailable
  }
}

TEST(CudaStateGpu, CopyPeakIsItsTwoBuffersAndTimeIsAboveTheBandwidthFloor) {
  SEQSCALE_REQUIRE_GPU();
  constexpr std::int64_t kN = std::int64_t{256} << 20;
  const PointResult r = execute_point(cuda_point("copy", {{"bytes", kN}}));
  ASSERT_EQ(r.status, PointStatus::kOk) << r.reason;
  expect_one_timer(r);
  // A memcpy has no kernel record: CUPTI misses every sample and the events time the point.
  if (r.metrics.count("cupti_fallback_samples")) {
    EXPECT_EQ(r.timing, "events");
  }

  // src + dst; the pool's granularity (2 MiB) and alignment may round up, never by 4 MiB.
  // The flush buffer (2x L2) inside the pool would add 100 MiB on H100.
  const double peak = r.metrics.at("peak_bytes");
  EXPECT_GE(peak, 2.0 * kN);
  EXPECT_LT(peak, 2.0 * kN + 4 * kMiB);
  EXPECT_EQ(r.metrics.at("l2_flushed"), 1);
  EXPECT_TRUE(r.metrics.count("library_pool_peak_bytes"));

  // Floor: HBM/GDDR move 2 transfers per memory clock on a bus_bits wide bus, so peak
  // bandwidth = 2 x clock x bus_bits / 8 (H100 SXM: 2 x 2619 MHz x 640 B = 3.35 TB/s, the
  // datasheet's number). A copy reads N and writes N; the L2 may still hold up to its size
  // of src (were the flush imperfect) and of not-yet-written dst, so at least 2N - 2 L2
  // bytes cross the memory bus inside the timed region. Checked on the fastest sample, so it
  // holds for the median too.
  int device = 0, clock_khz = 0, bus_bits = 0, l2 = 0;
  ASSERT_EQ(cudaGetDevice(&device), cudaSuccess);  // the one the harness ran on
  ASSERT_EQ(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, device), cudaSuccess);
  ASSERT_EQ(cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, device), cudaSuccess);
  ASSERT_EQ(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, device), cudaSuccess);
  if (clock_khz <= 0 || bus_bits <= 0) GTEST_SKIP() << "the device reports no memory clock or bus width";
  const double peak_Bps = 2.0 * clock_khz * 1e3 * bus_bits / 8.0;
  const double floor_s = (2.0 * kN - 2.0 * l2) / peak_Bps;
  EXPECT_GE(r.stats.min, floor_s) << "peak " << peak_Bps / 1e12 << " TB/s";
  EXPECT_GE(r.stats.median, floor_s);
  RecordProperty("copy_GBps", std::to_string(2.0 * kN / r.stats.median / 1e9));
  RecordProperty("peak_GBps", std::to_string(peak_Bps / 1e9));
}

TEST(CudaStateGpu, OutOfMemoryIsAnOomPointAndTheNextPointRuns) {
  SEQSCALE_REQUIRE_GPU();
  size_t free_b = 0, total_b = 0;
  ASSERT_EQ(cudaMemGetInfo(&free_b, &total_b), cudaSuccess);
  // src alone is the whole device: the pool cannot back it.
  const PointResult oom = execute_point(cuda_point("copy", {{"bytes", static_cast<std::int64_t>(total_b)}}));
  EXPECT_EQ(oom.status, PointStatus::kOom) << oom.reason;
  EXPECT_NE(oom.reason.find("out of device memory"), std::string::npos) << oom.reason;
  const PointResult ok = execute_point(cuda_point("copy", {{"bytes", std::int64_t{64} << 20}}));
  EXPECT_EQ(ok.status, PointStatus::kOk) << ok.reason;
}

// A body that calls cuBLAS with no workspace of its own: cuBLAS takes one itself.
void cublas_gemm_body(BenchState& s) {
  const int n = static_cast<int>(s.get_int("n"));
  const auto count = static_cast<std::int64_t>(n) * n;
  auto* a = s.alloc_array<float>(count);
  auto* b = s.alloc_array<float>(count);
  auto* c = s.alloc_array<float>(count);
  s.fill_random(a, count, DType::kFp32, 1);
  s.fill_random(b, count, DType::kFp32, 2);
  s.fill_value(c, count, DType::kFp32, 0.f);
  struct Handle {
    cublasHandle_t h = nullptr;
    ~Handle() {
      if (h) (void)cublasDestroy(h);
    }
  } handle;
  s.exec([&](void* stream) {
    if (!handle.h) CUBLAS_CHECK(cublasCreate(&handle.h));
    CUBLAS_CHECK(cublasSetStream(handle.h, static_cast<cudaStream_t>(stream)));
    const float one = 1.f, zero = 0.f;
    CUBLAS_CHECK(cublasSgemm(handle.h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, a, n, b, n, &zero, c, n));
  });
}

TEST(CudaStateGpu, CublasWorkspaceStaysOutOfPeakBytes) {
  SEQSCALE_REQUIRE_GPU();
  static const bool registered =
      register_bench({"cuda_state_test_cublas_gemm", "kernels", Backend::kCuda, cublas_gemm_body});
  ASSERT_TRUE(registered);
  constexpr int kN = 1024;
  const PointResult r = execute_point(cuda_point("cuda_state_test_cublas_gemm", {{"n", kN}}));
  ASSERT_EQ(r.status, PointStatus::kOk) << r.reason;
  expect_one_timer(r);
  // a, b, c: 4 MiB each, multiples of the pool's 2 MiB granularity, so the high-water mark
  // is their sum exactly; cuBLAS's workspace (MiBs on Ampere and Hopper) would show on top.
  const double buffers = 3.0 * kN * kN * sizeof(float);
  EXPECT_GE(r.metrics.at("peak_bytes"), buffers);
  EXPECT_LT(r.metrics.at("peak_bytes"), buffers + 1 * kMiB);
  ASSERT_TRUE(r.metrics.count("library_pool_peak_bytes"));
  RecordProperty("library_pool_peak_bytes", std::to_string(r.metrics.at("library_pool_peak_bytes")));
}

}  // namespace
}  // namespace seqscale
