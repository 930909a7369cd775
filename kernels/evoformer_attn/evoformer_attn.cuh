// Evoformer attention with pair bias on the GPU. Layout (ANCHORS.md s1): Q, K, V, O
// [B, N, L, H, D]; mask bias [B, N, 1, 1, L]; pair bias [B, 1, H, L, L]; all in `io`
// (fp32, fp16, bf16) with fp32 accumulation.
//
// Naive path (the OpenFold baseline): cuBLAS batched GEMMs for Q K^T / sqrt(D) (the scale
// folded into the GEMM's alpha, so fp16 logits cannot overflow) and P V around the fused
// mask+bias softmax (kernels/softmax, scale 1), with the probabilities [B, N, H, L, L]
// materialised and saved for the backward. Its memory is what the fused kernel removes.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "kernels/evoformer_attn/evoformer_attn_cost.h"

namespace seqscale {

struct EvoformerAttnParams {
  EvoformerAttnShape shape;
  DType io = DType::kBf16;
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  const void* mask_bias = nullptr;  // optional
  const void* pair_bias = nullptr;  // optional
  void* o = nullptr;
  void* probs = nullptr;            // naive: [B, N, H, L, L], written by forward, read by backward
};

struct EvoformerAttnGrads {
  const void* d_o = nullptr;
  void* dq = nullptr;
  void* dk = nullptr;
  void* dv = nullptr;
  void* d_probs = nullptr;          // naive workspace [B, N, H, L, L] (dP, then dS in place)
  float* d_pair = nullptr;          // optional [B, H, L, L], summed over N
  float* d_mask = nullptr;          // optional [B, N, L], summed over heads and query rows
};

// Fused path (our DS4Sci-style kernel): no logits in memory. Forward: tiled online softmax
// in fp32, biases added on the fly, fp32 log-sum-exp [B*N, H, L] saved. Backward recomputes
// P from the log-sum-exp. d(pair bias) is reduced over N either with fp32 atomics inside
// the dK/dV kernel (fast; order-dependent in the last bits) or by a separate deterministic
// kernel that loops over N in order (recomputes two dot products per element).
enum class PairGradMode { kAtomic, kDeterministic };

// Which kernels, forward and backward: kAuto takes the tensor-core kernels
// (evoformer_attn_fused_tc.cu: WMMA, fp16/bf16, head sizes 16..128) where they apply and
// the SIMT kernels elsewhere (fp32, head size 8); the explicit choices are for tests and
// benchmarks.
enum class FusedKernel { kAuto, kSimt, kTensorCore };

struct EvoformerAttnFusedParams {
  EvoformerAttnParams a;        // shape, dtype, q, k, v, biases, o (probs unused)
  float* lse = nullptr;         // [B*N, H, L], written by forward
  FusedKernel kernel = FusedKernel::kAuto;
};

struct EvoformerAttnFusedGrads {
  const void* d_o = nullptr;
  void* dq = nullptr;
  void* dk = nullptr;
  void* dv = nullptr;
  float* row_dot = nullptr;     // workspace [B*N, H, L]: D_i = dO_i . O_i
  float* d_pair = nullptr;      // optional [B, H, L, L]
  float* d_mask_partial = nullptr;  // optional workspace [B*N, H, L]
  float* d_mask = nullptr;      // optional [B, N, L]
  PairGradMode pair_mode = PairGradMode::kAtomic;
};

// Head sizes 8, 16, 32, 64, 128; any L >= 1; fully masked rows give zeros.
void evoformer_attn_fused_fwd(const EvoformerAttnFusedParams& p, cudaStream_t stream);
bool evoformer_attn_fused_tc_supported(DType io, std::int64_t head_dim);
void evoformer_attn_fused_fwd_tc(const EvoformerAttnFusedParams& p, cudaStream_t stream);
// dQ, dK, dV (and d(pair) by atomics when pair_atomic, the d(mask) partials) on tensor
// cores; row_dot must hold dO . O. evoformer_attn_fused_bwd calls it under p.kernel.
void evoformer_attn_fused_bwd_tc(const EvoformerAttnFusedParams& p, const EvoformerAttnFusedGrads& g, bool pair_atomic,
                                 cudaStream_t stream);
void evoformer_attn_fused_bwd(const EvoformerAttnFusedParams& p, const EvoformerAttnFusedGrads& g, cudaStream_t stream);

void evoformer_attn_naive_fwd(const EvoformerAttnParams& p, cublasHandle_t handle, cudaStream_t stream);
void evoformer_attn_naive_bwd(const EvoformerAttnParams& p, const EvoformerAttnGrads& g, cublasHandle_t handle,
                              cudaStream_t stream);

}  // namespace seqscale
