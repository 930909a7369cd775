// LayerNorm over the last dim C: y = (x - mean) * rstd * weight + bias.
// Params are plain pointers; dtype of x/y/weight/bias/dy/dx is `io` (fp32, fp16, bf16),
// mean/rstd/dweight/dbias are fp32. Launchers validate params and throw on bad ones.
#pragma once
#include <cstdint>

#include <cuda_runtime.h>

#include "workloads/dtype.h"

namespace seqscale {

struct LayerNormFwdParams {
  const void* x = nullptr;
  const void* weight = nullptr;
  const void* bias = nullptr;
  void* y = nullptr;
  float* mean = nullptr;  // [rows], saved for backward
  float* rstd = nullptr;  // [rows]
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  float eps = 1e-5f;
  DType io = DType::kFp32;
};

struct LayerNormBwdParams {
  const void* dy = nullptr;
  const void* x = nullptr;
  const void* weight = nullptr;
  const float* mean = nullptr;
  const float* rstd = nullptr;
  void* dx = nullptr;
  float* dweight = nullptr;
  float* dbias = nullptr;
  float* workspace = nullptr;  // layernorm_bwd_cost(...).workspace_bytes
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  DType io = DType::kFp32;
};

void layernorm_fwd(const LayerNormFwdParams& p, cudaStream_t stream);
void layernorm_bwd(const LayerNormBwdParams& p, cudaStream_t stream);

}  // namespace seqscale
