// cross_entropy CUDA (cuBLAS GEMMs + row kernels) vs the double reference, fp32/fp16/bf16:
// vocab 50 in chunks of 7 (a tail of 1) over 1000 tokens, GPT-NeoX's 50277 in chunks of
// 1024 (a tail of 101), one chunk, a single token, and the codon head (69); ignored and
// last-column targets; NaN for a target >= vocab; dW and d hidden bitwise run to run; and
// the plain cross-entropy over given logits. Tolerances: cross_entropy_loss_tolerance and
// cross_entropy_grad_tolerance (cross_entropy_ref.h), the bench check's: the logits'
// fp32 accumulation over h terms (8 h 2^-24, truncating adds allowed) and lse's fp32 sum
// over V (8 sqrt(V) 2^-24) for loss and lse; two roundings to the dtype (d logits for the
// GEMMs, d hidden on output) plus those for the gradients.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>

#include "kernels/cross_entropy/cross_entropy.cuh"
#include "kernels/cross_entropy/cross_entropy_cost.h"
#include "kernels/cross_entropy/cross_entropy_ref.h"
#include "tests/support/device_data.h"
#include "tests/support/gpu.h"
#include "tests/support/matches.h"
#include "tests/support/seed.h"

namespace seqscale {
namespace {

using testing_support::download;
using testing_support::matches;
using testing_support::upload;

class CrossEntropyGpu : public ::testing::TestWithParam<DType> {};

CrossEntropyShape shape(std::int64_t tokens, std::int64_t hidden, std::int64_t vocab, std::int64_t chunk) {
  CrossEntropyShape s;
  s.tokens = tokens;
  s.hidden = hidden;
  s.vocab = vocab;
  s.vocab_chunk = chunk;
  return s;
}

template <typename T>
T* device_copy(const std::vector<T>& v) {
  T* d = nullptr;
  EXPECT_EQ(cudaMalloc(&d, v.size() * sizeof(T) + 16), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(d, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  return d;
}

void* device_alloc(std::size_t bytes) {
  void* d = nullptr;
  EXPECT_EQ(cudaMalloc(&d, bytes + 16), cudaSuccess);
  return d;
}

struct HeadOutputs {  // one forward and backward on the device, the outputs back on the host
  std::vector<float> loss, lse, dhidden, dweight;
};

HeadOutputs run_head(const CrossEntropyShape& s, DType t, cublasHandle_t cublas, const void* hidden, const void* weight,
             const std::int32_t* targets, const float* dloss) {
  float* loss = static_cast<float*>(device_alloc(static_cast<std::size_t>(s.tokens) * 4));
  float* lse = static_cast<float*>(device_alloc(static_cast<std::size_t>(s.tokens) * 4));
  void* dhidden = device_alloc(static_cast<std::size_t>(s.tokens * s.hidden * dtype_bytes(t)));
  float* dweight = static_cast<float*>(device_alloc(static_cast<std::size_t>(s.vocab * s.hidden) * 4));
  void* fwd_ws = device_alloc(static_cast<std::size_t>(cross_entropy_fwd_cost(s, t).workspace_bytes));
  void* bwd_ws = device_alloc(static_cast<std::size_t>(cross_entropy_bwd_cost(s, t).workspace_bytes));
  cross_entropy_fwd(CrossEntropyFwdParams{hidden, weight, targets, loss, lse, fwd_ws, s, t, cublas}, nullptr);
  cross_entropy_bwd(CrossEntropyBwdParams{hidden, weight, targets, lse, dloss, dhidden, dweight, bwd_ws, s, t, cublas},
                    nullptr);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  HeadOutputs r{download(loss, static_cast<std::size_t>(s.tokens), DType::kFp32),
        download(lse, static_cast<std::size_t>(s.tokens), DType::kFp32),
        download(dhidden, static_cast<std::size_t>(s.tokens * s.hidden), t),
        download(dweight, static_cast<std::size_t>(s.vocab * s.hidden), DType::kFp32)};
  for (void* p : {static_cast<void*>(loss), static_cast<void*>(lse), dhidden, static_cast<void*>(dweight), fwd_ws, bwd_ws}) {
    cudaFree(p);
  }
  return r;
}

TEST_P(CrossEntropyGpu, ChunkedMatchesReference) {
  SEQSCALE_REQUIRE_GPU();
  const DType t = GetParam();
  std::mt19937 rng(testing_support::test_seed());
  cublasHandle_t cublas = nullptr;
  ASSERT_EQ(cublasCreate(&cublas), CUBLAS_STATUS_SUCCESS);
  for (const CrossEntropyShape& s : {shape(1000, 33, 50, 7), shape(17, 96, 50277, 1024), shape(5, 96, 50277, 60000),
                                     shape(1, 96, 50, 1024), shape(64, 256, 69, 1024), shape(17, 33, 50, 50)}) {
    std::uniform_real_distribution<float> u(-1.f, 1.f), g(0.5f, 1.5f);
    const float a = std::sqrt(3.f / static_cast<float>(s.hidden));
    std::vector<float> x(static_cast<std::size_t>(s.tokens * s.hidden)), w(static_cast<std::size_t>(s.vocab * s.hidden));
    std::vector<float> dloss(static_cast<std::size_t>(s.tokens)), xr, wr;
    for (auto& e : x) e = u(rng);
    for (auto& e : w) e = a * u(rng);
    for (auto& e : dloss) e = g(rng);
    std::vector<std::int32_t> targets(static_cast<std::size_t>(s.tokens));
    std::uniform_int_distribution<std::int32_t> pick(0, static_cast<std::int32_t>(s.vocab - 1));
    for (auto& e : targets) e = pick(rng);
    targets[0] = static_cast<std::int32_t>(s.vocab - 1);  // the tail chunk's last column
    if (s.tokens > 2) targets[2] = -100;                  // ignored
    void* dx = upload(x, t, &xr);
    void* dw = upload(w, t, &wr);
    std::int32_t* dt = device_copy(targets);
    float* ddl = device_copy(dloss);
    const HeadOutputs r = run_head(s, t, cublas, dx, dw, dt, ddl);
    const auto ref = cross_entropy_fwd_ref(xr, wr, targets, s);
    const auto refg = cross_entropy_bwd_ref(xr, wr, targets, dloss, s);
    const std::string at = "T" + std::to_string(s.tokens) + " h" + std::to_string(s.hidden) + " V" +
                           std::to_string(s.vocab) + "/" + std::to_string(s.vocab_chunk) + " ";
    const auto loss_tol = cross_entropy_loss_tolerance(s.hidden, s.vocab);
    const auto grad_tol = cross_entropy_grad_tolerance(t, s.hidden, s.vocab);
    EXPECT_TRUE(matches(compare_values(at + "loss", r.loss, ref.loss, loss_tol)));
    EXPECT_TRUE(matches(compare_values(at + "lse", r.lse, ref.lse, loss_tol)));
    EXPECT_TRUE(matches(compare_values(at + "dhidden", r.dhidden, refg.dhidden, grad_tol)));
    EXPECT_TRUE(matches(compare_values(at + "dweight", r.dweight, refg.dweight, grad_tol)));
    // Fixed reduction orders and one stream: a second run gives the same bits.
    const HeadOutputs again = run_head(s, t, cublas, dx, dw, dt, ddl);
    EXPECT_EQ(std::memcmp(r.dweight.data(), again.dweight.data(), r.dweight.size() * 4), 0) << at << "dW not reproducible";
    EXPECT_EQ(std::memcmp(r.dhidden.data(), again.dhidden.data(), r.dhidden.size() * 4), 0) << at << "dhidden not reproducible";
    EXPECT_EQ(std::memcmp(r.loss.data(), again.loss.data(), r.loss.size() * 4), 0) << at << "loss not reproducible";
    for (void* p : {dx, dw, static_cast<void*>(dt), static_cast<void*>(ddl)}) cudaFree(p);
  }
  cublasDestroy(cublas);
}

TEST_P(CrossEntropyGpu, LogitsMatchReference) {
  SEQSCALE_REQUIRE_GPU();
  const DType t = GetParam();
  std::mt19937 rng(testing_support::test_seed());
  for (auto [tokens, vocab] : {std::pair<std::int64_t, std::int64_t>{1, 50}, {17, 50277}, {1000, 50}, {300, 69}}) {
    std::uniform_real_distribution<float> u(-4.f, 4.f), g(0.5f, 1.5f);
    std::vector<float> logits(static_cast<std::size_t>(tokens * vocab)), dloss(static_cast<std::size_t>(tokens)), lr;
    for (auto& e : logits) e = u(rng);
    for (auto& e : dloss) e = g(rng);
    std::vector<std::int32_t> targets(static_cast<std::size_t>(tokens));
    std::uniform_int_distribution<std::int32_t> pick(0, static_cast<std::int32_t>(vocab - 1));
    for (auto& e : targets) e = pick(rng);
    targets[0] = static_cast<std::int32_t>(vocab - 1);
    if (tokens > 2) targets[2] = -100;
    void* dl = upload(logits, t, &lr);
    std::int32_t* dt = device_copy(targets);
    float* ddl = device_copy(dloss);
    float* loss = static_cast<float*>(device_alloc(static_cast<std::size_t>(tokens) * 4));
    float* lse = static_cast<float*>(device_alloc(static_cast<std::size_t>(tokens) * 4));
    cross_entropy_logits_fwd(CrossEntropyLogitsFwdParams{dl, dt, loss, lse, tokens, vocab, t}, nullptr);
    cross_entropy_logits_bwd(CrossEntropyLogitsBwdParams{dl, dt, lse, ddl, dl, tokens, vocab, t}, nullptr);  // in place
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const std::vector<double> ld(lr.begin(), lr.end());
    const auto ref = cross_entropy_logits_fwd_ref(ld, targets, tokens, vocab);
    const std::string at = std::to_string(tokens) + "x" + std::to_string(vocab) + " ";
    EXPECT_TRUE(matches(compare_values(at + "loss", download(loss, static_cast<std::size_t>(tokens), DType::kFp32), ref.loss,
                                       cross_entropy_loss_tolerance(0, vocab))));
    EXPECT_TRUE(matches(compare_values(at + "lse", download(lse, static_cast<std::size_t>(tokens), DType::kFp32), ref.lse,
                                       cross_entropy_loss_tolerance(0, vocab))));
    const CheckTolerance dtol{1e-9 + io_underflow_abs(t), io_rounding_rel(t) + cross_entropy_lse_error(0, vocab), 0};
    EXPECT_TRUE(matches(compare_values(at + "dlogits", download(dl, logits.size(), t),
                                       cross_entropy_logits_bwd_ref(ld, targets, dloss, tokens, vocab), dtol)));
    for (void* p : {dl, static_cast<void*>(dt), static_cast<void*>(ddl), static_cast<void*>(loss), static_cast<void*>(lse)}) {
      cudaFree(p);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CrossEntropyGpu, ::testing::Values(DType::kFp32, DType::kFp16, DType::kBf16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(CrossEntropyGpuTargets, OutOfRangeIsNaNAndIgnoredIsZero) {
  SEQSCALE_REQUIRE_GPU();
  std::mt19937 rng(testing_support::test_seed());
  const CrossEntropyShape s = shape(3, 16, 50, 16);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> x(static_cast<std::size_t>(s.tokens * s.hidden)), w(static_cast<std::size_t>(s.vocab * s.hidden)), xr, wr;
  for (auto& e : x) e = u(rng);
  for (auto& e : w) e = 0.4f * u(rng);
  void* dx = upload(x, DType::kBf16, &xr);
  void* dw = upload(w, DType::kBf16, &wr);
  std::int32_t* dt = device_copy(std::vector<std::int32_t>{50, -100, 7});
  float* ddl = device_copy(std::vector<float>{1.f, 1.f, 1.f});
  cublasHandle_t cublas = nullptr;
  ASSERT_EQ(cublasCreate(&cublas), CUBLAS_STATUS_SUCCESS);
  const HeadOutputs r = run_head(s, DType::kBf16, cublas, dx, dw, dt, ddl);
  EXPECT_TRUE(std::isnan(r.loss[0])) << "target == vocab must be loud";
  EXPECT_EQ(r.loss[1], 0.f);
  EXPECT_TRUE(std::isfinite(r.loss[2]));
  EXPECT_TRUE(std::isnan(r.dhidden[0]));
  for (std::int64_t k = 0; k < s.hidden; ++k) EXPECT_EQ(r.dhidden[static_cast<std::size_t>(s.hidden + k)], 0.f);
  cublasDestroy(cublas);
  for (void* p : {dx, dw, static_cast<void*>(dt), static_cast<void*>(ddl)}) cudaFree(p);
}

TEST(CrossEntropyGpuErrors, NameTheField) {
  SEQSCALE_REQUIRE_GPU();
  CrossEntropyFwdParams p;
  p.shape = shape(4, 8, 50, 0);
  try {
    cross_entropy_fwd(p, nullptr);
    ADD_FAILURE() << "vocab_chunk 0 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "cross_entropy_fwd: vocab_chunk must be in [1, 2147483647], got 0");
  }
  p.shape.vocab_chunk = 16;
  int dummy = 0;
  p.hidden = p.weight = &dummy;
  p.targets = reinterpret_cast<const std::int32_t*>(&dummy);
  p.loss = p.lse = reinterpret_cast<float*>(&dummy);
  p.workspace = &dummy;
  try {
    cross_entropy_fwd(p, nullptr);
    ADD_FAILURE() << "null cublas accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "cross_entropy_fwd: cublas is null");
  }
}

}  // namespace
}  // namespace seqscale
