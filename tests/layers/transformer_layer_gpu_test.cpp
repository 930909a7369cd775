// The GPT layer and stack on the CUDA backend (layers/transformer_layer/transformer_layer.cuh)
// against the double CPU reference on the same weights and inputs (rounded to the I/O
// dtype first, so both see the same numbers): the layer's output y, dx and every parameter
// gradient; the stack's loss and every parameter gradient. And the memory: the backend's
// peak of the def's tensors equals the recorded program's peak byte for byte (both run
// transformer_layer_def.h), and everything it allocated (the kernels' transient
// workspaces too) exceeds it by at most its largest workspace.
//
// Sizes are awkward on purpose: seq 37 and 29 (tiles end mid-row; one materialized case at
// 300, rows longer than a block), batch 2, ffn 200. The
// fused path runs head sizes 64, 96 and 128 (all the causal kernel has: tensor cores in
// bf16, SIMT in fp32); the materialized path head sizes 20 and 12, which the fused kernel
// refuses. Each variant differs in another layer choice (residual, MLP, norm, GQA, rotary,
// recompute, mask), so every Ops call runs in some case.
//
// Tolerance: transformer_layer_tolerance (transformer_layer_cpu.h), the one the benches'
// check uses, relative to each tensor's largest magnitude: fp32 2e-4 (accumulation order
// only), bf16 6e-2 (8 mantissa bits at every stored tensor of ~30 dependent ops). The key
// bias's gradient, zero up to rounding, is judged against the largest gradient
// (compare_transformer_grads).
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <ostream>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "common/check_result.h"
#include "common/half.h"
#include "layers/transformer_layer/transformer_layer.cuh"
#include "layers/transformer_layer/transformer_layer_bench.h"
#include "layers/transformer_layer/transformer_layer_program.h"
#include "tests/support/gpu.h"
#include "tests/support/matches.h"
#include "tests/support/seed.h"

namespace seqscale {
namespace {

using testing_support::matches;

struct LayerCase {
  const char* name;
  AttentionImpl attn;
  std::int64_t heads, kv_heads, head_dim, seq;
  Recompute recompute;
  MaskKind mask;
  bool parallel_residual;
  MlpKind mlp;
  NormKind norm;
  bool rotary;
};

void PrintTo(const LayerCase& c, std::ostream* os) { *os << c.name; }

constexpr auto kFused = AttentionImpl::kFused;
constexpr auto kMat = AttentionImpl::kMaterialized;
constexpr auto kGelu = MlpKind::kGelu;
constexpr auto kSwiglu = MlpKind::kSwiglu;
constexpr auto kLn = NormKind::kLayerNorm;
constexpr auto kRms = NormKind::kRmsNorm;

const LayerCase kCases[] = {
    // GenSLM's layer (parallel residual, GELU, LayerNorm, learned positions) at head size 96.
    {"fused_hd96_neox", kFused, 2, 2, 96, 37, Recompute::kNone, MaskKind::kNone, true, kGelu, kLn, false},
    {"fused_hd64_gpt_selective", kFused, 2, 2, 64, 37, Recompute::kSelective, MaskKind::kBool, false, kGelu, kLn, true},
    {"fused_hd128_llama_full", kFused, 2, 2, 128, 37, Recompute::kFull, MaskKind::kNone, false, kSwiglu, kRms, true},
    {"fused_hd64_gqa", kFused, 4, 2, 64, 29, Recompute::kNone, MaskKind::kNone, false, kSwiglu, kRms, true},
    {"mat_hd20_causal", kMat, 3, 3, 20, 29, Recompute::kNone, MaskKind::kNone, true, kGelu, kLn, false},
    {"mat_hd20_bool_selective", kMat, 3, 3, 20, 29, Recompute::kSelective, MaskKind::kBool, false, kGelu, kLn, true},
    {"mat_hd12_fp32mask_full_gqa", kMat, 4, 2, 12, 37, Recompute::kFull, MaskKind::kFp32, false, kSwiglu, kRms, true},
    // Rows longer than a block (256 threads): the softmax kernels' row loops go round twice.
    {"mat_hd20_rows_past_a_block", kMat, 3, 3, 20, 300, Recompute::kNone, MaskKind::kNone, false, kGelu, kLn, true},
};

TransformerLayerDims dims_of(const LayerCase& c) {
  TransformerLayerDims d;
  d.batch = 2;
  d.seq = c.seq;
  d.heads = c.heads;
  d.kv_heads = c.kv_heads;
  d.head_dim = c.head_dim;
  d.hidden = c.heads * c.head_dim;
  d.ffn = 200;
  d.rotary_dims = c.rotary ? c.head_dim / 4 / 2 * 2 : 0;  // GPT-NeoX rotary_pct 0.25
  d.mlp = c.mlp;
  d.norm = c.norm;
  d.parallel_residual = c.parallel_residual;
  d.attn = c.attn;
  d.recompute = c.recompute;
  return d;
}

// The values a tensor of dtype `io` holds: what the GPU computes with.
void round_to(DType io, std::vector<double>& v) {
  if (io != DType::kBf16) {
    for (double& x : v) x = static_cast<float>(x);
    return;
  }
  for (double& x : v) x = bf16_to_float(float_to_bf16(static_cast<float>(x)));
}

class TransformerLayerGpu : public ::testing::TestWithParam<std::tuple<LayerCase, DType>> {};

TEST_P(TransformerLayerGpu, MatchesReferenceAndRecordedPeak) {
  SEQSCALE_REQUIRE_GPU();
  const auto& [c, io] = GetParam();
  const TransformerLayerDims d = dims_of(c);
  TransformerLayerInputs in = make_transformer_layer_inputs(d, testing_support::test_seed());
  round_to(io, in.x);
  round_to(io, in.dy);
  for (auto& p : in.params) round_to(io, p);
  const TransformerLayerRun ref = run_transformer_layer_ref(d, c.mask, in);
  const TransformerLayerCudaRun gpu = run_transformer_layer_cuda(d, c.mask, in, io);
  const CheckTolerance tol = transformer_layer_tolerance(io);
  EXPECT_TRUE(matches(compare_values("y", gpu.out.y, ref.y, tol)));
  EXPECT_TRUE(matches(compare_values("dx", gpu.out.dx, ref.dx, tol)));
  ASSERT_EQ(gpu.out.param_grads.size(), ref.param_grads.size());
  EXPECT_TRUE(matches(compare_transformer_grads(gpu.out.param_grads, ref.param_grads, tol)));

  const std::int64_t program_peak = build_transformer_layer_program(d, c.mask, io).replay_memory().peak_device_bytes;
  EXPECT_EQ(gpu.tensor_peak_bytes, program_peak);
  EXPECT_GE(gpu.peak_bytes, program_peak);
  EXPECT_LE(gpu.peak_bytes, program_peak + gpu.max_workspace_bytes);

  // The fused GEMMs (gemm_bias, gemm_gelu, gemm_dgelu): cuBLASLt epilogues in bf16 where
  // every leading dimension is a multiple of 8, never in fp32; and the bf16 GELU layer with
  // the epilogues off (the GEMM, then kernels/bias_gelu) matches the reference as well.
  if (io == DType::kFp32) {
    EXPECT_EQ(gpu.fused_gemm_calls, 0);
  }
  if (io == DType::kBf16 && c.mlp == kGelu && d.hidden % 8 == 0 && d.ffn % 8 == 0) {
    // q, k, v (bias), FC1 + GELU, FC2's data gradient + gelu'; the forward's four again
    // under full recompute. None may have fallen back to running apart.
    EXPECT_EQ(gpu.fused_gemm_calls, c.recompute == Recompute::kFull ? 9 : 5);
    EXPECT_EQ(gpu.unfused_gemm_calls, 0);
  }
  if (io == DType::kBf16 && c.mlp == kGelu) {
    const TransformerLayerCudaRun apart = run_transformer_layer_cuda(d, c.mask, in, io, /*gemm_epilogues=*/false);
    EXPECT_EQ(apart.fused_gemm_calls, 0);
    EXPECT_TRUE(matches(compare_values("y (epilogues off)", apart.out.y, ref.y, tol)));
    EXPECT_TRUE(matches(compare_values("dx (epilogues off)", apart.out.dx, ref.dx, tol)));
    EXPECT_TRUE(matches(compare_transformer_grads(apart.out.param_grads, ref.param_grads, tol)));
    EXPECT_EQ(apart.tensor_peak_bytes, program_peak);
  }
  // The fused backward's atomic dQ (FlashAttention-2's default) computes the same step; its
  // fp32 accumulator is a transient workspace, within the same bound.
  if (io == DType::kBf16 && c.attn == kFused) {
    const TransformerLayerCudaRun atomic =
        run_transformer_layer_cuda(d, c.mask, in, io, /*gemm_epilogues=*/true, CausalBwdMode::kAtomic);
    EXPECT_TRUE(matches(compare_values("dx (atomic dQ)", atomic.out.dx, ref.dx, tol)));
    EXPECT_TRUE(matches(compare_transformer_grads(atomic.out.param_grads, ref.param_grads, tol)));
    EXPECT_EQ(atomic.tensor_peak_bytes, program_peak);
    EXPECT_LE(atomic.peak_bytes, program_peak + atomic.max_workspace_bytes);
    EXPECT_GE(atomic.max_workspace_bytes, 4 * d.batch * d.seq * d.kv_heads * d.head_dim);
  }
}

std::string case_name(const ::testing::TestParamInfo<std::tuple<LayerCase, DType>>& info) {
  return std::string(std::get<0>(info.param).name) + "_" + std::string(dtype_name(std::get<1>(info.param)));
}

INSTANTIATE_TEST_SUITE_P(Cases, TransformerLayerGpu,
                         ::testing::Combine(::testing::ValuesIn(kCases), ::testing::Values(DType::kFp32, DType::kBf16)),
                         case_name);

// A stack of two layers: embedding (learned positions), the chunked loss over a vocabulary
// of 97 in chunks of 40 (the last one short), the tied output embedding's gradient.
class TransformerStackGpu : public ::testing::TestWithParam<std::tuple<AttentionImpl, DType>> {};

TEST_P(TransformerStackGpu, LossAndGradientsMatchReference) {
  SEQSCALE_REQUIRE_GPU();
  const auto& [attn, io] = GetParam();
  TransformerStackDims d;
  LayerCase c = kCases[0];
  c.attn = attn;
  if (attn == kMat) c.head_dim = 20;
  d.layer = dims_of(c);
  d.layers = 2;
  d.vocab = 97;
  d.vocab_chunk = 40;
  d.learned_positions = true;
  d.mask = attn == kMat ? MaskKind::kBool : MaskKind::kNone;
  TransformerStackInputs in = make_transformer_stack_inputs(d, testing_support::test_seed());
  for (auto& p : in.params) round_to(io, p);
  const TransformerStackRun ref = run_transformer_stack_ref(d, in);
  const TransformerStackCudaRun gpu = run_transformer_stack_cuda(d, in, io);
  const CheckTolerance tol = transformer_layer_tolerance(io);
  EXPECT_TRUE(matches(compare_values("loss", std::vector<double>{gpu.out.loss}, std::vector<double>{ref.loss}, tol)));
  ASSERT_EQ(gpu.out.param_grads.size(), ref.param_grads.size());
  EXPECT_TRUE(matches(compare_transformer_grads(gpu.out.param_grads, ref.param_grads, tol)));
  const std::int64_t program_peak = build_transformer_stack_program(d, io).replay_memory().peak_device_bytes;
  EXPECT_EQ(gpu.tensor_peak_bytes, program_peak);
  EXPECT_LE(gpu.peak_bytes, program_peak + gpu.max_workspace_bytes);
}

INSTANTIATE_TEST_SUITE_P(Paths, TransformerStackGpu,
                         ::testing::Combine(::testing::Values(kFused, kMat), ::testing::Values(DType::kFp32, DType::kBf16)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) == kFused ? "fused_" : "materialized_") +
                                  std::string(dtype_name(std::get<1>(info.param)));
                         });

// Adam on the device against the double backend's: three steps from the same weights and
// gradients (magnitudes 1e-3..1: Adam's step is lr-sized whatever the gradient). fp32 master
// weights and moments within fp32 rounding; bf16 weights one bf16 rounding of the master.
void upload_values(void* dst, DType t, const std::vector<double>& v) {
  if (t == DType::kFp32) {
    const std::vector<float> f(v.begin(), v.end());
    ASSERT_EQ(cudaMemcpy(dst, f.data(), f.size() * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
    return;
  }
  std::vector<std::uint16_t> h(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) h[i] = float_to_bf16(static_cast<float>(v[i]));
  ASSERT_EQ(cudaMemcpy(dst, h.data(), h.size() * 2, cudaMemcpyHostToDevice), cudaSuccess);
}

std::vector<double> download_values(const void* src, DType t, std::int64_t n) {
  std::vector<double> out(static_cast<std::size_t>(n));
  if (t == DType::kFp32) {
    std::vector<float> f(out.size());
    EXPECT_EQ(cudaMemcpy(f.data(), src, f.size() * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
    for (std::size_t i = 0; i < f.size(); ++i) out[i] = f[i];
  } else {
    std::vector<std::uint16_t> h(out.size());
    EXPECT_EQ(cudaMemcpy(h.data(), src, h.size() * 2, cudaMemcpyDeviceToHost), cudaSuccess);
    for (std::size_t i = 0; i < h.size(); ++i) out[i] = bf16_to_float(h[i]);
  }
  return out;
}

TEST(TransformerCudaOpsGpu, AdamMatchesTheReferenceOverThreeSteps) {
  SEQSCALE_REQUIRE_GPU();
  const std::uint64_t seed = testing_support::test_seed();
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> unit(-1, 1), exponent(-3, 0);
  const std::int64_t n = 1001;
  std::vector<double> w0(static_cast<std::size_t>(n));
  std::vector<std::vector<double>> grads(3, std::vector<double>(static_cast<std::size_t>(n)));
  for (double& x : w0) x = unit(rng);
  for (auto& g : grads)
    for (double& x : g) x = static_cast<float>(unit(rng) * std::pow(10.0, exponent(rng)));
  for (DType io : {DType::kFp32, DType::kBf16}) {
    SCOPED_TRACE(std::string(dtype_name(io)) + " seed " + std::to_string(seed));
    std::vector<double> start = w0;
    round_to(io, start);
    TransformerRefOps ref;
    auto rw = ref.alloc(n, Elem::kIo, MemoryKind::kParameters, "w");
    auto rdw = ref.alloc(n, Elem::kFp32, MemoryKind::kGradients, "dw");
    auto rmaster = ref.alloc(n, Elem::kFp32, MemoryKind::kOptimizerStates, "master");
    auto rm = ref.alloc(n, Elem::kFp32, MemoryKind::kOptimizerStates, "m");
    auto rv = ref.alloc(n, Elem::kFp32, MemoryKind::kOptimizerStates, "v");
    std::copy(start.begin(), start.end(), rw.p);
    std::copy(start.begin(), start.end(), rmaster.p);
    cudaStream_t stream = nullptr;
    ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
    {
      TransformerCudaOps ops(stream, io);
      auto w = ops.alloc(n, Elem::kIo, MemoryKind::kParameters, "w");
      auto dw = ops.alloc(n, Elem::kFp32, MemoryKind::kGradients, "dw");
      auto master = ops.alloc(n, Elem::kFp32, MemoryKind::kOptimizerStates, "master");
      auto m = ops.alloc(n, Elem::kFp32, MemoryKind::kOptimizerStates, "m");
      auto v = ops.alloc(n, Elem::kFp32, MemoryKind::kOptimizerStates, "v");
      ops.synchronize();  // stream-ordered allocations and the moments' zeroing
      upload_values(w.p, io, start);
      upload_values(master.p, DType::kFp32, start);
      for (std::int64_t step = 1; step <= 3; ++step) {
        const auto& g = grads[static_cast<std::size_t>(step - 1)];
        upload_values(dw.p, DType::kFp32, g);
        std::copy(g.begin(), g.end(), rdw.p);
        ops.adam(w, dw, master, m, v, n, step);
        ops.synchronize();
        ref.adam(rw, rdw, rmaster, rm, rv, n, step);
      }
      const std::vector<double> want_master(rmaster.p, rmaster.p + n), want_m(rm.p, rm.p + n), want_v(rv.p, rv.p + n);
      const CheckTolerance fp32{1e-7, 1e-6, 0};
      EXPECT_TRUE(matches(compare_values("master", download_values(master.p, DType::kFp32, n), want_master, fp32)));
      EXPECT_TRUE(matches(compare_values("m", download_values(m.p, DType::kFp32, n), want_m, fp32)));
      EXPECT_TRUE(matches(compare_values("v", download_values(v.p, DType::kFp32, n), want_v, {1e-12, 1e-6, 0})));
      const CheckTolerance weights{1e-7, io == DType::kBf16 ? 1.0 / 256 : 1e-6, 0};
      EXPECT_TRUE(matches(compare_values("w", download_values(w.p, io, n), want_master, weights)));
      for (auto* t : {&w, &dw, &master, &m, &v}) ops.release(*t);
    }
    ASSERT_EQ(cudaStreamDestroy(stream), cudaSuccess);
  }
}

// Without a device nothing may touch CUDA: the refusal of a dtype the backend does not run
// is a one-line error naming the field, before any allocation.
TEST(TransformerCudaOps, RefusesAnIoDtypeItDoesNotRun) {
  try {
    TransformerCudaOps ops(nullptr, DType::kFp16);
    FAIL() << "fp16 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("dtype"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace seqscale
