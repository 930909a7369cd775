// RMSNorm over the last dim C (Zhang & Sennrich 2019; Llama's LlamaRMSNorm):
//   y = x * rstd * weight,  rstd = 1 / sqrt(mean(x^2) + eps)   per row, fp32 math
// x, y, weight, dy, dx in `io` (fp32, fp16, bf16); rstd [rows] (saved for the backward),
// dweight [cols] fp32. One rounding: HF's Llama rounds x * rstd to the I/O dtype before
// the weight; this rounds only y. Backward:
//   dx = rstd * (g - xhat * mean(g * xhat)),  g = dy * weight, xhat = x * rstd
//   dweight = sum over rows of dy * xhat   (deterministic: fixed-order chunked partials)
// y may alias x and dx may alias dy (dweight is computed before dx is written). Launchers
// validate params and throw std::invalid_argument naming the field.
#pragma once
#include <cstdint>

#include <cuda_runtime.h>

#include "workloads/dtype.h"

namespace seqscale {

struct RmsNormFwdParams {
  const void* x = nullptr;
  const void* weight = nullptr;
  void* y = nullptr;       // may equal x
  float* rstd = nullptr;   // optional: [rows], saved for the backward
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  float eps = 1e-6f;       // Llama's rms_norm_eps
  DType io = DType::kBf16;
};

struct RmsNormBwdParams {
  const void* dy = nullptr;
  const void* x = nullptr;
  const void* weight = nullptr;
  const float* rstd = nullptr;  // the forward's
  void* dx = nullptr;           // may equal dy
  float* dweight = nullptr;     // optional: [cols], written
  float* workspace = nullptr;   // with dweight: rmsnorm_bwd_cost(rows, cols, io).workspace_bytes
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  DType io = DType::kBf16;
};

void rmsnorm_fwd(const RmsNormFwdParams& p, cudaStream_t stream);
void rmsnorm_bwd(const RmsNormBwdParams& p, cudaStream_t stream);

}  // namespace seqscale
