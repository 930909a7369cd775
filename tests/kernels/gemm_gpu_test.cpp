// cuBLASLt GEMM vs the double reference. Tolerance: gemm_tolerance (gemm_ref.h), the one
// the bench's check uses: inputs are exactly representable in the dtype (rounded on the
// host first); fp32 accumulation over k terms of |x| <= 1 errs by ~k * 2^-24; the fp16/bf16
// output rounding dominates: 1 ulp of |c| + k * 1e-6. A TF32 GEMM fails the fp32 case.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>

#include "common/check_result.h"
#include "common/half.h"
#include "kernels/gemm/gemm.cuh"
#include "kernels/gemm/gemm_ref.h"
#include "tests/support/device_data.h"
#include "tests/support/gpu.h"
#include "tests/support/matches.h"
#include "tests/support/seed.h"

namespace seqscale {
namespace {

class GemmGpu : public ::testing::TestWithParam<DType> {};

TEST_P(GemmGpu, MatchesReferenceOnAwkwardShapes) {
  SEQSCALE_REQUIRE_GPU();
  const DType t = GetParam();
  const auto es = static_cast<size_t>(dtype_bytes(t));
  std::mt19937 rng(testing_support::test_seed());
  std::uniform_real_distribution<float> d(-1, 1);
  void* workspace = nullptr;
  ASSERT_EQ(cudaMalloc(&workspace, 32 << 20), cudaSuccess);
  GemmRunner runner(workspace, 32 << 20);
  for (auto [m, n, k] : {std::tuple{1, 1, 1}, {17, 33, 65}, {128, 96, 250}, {333, 64, 1000}}) {
    auto make = [&](std::int64_t count, std::vector<float>* rounded) {
      std::vector<std::uint8_t> bytes(static_cast<size_t>(count) * es);
      rounded->resize(static_cast<size_t>(count));
      for (std::int64_t i = 0; i < count; ++i) {
        float v = d(rng);
        if (t == DType::kBf16) { const auto h = float_to_bf16(v); v = bf16_to_float(h); std::memcpy(&bytes[i * 2], &h, 2); }
        else if (t == DType::kFp16) { const auto h = float_to_fp16(v); v = fp16_to_float(h); std::memcpy(&bytes[i * 2], &h, 2); }
        else std::memcpy(&bytes[i * 4], &v, 4);
        (*rounded)[static_cast<size_t>(i)] = v;
      }
      void* dev = nullptr;
      EXPECT_EQ(cudaMalloc(&dev, bytes.size()), cudaSuccess);
      EXPECT_EQ(cudaMemcpy(dev, bytes.data(), bytes.size(), cudaMemcpyHostToDevice), cudaSuccess);
      return dev;
    };
    std::vector<float> ar, br;
    void* a = make(m * k, &ar);
    void* b = make(k * n, &br);
    void* c = nullptr;
    ASSERT_EQ(cudaMalloc(&c, static_cast<size_t>(m * n) * es), cudaSuccess);
    runner.run({a, b, c, m, n, k, t}, nullptr);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const std::vector<float> got = testing_support::download(c, static_cast<size_t>(m * n), t);
    std::vector<double> ref(static_cast<size_t>(m * n));
    gemm_ref(ar.data(), br.data(), ref.data(), m, n, k);
    const std::string at = std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k) + " c";
    EXPECT_TRUE(testing_support::matches(compare_values(at, got, ref, gemm_tolerance(t, k))));
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
  }
  cudaFree(workspace);
}

// The epilogues (gemm_epilogue.h) with every transpose, against gemm_ref + gemm_epilogue_ref
// on the same rounded inputs. n is a multiple of 8 (cuBLASLt's aux leading dimension), m and
// k are not; the bf16/fp16 cases must find an algorithm (the layer's fused MLP relies on
// it), fp32 is compared when cuBLASLt has one. A GELU output or aux rounded to the dtype,
// and the bias gradient a sum of m rounded terms, get the GEMM's tolerance plus one more
// rounding (cuBLASLt's GELU may evaluate tanh its own way: 1e-4 absolute more in fp32).
TEST_P(GemmGpu, EpiloguesMatchReference) {
  SEQSCALE_REQUIRE_GPU();
  const DType t = GetParam();
  const std::uint64_t seed = testing_support::test_seed();
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1, 1);
  auto random = [&](std::int64_t count) {
    std::vector<float> v(static_cast<size_t>(count));
    for (auto& x : v) x = d(rng);
    return v;
  };
  void* workspace = nullptr;
  ASSERT_EQ(cudaMalloc(&workspace, 32 << 20), cudaSuccess);
  GemmRunner runner(workspace, 32 << 20);
  const std::int64_t m = 37, n = 40, k = 53;
  CheckTolerance tol = gemm_tolerance(t, k);
  tol.rel += t == DType::kFp32 ? 0.0 : tol.rel;
  if (t == DType::kFp32) tol.abs += 1e-4;
  for (GemmEpilogue e : {GemmEpilogue::kBias, GemmEpilogue::kGeluAux, GemmEpilogue::kDGeluBgrad}) {
    for (int transposes = 0; transposes < 4; ++transposes) {
      const bool ta = transposes & 1, tb = transposes & 2;
      const bool with_bias = e != GemmEpilogue::kGeluAux || transposes % 2 == 0;
      const std::string at = "epilogue " + std::to_string(static_cast<int>(e)) + (ta ? " A^T" : "") + (tb ? " B^T" : "") +
                             (with_bias ? " with bias" : "") + " seed " + std::to_string(seed);
      SCOPED_TRACE(at);
      // op(A) [m, k] and op(B) [k, n] as the reference reads them; stored transposed if asked.
      std::vector<float> a = random(m * k), b = random(k * n), bias = random(n), aux_in = random(m * n);
      for (auto& x : aux_in) x *= 3.f;  // the GELU's curved region and both tails
      auto stored = [](const std::vector<float>& x, std::int64_t rows, std::int64_t cols, bool transpose) {
        if (!transpose) return x;
        std::vector<float> y(x.size());
        for (std::int64_t i = 0; i < rows; ++i)
          for (std::int64_t j = 0; j < cols; ++j) y[static_cast<size_t>(j * rows + i)] = x[static_cast<size_t>(i * cols + j)];
        return y;
      };
      std::vector<float> ar, br, bias_r, aux_r;
      void* da = testing_support::upload(stored(a, m, k, ta), t, &ar);
      void* db = testing_support::upload(stored(b, k, n, tb), t, &br);
      void* dbias = testing_support::upload(bias, t, &bias_r);
      void* daux = testing_support::upload(aux_in, t, &aux_r);
      void* dc = nullptr;
      ASSERT_EQ(cudaMalloc(&dc, static_cast<size_t>(m * n) * static_cast<size_t>(dtype_bytes(t))), cudaSuccess);
      GemmParams p{da, db, dc, m, n, k, t, ta, tb, e};
      if (e == GemmEpilogue::kDGeluBgrad) p.bias_grad = dbias;
      else if (with_bias) p.bias = dbias;
      if (e != GemmEpilogue::kBias) p.aux = daux;
      const bool ran = runner.try_run(p, nullptr);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      if (t != DType::kFp32) {
        ASSERT_TRUE(ran) << "cuBLASLt has no algorithm for " << at;
      }
      if (ran) {
        // The reference on the rounded values (un-transposed back).
        const std::vector<float> a_ref = stored(ar, k, m, ta), b_ref = stored(br, n, k, tb);
        std::vector<double> c(static_cast<size_t>(m * n)), aux_out(static_cast<size_t>(m * n)), bias_grad(static_cast<size_t>(n));
        gemm_ref(ta ? a_ref.data() : ar.data(), tb ? b_ref.data() : br.data(), c.data(), m, n, k);
        gemm_epilogue_ref(e, c.data(), m, n, with_bias ? bias_r.data() : nullptr, aux_r.data(), aux_out.data(),
                          e == GemmEpilogue::kDGeluBgrad ? bias_grad.data() : nullptr);
        EXPECT_TRUE(testing_support::matches(
            compare_values("c", testing_support::download(dc, static_cast<size_t>(m * n), t), c, tol)));
        if (e == GemmEpilogue::kGeluAux) {
          EXPECT_TRUE(testing_support::matches(
              compare_values("aux", testing_support::download(daux, static_cast<size_t>(m * n), t), aux_out, tol)));
        }
        if (e == GemmEpilogue::kDGeluBgrad) {
          CheckTolerance sum_tol = tol;
          sum_tol.abs *= static_cast<double>(m);
          EXPECT_TRUE(testing_support::matches(
              compare_values("bias_grad", testing_support::download(dbias, static_cast<size_t>(n), t), bias_grad, sum_tol)));
        }
      }
      for (void* q : {da, db, dbias, daux, dc}) cudaFree(q);
    }
  }
  // An aux leading dimension cuBLASLt refuses (n = 37): try_run says so and runs nothing.
  void* buf = nullptr;
  ASSERT_EQ(cudaMalloc(&buf, 1 << 20), cudaSuccess);
  GemmParams odd{buf, buf, buf, 8, 37, 8, t};
  odd.epilogue = GemmEpilogue::kGeluAux;
  odd.aux = buf;
  EXPECT_FALSE(runner.try_run(odd, nullptr));
  EXPECT_THROW(runner.run(odd, nullptr), std::runtime_error);
  cudaFree(buf);
  cudaFree(workspace);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, GemmGpu, ::testing::Values(DType::kFp32, DType::kFp16, DType::kBf16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace seqscale
