// SwiGLU gate of Llama's MLP (and Megatron core's swiglu, fused_bias_swiglu.py): the up
// projection writes x = [a | g] of [rows, 2 ffn] (a, the gate, first), and
//   y = silu(a) * g,  silu(a) = a * sigmoid(a),  y [rows, ffn]
// Backward: dx = [da | dg] of [rows, 2 ffn] with da = dy g silu'(a), dg = dy silu(a).
// x, y, dy, dx in `io` (fp32, fp16, bf16) with fp32 math. dx may alias x (each thread
// reads its a and g before it writes da and dg). Launchers validate params and throw
// std::invalid_argument naming the field.
#pragma once
#include <cstdint>

#include <cuda_runtime.h>

#include "workloads/dtype.h"

namespace seqscale {

struct SwiGluFwdParams {
  const void* x = nullptr;  // [rows, 2 ffn] = [a | g]
  void* y = nullptr;        // [rows, ffn]
  std::int64_t rows = 0;
  std::int64_t ffn = 0;
  DType io = DType::kBf16;
};

struct SwiGluBwdParams {
  const void* dy = nullptr;  // [rows, ffn]
  const void* x = nullptr;   // the forward's input [rows, 2 ffn]
  void* dx = nullptr;        // [rows, 2 ffn] = [da | dg]; may equal x
  std::int64_t rows = 0;
  std::int64_t ffn = 0;
  DType io = DType::kBf16;
};

void swiglu_fwd(const SwiGluFwdParams& p, cudaStream_t stream);
void swiglu_bwd(const SwiGluBwdParams& p, cudaStream_t stream);

}  // namespace seqscale
