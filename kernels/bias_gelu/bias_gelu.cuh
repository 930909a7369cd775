// Bias + GELU, GPT-NeoX's / Megatron's fused bias_gelu (megatron/model/fused_bias_gelu.py):
//   y = gelu(x + b),  gelu(z) = 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3)))
// the tanh approximation, which both use (not the erf form). x, y, dy, dx [rows, cols] and
// bias [cols] in `io` (fp32, fp16, bf16) with fp32 math; dbias [cols] fp32.
// Backward: dx = dy * gelu'(x + b) and dbias = sum over rows of dx, summed in fp32 before
// dx is rounded, deterministically (fixed-order chunked partials). y may alias x, dx may
// alias dy (each element is read before it is written, by the same thread). Launchers
// validate params and throw std::invalid_argument naming the field.
#pragma once
#include <cstdint>

#include <cuda_runtime.h>

#include "workloads/dtype.h"

namespace seqscale {

struct BiasGeluFwdParams {
  const void* x = nullptr;
  const void* bias = nullptr;
  void* y = nullptr;  // may equal x
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  DType io = DType::kBf16;
};

struct BiasGeluBwdParams {
  const void* dy = nullptr;
  const void* x = nullptr;     // the forward's input (before the bias)
  const void* bias = nullptr;
  void* dx = nullptr;          // may equal dy
  float* dbias = nullptr;      // optional: [cols], written
  float* workspace = nullptr;  // with dbias: bias_gelu_bwd_cost(rows, cols, io).workspace_bytes
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  DType io = DType::kBf16;
};

void bias_gelu_fwd(const BiasGeluFwdParams& p, cudaStream_t stream);
void bias_gelu_bwd(const BiasGeluBwdParams& p, cudaStream_t stream);

}  // namespace seqscale
