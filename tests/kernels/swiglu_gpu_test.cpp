// swiglu CUDA kernels vs the double reference, fp32/fp16/bf16, at awkward sizes (rows 1,
// 17, 1000; ffn 33, 96, 6144, 24576) on the 16-byte-pack and scalar paths, dx in place over
// x, and bitwise run to run. Tolerances: swiglu_y_tolerance and swiglu_dx_tolerance
// (swiglu_ref.h), the bench check's: one fp32 evaluation rounded once to the dtype (1 unit
// of its last place, plus 1e-5 relative and 1e-6 absolute for the fp32 math).
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>

#include "kernels/swiglu/swiglu.cuh"
#include "kernels/swiglu/swiglu_ref.h"
#include "tests/support/device_data.h"
#include "tests/support/gpu.h"
#include "tests/support/matches.h"
#include "tests/support/seed.h"

namespace seqscale {
namespace {

using testing_support::download;
using testing_support::matches;
using testing_support::upload;

class SwiGluGpu : public ::testing::TestWithParam<DType> {};

std::vector<float> normal(std::size_t n, std::mt19937& rng, float scale) {
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (auto& e : v) e = d(rng);
  return v;
}

TEST_P(SwiGluGpu, ForwardAndBackwardMatchReference) {
  SEQSCALE_REQUIRE_GPU();
  const DType t = GetParam();
  const auto es = static_cast<std::size_t>(dtype_bytes(t));
  std::mt19937 rng(testing_support::test_seed());
  for (auto [rows, ffn] : {std::pair<std::int64_t, std::int64_t>{1, 33}, {17, 96}, {1000, 33}, {1000, 6144},
                           {17, 24576}, {1, 1}}) {
    const auto nx = static_cast<std::size_t>(rows * 2 * ffn), ny = static_cast<std::size_t>(rows * ffn);
    std::vector<float> xr, dyr;
    void* x = upload(normal(nx, rng, 3.f), t, &xr);
    void* dy = upload(normal(ny, rng, 1.f), t, &dyr);
    void *y, *dx;
    ASSERT_EQ(cudaMalloc(&y, ny * es), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&dx, nx * es), cudaSuccess);
    swiglu_fwd(SwiGluFwdParams{x, y, rows, ffn, t}, nullptr);
    swiglu_bwd(SwiGluBwdParams{dy, x, dx, rows, ffn, t}, nullptr);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const std::string at = std::to_string(rows) + "x" + std::to_string(ffn) + " ";
    EXPECT_TRUE(matches(compare_values(at + "y", download(y, ny, t), swiglu_fwd_ref(xr, rows, ffn), swiglu_y_tolerance(t))));
    const auto want_dx = swiglu_bwd_ref(dyr, xr, rows, ffn);
    const auto got_dx = download(dx, nx, t);
    EXPECT_TRUE(matches(compare_values(at + "dx", got_dx, want_dx, swiglu_dx_tolerance(t))));
    // In place over x (each thread reads its a and g before writing da and dg): the same bits.
    swiglu_bwd(SwiGluBwdParams{dy, x, x, rows, ffn, t}, nullptr);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const auto in_place = download(x, nx, t);
    EXPECT_EQ(std::memcmp(in_place.data(), got_dx.data(), nx * sizeof(float)), 0) << at << "in-place dx differs";
    for (void* p : {x, dy, y, dx}) cudaFree(p);
  }
}

TEST_P(SwiGluGpu, MisalignedPointerTakesTheScalarPath) {
  SEQSCALE_REQUIRE_GPU();
  const DType t = GetParam();
  const auto es = static_cast<std::size_t>(dtype_bytes(t));
  std::mt19937 rng(testing_support::test_seed());
  const std::int64_t rows = 37, ffn = 64;  // ffn allows 16-byte packs; the pointer does not
  const auto nx = static_cast<std::size_t>(rows * 2 * ffn), ny = static_cast<std::size_t>(rows * ffn);
  std::vector<float> xr;
  void* xbuf = upload(normal(nx + 1, rng, 3.f), t, &xr);
  xr.erase(xr.begin());
  void* y;
  ASSERT_EQ(cudaMalloc(&y, ny * es), cudaSuccess);
  swiglu_fwd(SwiGluFwdParams{static_cast<char*>(xbuf) + es, y, rows, ffn, t}, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_TRUE(matches(compare_values("y", download(y, ny, t), swiglu_fwd_ref(xr, rows, ffn), swiglu_y_tolerance(t))));
  cudaFree(xbuf);
  cudaFree(y);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, SwiGluGpu, ::testing::Values(DType::kFp32, DType::kFp16, DType::kBf16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(SwiGluGpuErrors, NameTheField) {
  SEQSCALE_REQUIRE_GPU();
  SwiGluFwdParams f;
  f.rows = 2;
  try {
    swiglu_fwd(f, nullptr);
    ADD_FAILURE() << "ffn = 0 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "swiglu_fwd: ffn must be in [1, 1073741824], got 0");
  }
}

}  // namespace
}  // namespace seqscale
