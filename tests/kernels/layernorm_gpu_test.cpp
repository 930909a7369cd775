// LayerNorm CUDA kernel vs the double reference, fp32/fp16/bf16, awkward widths.
// Tolerances: fp32 1e-4 (Welford in fp32 over <= 6144 terms); fp16 and bf16 outputs are
// one rounding of an fp32 value: 2 ulp of the dtype relative to |y| + 1e-3 absolute.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernels/common/half.h"
#include "kernels/layernorm/layernorm.cuh"
#include "kernels/layernorm/layernorm_cost.h"
#include "kernels/layernorm/layernorm_ref.h"
#include "tests/support/gpu.h"

namespace seqscale {
namespace {

std::vector<std::uint8_t> encode(const std::vector<float>& v, DType t, std::vector<float>* rounded) {
  const auto es = static_cast<size_t>(dtype_bytes(t));
  std::vector<std::uint8_t> bytes(v.size() * es);
  rounded->resize(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    if (t == DType::kFp32) {
      std::memcpy(&bytes[i * 4], &v[i], 4);
      (*rounded)[i] = v[i];
    } else {
      const std::uint16_t h = t == DType::kFp16 ? float_to_fp16(v[i]) : float_to_bf16(v[i]);
      std::memcpy(&bytes[i * 2], &h, 2);
      (*rounded)[i] = t == DType::kFp16 ? fp16_to_float(h) : bf16_to_float(h);
    }
  }
  return bytes;
}

float decode(const std::uint8_t* p, DType t) {
  if (t == DType::kFp32) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  std::uint16_t h;
  std::memcpy(&h, p, 2);
  return t == DType::kFp16 ? fp16_to_float(h) : bf16_to_float(h);
}

void* to_device(const std::vector<std::uint8_t>& host) {
  void* d = nullptr;
  EXPECT_EQ(cudaMalloc(&d, host.size() + 1), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(d, host.data(), host.size(), cudaMemcpyHostToDevice), cudaSuccess);
  return d;
}

double tolerance(DType t) { return t == DType::kFp32 ? 1e-4 : (t == DType::kFp16 ? 2.0 / 1024 : 2.0 / 128); }

class LayernormGpu : public ::testing::TestWithParam<DType> {};

TEST_P(LayernormGpu, ForwardAndBackwardMatchReference) {
  SEQSCALE_REQUIRE_GPU();
  const DType t = GetParam();
  std::mt19937 rng(std::random_device{}());
  std::normal_distribution<float> nd(0.5f, 1.5f);
  for (auto [rows, cols] : {std::pair{1, 1}, {37, 17}, {129, 33}, {64, 1000}, {5, 6144}, {300, 128}}) {
    const size_t n = static_cast<size_t>(rows) * cols;
    std::vector<float> x(n), w(cols), b(cols), dy(n), xr, wr, br, dyr;
    for (auto* v : {&x, &w, &b, &dy}) for (auto& e : *v) e = nd(rng);
    void* dx_in = to_device(encode(x, t, &xr));
    void* dw = to_device(encode(w, t, &wr));
    void* db = to_device(encode(b, t, &br));
    void* ddy = to_device(encode(dy, t, &dyr));
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

    std::vector<std::uint8_t> y(n * es), gx(n * es);
    std::vector<float> gw(cols), gb(cols);
    cudaMemcpy(y.data(), dy_out, n * es, cudaMemcpyDeviceToHost);
    cudaMemcpy(gx.data(), dgrad_x, n * es, cudaMemcpyDeviceToHost);
    cudaMemcpy(gw.data(), dweight, cols * 4, cudaMemcpyDeviceToHost);
    cudaMemcpy(gb.data(), dbias, cols * 4, cudaMemcpyDeviceToHost);
    const auto ref = layernorm_fwd_ref(xr, wr, br, rows, cols, 1e-5);
    const auto refg = layernorm_bwd_ref(dyr, xr, wr, rows, cols, 1e-5);
    const double tol = tolerance(t);
    for (size_t i = 0; i < n; ++i) {
      ASSERT_NEAR(decode(&y[i * es], t), ref.y[i], tol * (1 + std::fabs(ref.y[i]))) << rows << "x" << cols << " i=" << i;
      ASSERT_NEAR(decode(&gx[i * es], t), refg.dx[i], 4 * tol * (1 + std::fabs(refg.dx[i]))) << i;
    }
    for (int c = 0; c < cols; ++c) {  // fp32 sums over rows: relative 1e-4 of the magnitude
      ASSERT_NEAR(gw[c], refg.dweight[c], 1e-3 * (std::sqrt(rows) + std::fabs(refg.dweight[c])));
      ASSERT_NEAR(gb[c], refg.dbias[c], 1e-3 * (std::sqrt(rows) + std::fabs(refg.dbias[c])));
    }
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
