// Naive Evoformer attention (cuBLAS + fused softmax) vs the double CPU reference, forward
// and backward, at scaled DS4Sci shapes and awkward L (17, 20, 250), with fully masked rows
// and -1e9 mask biases. Tolerances (ANCHORS.md s1, DS4Sci's own test): max-abs error
// < 1e-2 (fp16) / 5e-2 (bf16) for O, dQ, dK, dV and twice that for d(pair bias); fp32
// (reference runs, no TF32 in cuBLAS's default math) 1e-4.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <cstring>
#include <random>

#include "kernels/common/half.h"
#include "kernels/evoformer_attn/evoformer_attn.cuh"
#include "kernels/evoformer_attn/evoformer_attn_ref.h"
#include "tests/support/device_data.h"
#include "tests/support/gpu.h"

namespace seqscale {
namespace {

using testing_support::download;
using testing_support::upload;

double max_abs_diff(const std::vector<float>& got, const std::vector<double>& want) {
  double m = 0;
  for (size_t i = 0; i < got.size(); ++i) m = std::max(m, std::fabs(static_cast<double>(got[i]) - want[i]));
  return m;
}

class EvoformerAttnNaiveGpu : public ::testing::TestWithParam<DType> {};

TEST_P(EvoformerAttnNaiveGpu, ForwardAndBackwardMatchReference) {
  SEQSCALE_REQUIRE_GPU();
  const DType t = GetParam();
  const double tol = t == DType::kFp32 ? 1e-4 : (t == DType::kFp16 ? 1e-2 : 5e-2);
  std::mt19937 rng(std::random_device{}());
  std::normal_distribution<float> nd(0, 1);
  cublasHandle_t handle = nullptr;
  ASSERT_EQ(cublasCreate(&handle), CUBLAS_STATUS_SUCCESS);
  // DS4Sci test shapes scaled down (N 256 -> 8, 512 -> 8) plus awkward lengths.
  for (auto s : {EvoformerAttnShape{1, 8, 64, 4, 32}, {1, 8, 32, 8, 8}, {1, 3, 17, 2, 16}, {2, 2, 20, 4, 32},
                 {1, 2, 250, 2, 64}}) {
    std::vector<float> q(static_cast<size_t>(s.qkv_elements())), k(q.size()), v(q.size()), d_o(q.size());
    std::vector<float> mask(static_cast<size_t>(s.batch * s.n * s.len)), pair(static_cast<size_t>(s.batch * s.heads * s.len * s.len));
    for (auto* x : {&q, &k, &v, &d_o, &pair}) for (auto& e : *x) e = nd(rng);
    for (size_t j = 0; j < mask.size(); ++j) mask[j] = (rng() % 4 == 0) ? -1e9f : 0.f;
    // (b=0, n=0) fully masked with -inf: zeros, not NaN, on every path. (A row masked only
    // by a finite -1e9 is uniform in fp32 math on every implementation, OpenFold's too.)
    for (std::int64_t j = 0; j < s.len; ++j) mask[static_cast<size_t>(j)] = -std::numeric_limits<float>::infinity();
    std::vector<float> qr, kr, vr, dor, mr, pr;
    EvoformerAttnParams p;
    p.shape = s;
    p.io = t;
    p.q = upload(q, t, &qr);
    p.k = upload(k, t, &kr);
    p.v = upload(v, t, &vr);
    p.mask_bias = upload(mask, t, &mr);
    p.pair_bias = upload(pair, t, &pr);
    const size_t es = static_cast<size_t>(dtype_bytes(t));
    ASSERT_EQ(cudaMalloc(&p.o, q.size() * es), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&p.probs, static_cast<size_t>(s.logits_elements()) * es), cudaSuccess);
    EvoformerAttnGrads g;
    g.d_o = upload(d_o, t, &dor);
    ASSERT_EQ(cudaMalloc(&g.dq, q.size() * es), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&g.dk, q.size() * es), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&g.dv, q.size() * es), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&g.d_probs, static_cast<size_t>(s.logits_elements()) * es), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&g.d_pair, pair.size() * 4), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&g.d_mask, mask.size() * 4), cudaSuccess);

    evoformer_attn_naive_fwd(p, handle, nullptr);
    evoformer_attn_naive_bwd(p, g, handle, nullptr);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);

    // fp16 turns -1e9 into -inf: the reference sees the same rounded mask.
    const auto ref = evoformer_attn_fwd_ref(s, qr, kr, vr, mr.data(), pr.data());
    const auto rg = evoformer_attn_bwd_ref(s, qr, kr, vr, mr.data(), pr.data(), dor);
    const std::string at = "L=" + std::to_string(s.len) + " D=" + std::to_string(s.head_dim);
    EXPECT_LT(max_abs_diff(download(p.o, q.size(), t), ref.o), tol) << "O " << at;
    EXPECT_LT(max_abs_diff(download(g.dq, q.size(), t), rg.dq), tol) << "dQ " << at;
    EXPECT_LT(max_abs_diff(download(g.dk, q.size(), t), rg.dk), tol) << "dK " << at;
    EXPECT_LT(max_abs_diff(download(g.dv, q.size(), t), rg.dv), tol) << "dV " << at;
    EXPECT_LT(max_abs_diff(download(g.d_pair, pair.size(), DType::kFp32), rg.dpair), 2 * tol) << "dPair " << at;
    for (void* x : {const_cast<void*>(p.q), const_cast<void*>(p.k), const_cast<void*>(p.v),
                    const_cast<void*>(p.mask_bias), const_cast<void*>(p.pair_bias), p.o, p.probs,
                    const_cast<void*>(g.d_o), g.dq, g.dk, g.dv, g.d_probs}) {
      cudaFree(x);
    }
    cudaFree(g.d_pair);
    cudaFree(g.d_mask);
  }
  cublasDestroy(handle);
}

class EvoformerAttnFusedGpu : public ::testing::TestWithParam<DType> {};

TEST_P(EvoformerAttnFusedGpu, ForwardAndBackwardMatchReferenceBothPairGradModes) {
  SEQSCALE_REQUIRE_GPU();
  const DType t = GetParam();
  const double tol = t == DType::kFp32 ? 1e-4 : (t == DType::kFp16 ? 1e-2 : 5e-2);
  std::mt19937 rng(std::random_device{}());
  std::normal_distribution<float> nd(0, 1);
  for (auto s : {EvoformerAttnShape{1, 8, 64, 4, 32}, {1, 8, 32, 8, 8}, {1, 3, 17, 2, 16}, {2, 2, 20, 4, 64},
                 {1, 2, 250, 2, 128}, {1, 1, 1, 1, 8}}) {
    std::vector<float> q(static_cast<size_t>(s.qkv_elements())), k(q.size()), v(q.size()), d_o(q.size());
    std::vector<float> mask(static_cast<size_t>(s.batch * s.n * s.len)), pair(static_cast<size_t>(s.batch * s.heads * s.len * s.len));
    for (auto* x : {&q, &k, &v, &d_o, &pair}) for (auto& e : *x) e = nd(rng);
    for (size_t j = 0; j < mask.size(); ++j) mask[j] = (rng() % 4 == 0) ? -1e9f : 0.f;
    for (std::int64_t j = 0; j < s.len; ++j) mask[static_cast<size_t>(j)] = -std::numeric_limits<float>::infinity();
    std::vector<float> qr, kr, vr, dor, mr, pr;
    EvoformerAttnFusedParams p;
    p.a.shape = s;
    p.a.io = t;
    p.a.q = upload(q, t, &qr);
    p.a.k = upload(k, t, &kr);
    p.a.v = upload(v, t, &vr);
    p.a.mask_bias = upload(mask, t, &mr);
    p.a.pair_bias = upload(pair, t, &pr);
    const size_t es = static_cast<size_t>(dtype_bytes(t));
    const size_t rows = static_cast<size_t>(s.rows() * s.heads * s.len);
    ASSERT_EQ(cudaMalloc(&p.a.o, q.size() * es), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&p.lse, rows * 4), cudaSuccess);
    EvoformerAttnFusedGrads g;
    g.d_o = upload(d_o, t, &dor);
    ASSERT_EQ(cudaMalloc(&g.dq, q.size() * es), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&g.dk, q.size() * es), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&g.dv, q.size() * es), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&g.row_dot, rows * 4), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&g.d_pair, pair.size() * 4), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&g.d_mask_partial, rows * 4), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&g.d_mask, mask.size() * 4), cudaSuccess);

    evoformer_attn_fused_fwd(p, nullptr);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const auto ref = evoformer_attn_fwd_ref(s, qr, kr, vr, mr.data(), pr.data());
    const auto rg = evoformer_attn_bwd_ref(s, qr, kr, vr, mr.data(), pr.data(), dor);
    const std::string at = "L=" + std::to_string(s.len) + " D=" + std::to_string(s.head_dim);
    const auto o = download(p.a.o, q.size(), t);
    for (float x : o) ASSERT_FALSE(std::isnan(x)) << at;
    EXPECT_LT(max_abs_diff(o, ref.o), tol) << "O " << at;
    std::vector<float> lse(rows);
    cudaMemcpy(lse.data(), p.lse, rows * 4, cudaMemcpyDeviceToHost);
    for (size_t r = 0; r < rows; ++r) {
      if (std::isinf(ref.lse[r])) {
        EXPECT_TRUE(std::isinf(lse[r]) && lse[r] < 0) << "lse of a fully masked row " << r;
      } else {
        EXPECT_NEAR(lse[r], ref.lse[r], 1e-2 * (1 + std::fabs(ref.lse[r]))) << "lse " << r;
      }
    }
    std::vector<float> first_pair;
    for (PairGradMode mode : {PairGradMode::kAtomic, PairGradMode::kDeterministic, PairGradMode::kDeterministic}) {
      g.pair_mode = mode;
      evoformer_attn_fused_bwd(p, g, nullptr);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      EXPECT_LT(max_abs_diff(download(g.dq, q.size(), t), rg.dq), tol) << "dQ " << at;
      EXPECT_LT(max_abs_diff(download(g.dk, q.size(), t), rg.dk), tol) << "dK " << at;
      EXPECT_LT(max_abs_diff(download(g.dv, q.size(), t), rg.dv), tol) << "dV " << at;
      const auto dpair = download(g.d_pair, pair.size(), DType::kFp32);
      EXPECT_LT(max_abs_diff(dpair, rg.dpair), 2 * tol) << "dPair " << at;
      EXPECT_LT(max_abs_diff(download(g.d_mask, mask.size(), DType::kFp32), rg.dmask), 2 * tol * s.heads) << "dMask " << at;
      if (mode == PairGradMode::kDeterministic) {
        if (first_pair.empty()) first_pair = dpair;
        else EXPECT_EQ(std::memcmp(first_pair.data(), dpair.data(), dpair.size() * 4), 0) << "deterministic mode differs between runs";
      }
    }
    for (void* x : {const_cast<void*>(p.a.q), const_cast<void*>(p.a.k), const_cast<void*>(p.a.v),
                    const_cast<void*>(p.a.mask_bias), const_cast<void*>(p.a.pair_bias), p.a.o,
                    const_cast<void*>(g.d_o), g.dq, g.dk, g.dv}) {
      cudaFree(x);
    }
    for (float* x : {p.lse, g.row_dot, g.d_pair, g.d_mask_partial, g.d_mask}) cudaFree(x);
  }
}

TEST(EvoformerAttnFusedGpuErrors, RejectsUnsupportedHeadDim) {
  SEQSCALE_REQUIRE_GPU();
  EvoformerAttnFusedParams p;
  p.a.shape = {1, 1, 4, 1, 24};
  p.a.q = p.a.k = p.a.v = reinterpret_cast<void*>(16);
  p.a.o = reinterpret_cast<void*>(16);
  p.lse = reinterpret_cast<float*>(16);
  EXPECT_THROW(evoformer_attn_fused_fwd(p, nullptr), std::invalid_argument);
}

// The tensor-core forward and backward (fp16/bf16, D 16..128) against the SIMT kernels and
// the double reference on the same inputs, with fully masked rows and lengths that end
// mid-tile (17, 100, 250: not multiples of the 64-row tiles).
class EvoformerAttnFusedTcGpu : public ::testing::TestWithParam<DType> {};

TEST_P(EvoformerAttnFusedTcGpu, TensorCoreMatchesSimtAndReference) {
  SEQSCALE_REQUIRE_GPU();
  const DType t = GetParam();
  const double tol = t == DType::kFp16 ? 1e-2 : 5e-2;
  std::mt19937 rng(std::random_device{}());
  std::normal_distribution<float> nd(0, 1);
  for (auto s : {EvoformerAttnShape{1, 3, 17, 2, 16}, {1, 4, 64, 4, 32}, {2, 2, 100, 2, 64}, {1, 2, 250, 2, 128},
                 {1, 1, 1, 1, 32}}) {
    std::vector<float> q(static_cast<size_t>(s.qkv_elements())), k(q.size()), v(q.size());
    std::vector<float> mask(static_cast<size_t>(s.batch * s.n * s.len)), pair(static_cast<size_t>(s.batch * s.heads * s.len * s.len));
    for (auto* x : {&q, &k, &v, &pair}) for (auto& e : *x) e = nd(rng);
    for (size_t j = 0; j < mask.size(); ++j) mask[j] = (rng() % 4 == 0) ? -1e9f : 0.f;
    for (std::int64_t j = 0; j < s.len; ++j) mask[static_cast<size_t>(j)] = -std::numeric_limits<float>::infinity();
    std::vector<float> qr, kr, vr, mr, pr;
    EvoformerAttnFusedParams p;
    p.a.shape = s;
    p.a.io = t;
    p.a.q = upload(q, t, &qr);
    p.a.k = upload(k, t, &kr);
    p.a.v = upload(v, t, &vr);
    p.a.mask_bias = upload(mask, t, &mr);
    p.a.pair_bias = upload(pair, t, &pr);
    const size_t es = static_cast<size_t>(dtype_bytes(t));
    const size_t rows = static_cast<size_t>(s.rows() * s.heads * s.len);
    ASSERT_EQ(cudaMalloc(&p.a.o, q.size() * es), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&p.lse, rows * 4), cudaSuccess);
    const auto ref = evoformer_attn_fwd_ref(s, qr, kr, vr, mr.data(), pr.data());
    const std::string at = "L=" + std::to_string(s.len) + " D=" + std::to_string(s.head_dim);
    std::vector<float> by_kernel[2], lse_by_kernel[2];
    int idx = 0;
    for (FusedKernel kernel : {FusedKernel::kTensorCore, FusedKernel::kSimt}) {
      p.kernel = kernel;
      evoformer_attn_fused_fwd(p, nullptr);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << at;
      by_kernel[idx] = download(p.a.o, q.size(), t);
      lse_by_kernel[idx].resize(rows);
      cudaMemcpy(lse_by_kernel[idx].data(), p.lse, rows * 4, cudaMemcpyDeviceToHost);
      for (float x : by_kernel[idx]) ASSERT_FALSE(std::isnan(x)) << at;
      EXPECT_LT(max_abs_diff(by_kernel[idx], ref.o), tol) << (idx == 0 ? "tensor-core " : "SIMT ") << at;
      ++idx;
    }
    for (size_t r = 0; r < rows; ++r) {
      if (std::isinf(ref.lse[r])) {
        EXPECT_TRUE(std::isinf(lse_by_kernel[0][r]) && lse_by_kernel[0][r] < 0) << "lse of a fully masked row " << r;
      } else {
        EXPECT_NEAR(lse_by_kernel[0][r], ref.lse[r], 1e-2 * (1 + std::fabs(ref.lse[r]))) << "lse " << r << " " << at;
      }
    }
    // Backward on each kernel family (from the SIMT forward's O and lse, both valid).
    std::vector<float> d_o(q.size()), dor;
    for (auto& e : d_o) e = nd(rng);
    EvoformerAttnFusedGrads g;
    g.d_o = upload(d_o, t, &dor);
    ASSERT_EQ(cudaMalloc(&g.dq, q.size() * es), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&g.dk, q.size() * es), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&g.dv, q.size() * es), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&g.row_dot, rows * 4), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&g.d_pair, pair.size() * 4), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&g.d_mask_partial, rows * 4), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&g.d_mask, mask.size() * 4), cudaSuccess);
    const auto rg = evoformer_attn_bwd_ref(s, qr, kr, vr, mr.data(), pr.data(), dor);
    for (FusedKernel kernel : {FusedKernel::kTensorCore, FusedKernel::kSimt}) {
      const char* which = kernel == FusedKernel::kTensorCore ? "tensor-core " : "SIMT ";
      p.kernel = kernel;
      evoformer_attn_fused_bwd(p, g, nullptr);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << which << at;
      EXPECT_LT(max_abs_diff(download(g.dq, q.size(), t), rg.dq), tol) << which << "dQ " << at;
      EXPECT_LT(max_abs_diff(download(g.dk, q.size(), t), rg.dk), tol) << which << "dK " << at;
      EXPECT_LT(max_abs_diff(download(g.dv, q.size(), t), rg.dv), tol) << which << "dV " << at;
      EXPECT_LT(max_abs_diff(download(g.d_pair, pair.size(), DType::kFp32), rg.dpair), 2 * tol) << which << "dPair " << at;
      EXPECT_LT(max_abs_diff(download(g.d_mask, mask.size(), DType::kFp32), rg.dmask), 2 * tol * s.heads)
          << which << "dMask " << at;
    }
    for (void* x : {const_cast<void*>(p.a.q), const_cast<void*>(p.a.k), const_cast<void*>(p.a.v),
                    const_cast<void*>(p.a.mask_bias), const_cast<void*>(p.a.pair_bias), p.a.o,
                    const_cast<void*>(g.d_o), g.dq, g.dk, g.dv}) {
      cudaFree(x);
    }
    for (float* x : {p.lse, g.row_dot, g.d_pair, g.d_mask_partial, g.d_mask}) cudaFree(x);
  }
}

TEST(EvoformerAttnFusedGpuErrors, TensorCoreRefusesFp32AndHeadDim8) {
  SEQSCALE_REQUIRE_GPU();
  EXPECT_FALSE(evoformer_attn_fused_tc_supported(DType::kFp32, 32));
  EXPECT_FALSE(evoformer_attn_fused_tc_supported(DType::kBf16, 8));
  EXPECT_TRUE(evoformer_attn_fused_tc_supported(DType::kBf16, 128));
  EvoformerAttnFusedParams p;
  p.a.shape = {1, 1, 4, 1, 32};
  p.a.io = DType::kFp32;
  p.a.q = p.a.k = p.a.v = reinterpret_cast<void*>(16);
  p.a.o = reinterpret_cast<void*>(16);
  p.lse = reinterpret_cast<float*>(16);
  p.kernel = FusedKernel::kTensorCore;
  EXPECT_THROW(evoformer_attn_fused_fwd(p, nullptr), std::invalid_argument);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, EvoformerAttnFusedTcGpu, ::testing::Values(DType::kFp16, DType::kBf16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

INSTANTIATE_TEST_SUITE_P(Dtypes, EvoformerAttnFusedGpu, ::testing::Values(DType::kFp32, DType::kFp16, DType::kBf16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

INSTANTIATE_TEST_SUITE_P(Dtypes, EvoformerAttnNaiveGpu, ::testing::Values(DType::kFp32, DType::kFp16, DType::kBf16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace seqscale
