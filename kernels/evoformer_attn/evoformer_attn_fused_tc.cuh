// Shared pieces of the tensor-core Evoformer attention kernels (evoformer_attn_fused_tc.cu
// forward, evoformer_attn_fused_tc_bwd.cu backward): tile sizes, warp reductions, the
// [B, N, L, H, D] indexing and the shared-memory opt-in. Include only from those two files.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include <cstdint>

#include "kernels/common/check.h"

namespace seqscale::evoformer_tc {

namespace wmma = nvcuda::wmma;

constexpr int kWarps = 4;
constexpr int kRows = 16 * kWarps;  // query rows per block
constexpr int kKeys = 64;           // key rows per tile

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

struct TcGeo {
  std::int64_t n, len, heads;
  template <int D>
  __device__ std::int64_t qkv(std::int64_t bn, std::int64_t l, std::int64_t h) const {
    return ((bn * len + l) * heads + h) * D;
  }
};

// Large tiles need more than 48 KB of shared memory: opt in once per kernel.
template <typename Kernel>
void allow_smem(Kernel kernel, std::size_t bytes, bool& configured) {
  if (!configured) {
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
    configured = true;
  }
}

}  // namespace seqscale::evoformer_tc
