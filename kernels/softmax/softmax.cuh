// Fused softmax over the last dim with FastFold's semantics: y = softmax(scale * x + mask
// + bias), x [B, N, H, rows, cols], mask [B, N, 1, 1, cols] and bias [B, 1, H, rows, cols]
// both additive and optional (nullptr), in place when y == x. fp32 math, fp32/fp16/bf16
// I/O. Backward: dx = scale * y * (dy - sum(dy * y)), in place when dx == dy.
#pragma once
#include <cuda_runtime.h>

#include "kernels/softmax/softmax_cost.h"

namespace seqscale {

struct SoftmaxFwdParams {
  const void* x = nullptr;
  void* y = nullptr;           // may equal x
  const void* mask = nullptr;  // optional
  const void* bias = nullptr;  // optional
  SoftmaxShape shape;
  float scale = 1.f;
  DType io = DType::kFp32;
};

struct SoftmaxBwdParams {
  const void* y = nullptr;
  const void* dy = nullptr;
  void* dx = nullptr;          // may equal dy
  SoftmaxShape shape;
  float scale = 1.f;
  DType io = DType::kFp32;
};

void softmax_fwd(const SoftmaxFwdParams& p, cudaStream_t stream);
void softmax_bwd(const SoftmaxBwdParams& p, cudaStream_t stream);

}  // namespace seqscale
