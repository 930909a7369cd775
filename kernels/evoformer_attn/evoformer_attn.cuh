// Evoformer attention with pair bias on the GPU. Layout (ANCHORS.md s1): Q, K, V, O
// [B, N, L, H, D]; mask bias [B, N, 1, 1, L]; pair bias [B, 1, H, L, L]; all in `io`
// (fp32, fp16, bf16) with fp32 accumulation.
//
// Naive path (the OpenFold baseline): cuBLAS batched GEMMs for Q K^T and P V around the
// fused scale+mask+bias softmax (kernels/softmax), with the probabilities [B, N, H, L, L]
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

void evoformer_attn_naive_fwd(const EvoformerAttnParams& p, cublasHandle_t handle, cudaStream_t stream);
void evoformer_attn_naive_bwd(const EvoformerAttnParams& p, const EvoformerAttnGrads& g, cublasHandle_t handle,
                              cudaStream_t stream);

}  // namespace seqscale
