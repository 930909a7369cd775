// rmsnorm CUDA kernels vs the double reference, fp32/fp16/bf16, at awkward sizes: rows 1,
// 17, 1000; cols 33 and 96 (a warp per row, scalar and packed), 2048 / 2049 (either side
// of the switch to a CTA per row), 6144 (GenSLM). In place, misaligned, and bitwise run to
// run. Tolerances: rmsnorm_y_tolerance, rmsnorm_rstd_tolerance, rmsnorm_dx_tolerance and
// rmsnorm_dweight_tolerance (rmsnorm_ref.h), the bench check's.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>

#include "kernels/rmsnorm/rmsnorm.cuh"
#include "kernels/rmsnorm/rmsnorm_cost.h"
#include "kernels/rmsnorm/rmsnorm_ref.h"
#include "tests/support/device_data.h"
#include "tests/support/gpu.h"
#include "tests/support/matches.h"
#include "tests/support/seed.h"

namespace seqscale {
namespace {

using testing_support::download;
using testing_support::matches;
using testing_support::upload;

constexpr double kEps = 1e-6;

class RmsNormGpu : public ::testing::TestWithParam<DType> {};

std::vector<float> normal(std::size_t n, std::mt19937& rng, float scale, float offset) {
  std::normal_distribution<float> d(offset, scale);
  std::vector<float> v(n);
  for (auto& e : v) e = d(rng);
  return v;
}

TEST_P(RmsNormGpu, ForwardAndBackwardMatchReference) {
  SEQSCALE_REQUIRE_GPU();
  const DType t = GetParam();
  const auto es = static_cast<std::size_t>(dtype_bytes(t));
  std::mt19937 rng(testing_support::test_seed());
  for (auto [rows, cols] : {std::pair<std::int64_t, std::int64_t>{1, 33}, {17, 96}, {1000, 33}, {1000, 6144},
                            {17, 2048}, {17, 2049}, {1, 6144}, {1000, 96}}) {
    const auto n = static_cast<std::size_t>(rows * cols);
    std::vector<float> xr, wr, dyr;
    void* x = upload(normal(n, rng, 1.5f, 0.5f), t, &xr);
    void* w = upload(normal(static_cast<std::size_t>(cols), rng, 1.f, 0.f), t, &wr);
    void* dy = upload(normal(n, rng, 1.f, 0.5f), t, &dyr);
    void *y, *dx;
    float *rstd, *dw, *ws;
    ASSERT_EQ(cudaMalloc(&y, n * es), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&dx, n * es), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&rstd, static_cast<std::size_t>(rows) * 4), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&dw, static_cast<std::size_t>(cols) * 4), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&ws, static_cast<std::size_t>(rmsnorm_bwd_cost(rows, cols, t).workspace_bytes)), cudaSuccess);
    rmsnorm_fwd(RmsNormFwdParams{x, w, y, rstd, rows, cols, static_cast<float>(kEps), t}, nullptr);
    rmsnorm_bwd(RmsNormBwdParams{dy, x, w, rstd, dx, dw, ws, rows, cols, t}, nullptr);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const auto ref = rmsnorm_fwd_ref(xr, wr, rows, cols, kEps);
    const auto refg = rmsnorm_bwd_ref(dyr, xr, wr, rows, cols, kEps);
    const std::string at = std::to_string(rows) + "x" + std::to_string(cols) + " ";
    EXPECT_TRUE(matches(compare_values(at + "y", download(y, n, t), ref.y, rmsnorm_y_tolerance(t))));
    EXPECT_TRUE(matches(compare_values(at + "rstd", download(rstd, static_cast<std::size_t>(rows), DType::kFp32), ref.rstd,
                                       rmsnorm_rstd_tolerance())));
    EXPECT_TRUE(matches(compare_values(at + "dx", download(dx, n, t), refg.dx, rmsnorm_dx_tolerance(t))));
    EXPECT_TRUE(matches(compare_values(at + "dweight", download(dw, static_cast<std::size_t>(cols), DType::kFp32),
                                       refg.dweight, rmsnorm_dweight_tolerance(rows))));
    for (void* p : {x, w, dy, y, dx}) cudaFree(p);
    for (float* p : {rstd, dw, ws}) cudaFree(p);
  }
}

// x one element off 16-byte alignment (scalar path); forward in place (y = x) and backward
// in place (dx = dy, dweight computed first) give the out-of-place bits; dweight twice: same bits.
TEST_P(RmsNormGpu, MisalignedInPlaceAndDeterministic) {
  SEQSCALE_REQUIRE_GPU();
  const DType t = GetParam();
  const auto es = static_cast<std::size_t>(dtype_bytes(t));
  std::mt19937 rng(testing_support::test_seed());
  for (std::int64_t cols : {std::int64_t{96}, std::int64_t{4096}}) {  // a warp per row; a CTA per row
    const std::int64_t rows = 129;
    const auto n = static_cast<std::size_t>(rows * cols);
    std::vector<float> xr, wr, dyr;
    void* xbuf = upload(normal(n + 1, rng, 1.5f, 0.5f), t, &xr);
    xr.erase(xr.begin());
    void* x = static_cast<char*>(xbuf) + es;
    void* w = upload(normal(static_cast<std::size_t>(cols), rng, 1.f, 0.f), t, &wr);
    void* dy = upload(normal(n, rng, 1.f, 0.f), t, &dyr);
    void *y, *dx;
    float *rstd, *dw1, *dw2, *ws;
    ASSERT_EQ(cudaMalloc(&y, n * es), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&dx, n * es), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&rstd, static_cast<std::size_t>(rows) * 4), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&dw1, static_cast<std::size_t>(cols) * 4), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&dw2, static_cast<std::size_t>(cols) * 4), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&ws, static_cast<std::size_t>(rmsnorm_bwd_cost(rows, cols, t).workspace_bytes)), cudaSuccess);
    rmsnorm_fwd(RmsNormFwdParams{x, w, y, rstd, rows, cols, static_cast<float>(kEps), t}, nullptr);
    rmsnorm_bwd(RmsNormBwdParams{dy, x, w, rstd, dx, dw1, ws, rows, cols, t}, nullptr);
    rmsnorm_bwd(RmsNormBwdParams{dy, x, w, rstd, dy, dw2, ws, rows, cols, t}, nullptr);  // in place
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const auto y_out = download(y, n, t);
    rmsnorm_fwd(RmsNormFwdParams{x, w, x, nullptr, rows, cols, static_cast<float>(kEps), t}, nullptr);  // in place
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const std::string at = std::to_string(cols) + " ";
    const auto ref = rmsnorm_fwd_ref(xr, wr, rows, cols, kEps);
    EXPECT_TRUE(matches(compare_values(at + "y", y_out, ref.y, rmsnorm_y_tolerance(t))));
    const auto y_in_place = download(x, n, t);
    EXPECT_EQ(std::memcmp(y_out.data(), y_in_place.data(), n * sizeof(float)), 0) << at << "in-place y differs";
    const auto dx_out = download(dx, n, t), dx_in_place = download(dy, n, t);
    EXPECT_EQ(std::memcmp(dx_out.data(), dx_in_place.data(), n * sizeof(float)), 0) << at << "in-place dx differs";
    EXPECT_TRUE(matches(compare_values(at + "dx", dx_out, rmsnorm_bwd_ref(dyr, xr, wr, rows, cols, kEps).dx,
                                       rmsnorm_dx_tolerance(t))));
    const auto a = download(dw1, static_cast<std::size_t>(cols), DType::kFp32);
    const auto b = download(dw2, static_cast<std::size_t>(cols), DType::kFp32);
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << at << "dweight not bitwise reproducible";
    for (void* p : {xbuf, w, dy, y, dx}) cudaFree(p);
    for (float* p : {rstd, dw1, dw2, ws}) cudaFree(p);
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, RmsNormGpu, ::testing::Values(DType::kFp32, DType::kFp16, DType::kBf16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(RmsNormGpuErrors, NameTheField) {
  SEQSCALE_REQUIRE_GPU();
  RmsNormBwdParams p;
  p.rows = 3;
  p.cols = 8;
  p.dy = p.x = p.weight = p.dx = &p;
  try {
    rmsnorm_bwd(p, nullptr);
    ADD_FAILURE() << "null rstd accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "rmsnorm_bwd: rstd is null");
  }
}

}  // namespace
}  // namespace seqscale
