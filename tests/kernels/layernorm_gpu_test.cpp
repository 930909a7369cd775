// LayerNorm CUDA kernel vs the double reference, fp32/fp16/bf16, awkward widths.
// Tolerances: layernorm_y_tolerance, layernorm_dx_tolerance and
// layernorm_param_grad_tolerance (layernorm_ref.h), the ones the bench's check uses:
// fp32 1e-4 (Welford in fp32 over <= 6144 terms); fp16 and bf16 outputs are one rounding of
// an fp32 value: 2 ulp of the dtype relative to |y| plus the same absolute floor; dx 4x
// that (three rounded terms); dweight/dbias are fp32 sums over rows:
// 1e-3 x (sqrt(rows) + |ref|).
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "common/check_result.h"
#include "kernels/layernorm/layernorm.cuh"
#include "kernels/layernorm/layernorm_cost.h"
#include "kernels/layernorm/layernorm_ref.h"
#include "tests/support/device_data.h"
#include "tests/support/gpu.h"
#include "tests/support/matches.h"
#include "tests/support/seed.h"

namespace seqscale {
namespace {

using testing_support::download;
using testing_support::matches;
using testing_support::upload;

class LayernormGpu : public ::testing::TestWithParam<DType> {};

TEST_P(LayernormGpu, ForwardAndBackwardMatchReference) {
  SEQSCALE_REQUIRE_GPU();
  const DType t = GetParam();
  std::mt19937 rng(testing_support::test_seed());
  std::normal_distribution<float> nd(0.5f, 1.5f);
  for (auto [rows, cols] : {std::pair{1, 1}, {37, 17}, {129, 33}, {64, 1000}, {5, 6144}, {300, 128}}) {
    const size_t n = static_cast<size_t>(rows) * cols;
    std::vector<float> x(n), w(cols), b(cols), dy(n), xr, wr, br, dyr;
    for (auto* v : {&x, &w, &b, &dy}) for (auto& e : *v) e = nd(rng);
    void* dx_in = upload(x, t, &xr);
    void* dw = upload(w, t, &wr);
    void* db = upload(b, t, &br);
    void* ddy = upload(dy, t, &dyr);
    const auto es = static_cast<size_t>(dtype_bytes(t));
    void *dy_out, *dgrad_x;
    float *mean, *rstd, *dweight, *dbias, *ws;
    ASSERT_EQ(cudaMalloc(&dy_out, n * es), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&dgrad_x, n * es), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&mean, rows * 4), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&rstd, rows * 4), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&dweight, cols * 4), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&dbias, cols * 4), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&ws, layernorm_bwd_cost(rows, cols, t).workspace_bytes), cudaSuccess);

    LayerNormFwdParams f{dx_in, dw, db, dy_out, mean, rstd, rows, cols, 1e-5f, t};
    layernorm_fwd(f, nullptr);
    LayerNormBwdParams g{ddy, dx_in, dw, mean, rstd, dgrad_x, dweight, dbias, ws, rows, cols, t};
    layernorm_bwd(g, nullptr);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);

    const auto ref = layernorm_fwd_ref(xr, wr, br, rows, cols, 1e-5);
    const auto refg = layernorm_bwd_ref(dyr, xr, wr, rows, cols, 1e-5);
    const std::string at = std::to_string(rows) + "x" + std::to_string(cols) + " ";
    EXPECT_TRUE(matches(compare_values(at + "y", download(dy_out, n, t), ref.y, layernorm_y_tolerance(t))));
    EXPECT_TRUE(matches(compare_values(at + "dx", download(dgrad_x, n, t), refg.dx, layernorm_dx_tolerance(t))));
    EXPECT_TRUE(matches(compare_values(at + "dweight", download(dweight, cols, DType::kFp32), refg.dweight,
                                       layernorm_param_grad_tolerance(rows))));
    EXPECT_TRUE(matches(compare_values(at + "dbias", download(dbias, cols, DType::kFp32), refg.dbias,
                                       layernorm_param_grad_tolerance(rows))));
    for (void* p : {dx_in, dw, db, ddy, dy_out, dgrad_x}) cudaFree(p);
    for (float* p : {mean, rstd, dweight, dbias, ws}) cudaFree(p);
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, LayernormGpu, ::testing::Values(DType::kFp32, DType::kFp16, DType::kBf16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(LayernormGpuErrors, RejectsBadShape) {
  SEQSCALE_REQUIRE_GPU();
  LayerNormFwdParams f;
  f.rows = 4;
  f.cols = 0;
  EXPECT_THROW(layernorm_fwd(f, nullptr), std::invalid_argument);
}

}  // namespace
}  // namespace seqscale
