// Cross-entropy of a language model's head, chunked over the vocabulary so that fp32
// logits for the whole sequence never exist (Megatron / GPT-NeoX compute [T, V] logits and
// then the loss: 6.6 GB in fp32 for GenSLM at T = 32768).
//   logits = hidden [T, h] x W^T (W [V, h], the output projection, one row per vocab entry)
//   loss_t = logsumexp_v(logits_tv) - logits_t,target_t,  lse_t saved for the backward
//   d logits = dloss_t (softmax(logits_t) - onehot(target_t)),
//   d hidden = d logits x W,  dW = d logits^T x hidden
// Forward: for each chunk of Vc vocab rows, one GEMM writes the chunk's fp32 logits and a
// row kernel folds them into a running (max, sum of exp) per token, the online softmax's
// rule; the last chunk finishes loss and lse. Backward: for each chunk, the logits are
// recomputed from hidden and the saved lse, turned into d logits, and two GEMMs write that
// chunk's rows of dW and accumulate d hidden in fp32. GEMMs through cuBLAS (cublasGemmEx,
// fp32 accumulation; fp32 I/O in pedantic fp32, no TF32).
//
// hidden, W, d hidden in `io` (fp32, fp16, bf16); loss, lse, dloss, dW in fp32; targets
// int32: a negative target is an ignored token (loss 0, no gradient: Megatron's -100),
// a target >= V is an error made loud: that token's loss and gradient are NaN. dloss is
// the upstream gradient per token (1 / (tokens counted) for a mean loss). d logits are
// stored in the I/O dtype for the tensor-core GEMMs: with fp16, as in any fp16 training,
// dloss must carry the loss scale, or dloss x 1/V (1/32768 x 1/50304 = 6e-10) underflows
// fp16 (smallest subnormal 6e-8); bf16 and fp32 need none.
// The launchers set the stream of the caller's cuBLAS handle; they validate params and
// throw std::invalid_argument naming the field.
#pragma once
#include <cstdint>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "kernels/cross_entropy/cross_entropy_cost.h"
#include "workloads/dtype.h"

namespace seqscale {

struct CrossEntropyFwdParams {
  const void* hidden = nullptr;          // [T, h]
  const void* weight = nullptr;          // [V, h]
  const std::int32_t* targets = nullptr; // [T]
  float* loss = nullptr;                 // [T]
  float* lse = nullptr;                  // [T], saved for the backward
  void* workspace = nullptr;             // cross_entropy_fwd_cost(shape, io).workspace_bytes
  CrossEntropyShape shape;
  DType io = DType::kBf16;
  cublasHandle_t cublas = nullptr;
};

struct CrossEntropyBwdParams {
  const void* hidden = nullptr;
  const void* weight = nullptr;
  const std::int32_t* targets = nullptr;
  const float* lse = nullptr;    // the forward's
  const float* dloss = nullptr;  // [T]
  void* dhidden = nullptr;       // [T, h], written
  float* dweight = nullptr;      // [V, h] fp32, written
  void* workspace = nullptr;     // cross_entropy_bwd_cost(shape, io).workspace_bytes
  CrossEntropyShape shape;
  DType io = DType::kBf16;
  cublasHandle_t cublas = nullptr;
};

// The plain per-token cross-entropy over given logits [T, V] in `io` (the materialised
// path, and the row kernels the chunked one is made of).
struct CrossEntropyLogitsFwdParams {
  const void* logits = nullptr;
  const std::int32_t* targets = nullptr;
  float* loss = nullptr;
  float* lse = nullptr;
  std::int64_t tokens = 0, vocab = 0;
  DType io = DType::kBf16;
};

struct CrossEntropyLogitsBwdParams {
  const void* logits = nullptr;
  const std::int32_t* targets = nullptr;
  const float* lse = nullptr;
  const float* dloss = nullptr;
  void* dlogits = nullptr;  // [T, V] in `io`; may equal logits
  std::int64_t tokens = 0, vocab = 0;
  DType io = DType::kBf16;
};

void cross_entropy_fwd(const CrossEntropyFwdParams& p, cudaStream_t stream);
void cross_entropy_bwd(const CrossEntropyBwdParams& p, cudaStream_t stream);
void cross_entropy_logits_fwd(const CrossEntropyLogitsFwdParams& p, cudaStream_t stream);
void cross_entropy_logits_bwd(const CrossEntropyLogitsBwdParams& p, cudaStream_t stream);

}  // namespace seqscale
