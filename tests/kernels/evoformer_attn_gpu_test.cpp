// Evoformer attention on the GPU against the double CPU reference, forward and backward:
// the naive path (cuBLAS + fused softmax), the fused SIMT kernels and the fused tensor-core
// kernels, at scaled DS4Sci shapes and awkward L (17, 20, 100, 250: tiles end mid-way), with
// fully masked rows and -1e9 mask biases. Every shape runs with both biases (as DS4Sci), the
// mask only, the pair bias only (the Evoformer block's row and triangle attention) and
// neither (its column attention); a bias's gradient is asked for exactly when the bias is
// passed, as the block does (d_mask = nullptr whenever there is no mask).
// Tolerances: evoformer_attn_tolerance, evoformer_attn_dpair_tolerance and
// evoformer_attn_dmask_tolerance (evoformer_attn_ref.h), the ones the bench's check uses:
// max-abs error 1e-2 (fp16) / 5e-2 (bf16) / 1e-4 (fp32: no TF32 in cuBLAS's default math)
// for O, dQ, dK, dV (ANCHORS.md s1, DS4Sci's own test); twice that for d(pair bias) (a sum
// over N); 2 x heads x that for d(mask bias) (a sum over heads too). The log-sum-exp has no
// shared tolerance: 1e-2 x (1 + |lse|), a few bf16-sized steps of the exponent.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>

#include "common/check_result.h"
#include "kernels/evoformer_attn/evoformer_attn.cuh"
#include "kernels/evoformer_attn/evoformer_attn_ref.h"
#include "tests/support/device_data.h"
#include "tests/support/gpu.h"
#include "tests/support/matches.h"
#include "tests/support/seed.h"

namespace seqscale {
namespace {

using testing_support::download;
using testing_support::matches;
using testing_support::upload;

// Which additive biases a case passes, and so which bias gradients it asks for.
struct Biases {
  bool mask, pair;
};
constexpr Biases kBiasCases[] = {{true, true}, {true, false}, {false, true}, {false, false}};

std::string describe(const EvoformerAttnShape& s, Biases b) {
  const char* biases = b.mask ? (b.pair ? "mask+pair" : "mask only") : (b.pair ? "pair only" : "no bias");
  return "L=" + std::to_string(s.len) + " D=" + std::to_string(s.head_dim) + " " + biases + ": ";
}

// One shape's random inputs on the device in the kernel's dtype, with the values the kernel
// sees (rounded to the dtype: fp16 turns -1e9 into -inf) kept for the reference. Mask: -1e9
// on a quarter of the keys (OpenFold's 1e9 * (mask - 1)); (b=0, n=0) fully masked with -inf:
// zeros, not NaN, on every path. (A row masked only by a finite -1e9 is uniform in fp32 math
// on every implementation, OpenFold's too.)
class Inputs {
 public:
  Inputs(const EvoformerAttnShape& s, DType t, std::mt19937& rng) : s_(s) {
    std::normal_distribution<float> nd(0, 1);
    std::vector<float> q(static_cast<size_t>(s.qkv_elements())), k(q.size()), v(q.size()), d_o(q.size());
    std::vector<float> mask(static_cast<size_t>(s.batch * s.n * s.len)),
        pair(static_cast<size_t>(s.batch * s.heads * s.len * s.len));
    for (auto* x : {&q, &k, &v, &d_o, &pair}) for (auto& e : *x) e = nd(rng);
    for (auto& e : mask) e = (rng() % 4 == 0) ? -1e9f : 0.f;
    for (std::int64_t j = 0; j < s.len; ++j) mask[static_cast<size_t>(j)] = -std::numeric_limits<float>::infinity();
    q_ = upload(q, t, &qr_);
    k_ = upload(k, t, &kr_);
    v_ = upload(v, t, &vr_);
    d_o_ = upload(d_o, t, &dor_);
    mask_ = upload(mask, t, &mr_);
    pair_ = upload(pair, t, &pr_);
  }
  ~Inputs() {
    for (void* p : {q_, k_, v_, d_o_, mask_, pair_}) cudaFree(p);
  }
  Inputs(const Inputs&) = delete;
  Inputs& operator=(const Inputs&) = delete;

  // The attention parameters of bias case `b` (o and probs left to the caller).
  EvoformerAttnParams params(DType t, Biases b) const {
    EvoformerAttnParams p;
    p.shape = s_;
    p.io = t;
    p.q = q_;
    p.k = k_;
    p.v = v_;
    p.mask_bias = b.mask ? mask_ : nullptr;
    p.pair_bias = b.pair ? pair_ : nullptr;
    return p;
  }
  const void* d_o() const { return d_o_; }
  EvoformerAttnRefOut fwd_ref(Biases b) const {
    return evoformer_attn_fwd_ref(s_, qr_, kr_, vr_, b.mask ? mr_.data() : nullptr, b.pair ? pr_.data() : nullptr);
  }
  EvoformerAttnRefGrads bwd_ref(Biases b) const {
    return evoformer_attn_bwd_ref(s_, qr_, kr_, vr_, b.mask ? mr_.data() : nullptr, b.pair ? pr_.data() : nullptr, dor_);
  }

 private:
  EvoformerAttnShape s_;
  void *q_, *k_, *v_, *d_o_, *mask_, *pair_;
  std::vector<float> qr_, kr_, vr_, dor_, mr_, pr_;
};

// Every output and workspace buffer of one shape, for any path. The poison_* calls fill
// outputs with NaN before each run, so an output a kernel fails to write fails the
// comparison instead of passing on the previous case's values.
struct Outputs {
  EvoformerAttnShape s;
  DType t;
  size_t qkv, rows, logits, pair, mask;
  void *o = nullptr, *dq = nullptr, *dk = nullptr, *dv = nullptr, *probs = nullptr, *d_probs = nullptr;
  float *lse = nullptr, *row_dot = nullptr, *d_pair = nullptr, *d_mask_partial = nullptr, *d_mask = nullptr;

  Outputs(const EvoformerAttnShape& shape, DType dtype, bool naive)
      : s(shape), t(dtype), qkv(static_cast<size_t>(shape.qkv_elements())),
        rows(static_cast<size_t>(shape.rows() * shape.heads * shape.len)),
        logits(static_cast<size_t>(shape.logits_elements())),
        pair(static_cast<size_t>(shape.batch * shape.heads * shape.len * shape.len)),
        mask(static_cast<size_t>(shape.batch * shape.n * shape.len)) {
    const size_t es = static_cast<size_t>(dtype_bytes(t));
    for (void** p : {&o, &dq, &dk, &dv}) EXPECT_EQ(cudaMalloc(p, qkv * es), cudaSuccess);
    if (naive) {
      EXPECT_EQ(cudaMalloc(&probs, logits * es), cudaSuccess);
      EXPECT_EQ(cudaMalloc(&d_probs, logits * es), cudaSuccess);
    } else {
      EXPECT_EQ(cudaMalloc(&lse, rows * 4), cudaSuccess);
      EXPECT_EQ(cudaMalloc(&row_dot, rows * 4), cudaSuccess);
      EXPECT_EQ(cudaMalloc(&d_mask_partial, rows * 4), cudaSuccess);
    }
    EXPECT_EQ(cudaMalloc(&d_pair, pair * 4), cudaSuccess);
    EXPECT_EQ(cudaMalloc(&d_mask, mask * 4), cudaSuccess);
  }
  ~Outputs() {
    for (void* p : {o, dq, dk, dv, probs, d_probs}) cudaFree(p);
    for (float* p : {lse, row_dot, d_pair, d_mask_partial, d_mask}) cudaFree(p);
  }
  Outputs(const Outputs&) = delete;
  Outputs& operator=(const Outputs&) = delete;

  // All-ones bytes are a NaN in fp32, fp16 and bf16.
  void poison_forward() const {
    EXPECT_EQ(cudaMemset(o, 0xff, qkv * static_cast<size_t>(dtype_bytes(t))), cudaSuccess);
    if (lse) {
      EXPECT_EQ(cudaMemset(lse, 0xff, rows * 4), cudaSuccess);
    }
  }
  void poison_backward() const {
    for (void* p : {dq, dk, dv}) EXPECT_EQ(cudaMemset(p, 0xff, qkv * static_cast<size_t>(dtype_bytes(t))), cudaSuccess);
    EXPECT_EQ(cudaMemset(d_pair, 0xff, pair * 4), cudaSuccess);
    EXPECT_EQ(cudaMemset(d_mask, 0xff, mask * 4), cudaSuccess);
  }

  // The fused path's gradient buffers for bias case `b`: a bias's gradient only with the bias.
  EvoformerAttnFusedGrads fused_grads(const void* d_o, Biases b) const {
    EvoformerAttnFusedGrads g;
    g.d_o = d_o;
    g.dq = dq;
    g.dk = dk;
    g.dv = dv;
    g.row_dot = row_dot;
    g.d_pair = b.pair ? d_pair : nullptr;
    g.d_mask_partial = b.mask ? d_mask_partial : nullptr;
    g.d_mask = b.mask ? d_mask : nullptr;
    return g;
  }
};

void expect_output(const std::string& at, const Outputs& out, const EvoformerAttnRefOut& ref) {
  EXPECT_TRUE(matches(compare_values(at + "o", download(out.o, out.qkv, out.t), ref.o, evoformer_attn_tolerance(out.t))));
}

// The log-sum-exp of the fused paths; a fully masked row must give -inf (compare_values
// passes equal infinities and fails a finite value against one).
void expect_lse(const std::string& at, const Outputs& out, const EvoformerAttnRefOut& ref) {
  EXPECT_TRUE(matches(compare_values(at + "lse", download(out.lse, out.rows, DType::kFp32), ref.lse,
                                     CheckTolerance{1e-2, 1e-2, 0})));
}

void expect_grads(const std::string& at, const Outputs& out, const EvoformerAttnRefGrads& rg, Biases b) {
  const CheckTolerance tol = evoformer_attn_tolerance(out.t);
  EXPECT_TRUE(matches(compare_values(at + "dq", download(out.dq, out.qkv, out.t), rg.dq, tol)));
  EXPECT_TRUE(matches(compare_values(at + "dk", download(out.dk, out.qkv, out.t), rg.dk, tol)));
  EXPECT_TRUE(matches(compare_values(at + "dv", download(out.dv, out.qkv, out.t), rg.dv, tol)));
  if (b.pair) {
    EXPECT_TRUE(matches(compare_values(at + "d_pair", download(out.d_pair, out.pair, DType::kFp32), rg.dpair,
                                       evoformer_attn_dpair_tolerance(out.t))));
  }
  if (b.mask) {
    EXPECT_TRUE(matches(compare_values(at + "d_mask", download(out.d_mask, out.mask, DType::kFp32), rg.dmask,
                                       evoformer_attn_dmask_tolerance(out.t, out.s.heads))));
  }
}

class EvoformerAttnNaiveGpu : public ::testing::TestWithParam<DType> {};

TEST_P(EvoformerAttnNaiveGpu, ForwardAndBackwardMatchReference) {
  SEQSCALE_REQUIRE_GPU();
  const DType t = GetParam();
  std::mt19937 rng(testing_support::test_seed());
  cublasHandle_t handle = nullptr;
  ASSERT_EQ(cublasCreate(&handle), CUBLAS_STATUS_SUCCESS);
  // DS4Sci test shapes scaled down (N 256 -> 8, 512 -> 8) plus awkward lengths.
  for (auto s : {EvoformerAttnShape{1, 8, 64, 4, 32}, {1, 8, 32, 8, 8}, {1, 3, 17, 2, 16}, {2, 2, 20, 4, 32},
                 {1, 2, 250, 2, 64}}) {
    const Inputs in(s, t, rng);
    const Outputs out(s, t, /*naive=*/true);
    for (const Biases b : kBiasCases) {
      const std::string at = describe(s, b);
      EvoformerAttnParams p = in.params(t, b);
      p.o = out.o;
      p.probs = out.probs;
      EvoformerAttnGrads g;
      g.d_o = in.d_o();
      g.dq = out.dq;
      g.dk = out.dk;
      g.dv = out.dv;
      g.d_probs = out.d_probs;
      g.d_pair = b.pair ? out.d_pair : nullptr;
      g.d_mask = b.mask ? out.d_mask : nullptr;
      out.poison_forward();
      out.poison_backward();
      evoformer_attn_naive_fwd(p, handle, nullptr);
      evoformer_attn_naive_bwd(p, g, handle, nullptr);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << at;
      expect_output(at, out, in.fwd_ref(b));
      expect_grads(at, out, in.bwd_ref(b), b);
    }
  }
  cublasDestroy(handle);
}

class EvoformerAttnFusedGpu : public ::testing::TestWithParam<DType> {};

TEST_P(EvoformerAttnFusedGpu, ForwardAndBackwardMatchReferenceBothPairGradModes) {
  SEQSCALE_REQUIRE_GPU();
  const DType t = GetParam();
  std::mt19937 rng(testing_support::test_seed());
  for (auto s : {EvoformerAttnShape{1, 8, 64, 4, 32}, {1, 8, 32, 8, 8}, {1, 3, 17, 2, 16}, {2, 2, 20, 4, 64},
                 {1, 2, 250, 2, 128}, {1, 1, 1, 1, 8}}) {
    const Inputs in(s, t, rng);
    const Outputs out(s, t, /*naive=*/false);
    for (const Biases b : kBiasCases) {
      const std::string at = describe(s, b);
      EvoformerAttnFusedParams p;
      p.a = in.params(t, b);
      p.a.o = out.o;
      p.lse = out.lse;  // kernel kAuto: tensor cores for fp16/bf16 at D >= 16, SIMT for fp32 and D = 8
      out.poison_forward();
      evoformer_attn_fused_fwd(p, nullptr);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << at;
      const auto ref = in.fwd_ref(b);
      expect_output(at, out, ref);
      expect_lse(at, out, ref);
      const auto rg = in.bwd_ref(b);
      EvoformerAttnFusedGrads g = out.fused_grads(in.d_o(), b);
      std::vector<float> first_pair;
      for (PairGradMode mode : {PairGradMode::kAtomic, PairGradMode::kDeterministic, PairGradMode::kDeterministic}) {
        const std::string where = at + (mode == PairGradMode::kAtomic ? "atomic " : "deterministic ");
        g.pair_mode = mode;
        out.poison_backward();
        evoformer_attn_fused_bwd(p, g, nullptr);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << where;
        expect_grads(where, out, rg, b);
        if (b.pair && mode == PairGradMode::kDeterministic) {
          const auto dpair = download(out.d_pair, out.pair, DType::kFp32);
          if (first_pair.empty()) first_pair = dpair;
          else EXPECT_EQ(std::memcmp(first_pair.data(), dpair.data(), dpair.size() * 4), 0) << where << "differs between runs";
        }
      }
    }
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

// d(mask) needs its per-head partials: the backward refuses before launching anything, so
// no gradient buffer is half written when it throws (dQ keeps its NaN poison).
TEST(EvoformerAttnFusedGpuErrors, RejectsDMaskWithoutPartialsBeforeAnyLaunch) {
  SEQSCALE_REQUIRE_GPU();
  std::mt19937 rng(1);  // any inputs do: only the refusal is checked
  const EvoformerAttnShape s{1, 1, 4, 1, 8};
  const Biases b{true, true};
  const Inputs in(s, DType::kFp32, rng);
  const Outputs out(s, DType::kFp32, /*naive=*/false);
  EvoformerAttnFusedParams p;
  p.a = in.params(DType::kFp32, b);
  p.a.o = out.o;
  p.lse = out.lse;
  evoformer_attn_fused_fwd(p, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  out.poison_backward();
  EvoformerAttnFusedGrads g = out.fused_grads(in.d_o(), b);
  g.d_mask_partial = nullptr;
  EXPECT_THROW(evoformer_attn_fused_bwd(p, g, nullptr), std::invalid_argument);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  for (float x : download(out.dq, out.qkv, DType::kFp32)) ASSERT_TRUE(std::isnan(x)) << "a kernel ran before the refusal";
}

// The tensor-core forward and backward (fp16/bf16, D 16..128) against the SIMT kernels and
// the double reference on the same inputs, with fully masked rows and lengths that end
// mid-tile (17, 100, 250: not multiples of the 64-row tiles).
class EvoformerAttnFusedTcGpu : public ::testing::TestWithParam<DType> {};

TEST_P(EvoformerAttnFusedTcGpu, TensorCoreMatchesSimtAndReference) {
  SEQSCALE_REQUIRE_GPU();
  const DType t = GetParam();
  std::mt19937 rng(testing_support::test_seed());
  for (auto s : {EvoformerAttnShape{1, 3, 17, 2, 16}, {1, 4, 64, 4, 32}, {2, 2, 100, 2, 64}, {1, 2, 250, 2, 128},
                 {1, 1, 1, 1, 32}}) {
    const Inputs in(s, t, rng);
    const Outputs out(s, t, /*naive=*/false);
    for (const Biases b : kBiasCases) {
      const std::string at = describe(s, b);
      EvoformerAttnFusedParams p;
      p.a = in.params(t, b);
      p.a.o = out.o;
      p.lse = out.lse;
      const auto ref = in.fwd_ref(b);
      // SIMT last: the backward of both kernel families starts from the SIMT forward's O and
      // lse (both valid).
      for (FusedKernel kernel : {FusedKernel::kTensorCore, FusedKernel::kSimt}) {
        const std::string where = at + (kernel == FusedKernel::kTensorCore ? "tensor-core " : "SIMT ");
        p.kernel = kernel;
        out.poison_forward();
        evoformer_attn_fused_fwd(p, nullptr);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << where;
        expect_output(where, out, ref);
        expect_lse(where, out, ref);
      }
      const auto rg = in.bwd_ref(b);
      const EvoformerAttnFusedGrads g = out.fused_grads(in.d_o(), b);
      for (FusedKernel kernel : {FusedKernel::kTensorCore, FusedKernel::kSimt}) {
        const std::string where = at + (kernel == FusedKernel::kTensorCore ? "tensor-core " : "SIMT ");
        p.kernel = kernel;
        out.poison_backward();
        evoformer_attn_fused_bwd(p, g, nullptr);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << where;
        expect_grads(where, out, rg, b);
      }
    }
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
