// Warp- and block-wide fp32 reductions for the row kernels (rmsnorm, cross_entropy, ...),
// and the second stage of a deterministic column reduction (bias and weight gradients).
//
// Deterministic by construction: for a given launch shape the order of every addition is
// fixed, so a kernel's result does not depend on scheduling. Every lane (thread) ends
// with the *same* value: a xor butterfly pairs lane i with lane i^o, and both compute
// a + b or max(a, b), which IEEE arithmetic gives equal in either order; block_reduce has
// every thread fold the per-warp partials from shared memory in the same order. So a
// value a row kernel saves (rstd, lse) is the one its every lane used.
#pragma once
#include <cstdint>

namespace seqscale::reduce {

inline constexpr unsigned kFullMask = 0xffffffffu;

struct Sum {
  __device__ __forceinline__ float operator()(float a, float b) const { return a + b; }
};
struct Max {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

template <typename Op>
__device__ __forceinline__ float warp_reduce(float v, Op op = Op{}) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}
__device__ __forceinline__ float warp_sum(float v) { return warp_reduce(v, Sum{}); }
__device__ __forceinline__ float warp_max(float v) { return warp_reduce(v, Max{}); }

// Over all kThreads threads of the block; every thread must call it (it synchronises).
// One shared scratch per instantiation; the trailing barrier makes back-to-back calls safe.
template <int kThreads, typename Op>
__device__ __forceinline__ float block_reduce(float v, Op op = Op{}) {
  static_assert(kThreads % 32 == 0 && kThreads >= 32 && kThreads <= 1024, "whole warps, at most 1024 threads");
  constexpr int kWarps = kThreads / 32;
  __shared__ float partial[kWarps];
  v = warp_reduce(v, op);
  if constexpr (kWarps == 1) return v;
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = v;
  __syncthreads();
  float r = partial[0];
#pragma unroll
  for (int w = 1; w < kWarps; ++w) r = op(r, partial[w]);
  __syncthreads();
  return r;
}

// A reduction over the kRowThreads threads that share one row: a warp (32) or the block.
template <int kRowThreads>
__device__ __forceinline__ float row_sum(float v) {
  if constexpr (kRowThreads == 32) return warp_sum(v);
  else return block_reduce<kRowThreads>(v, Sum{});
}

// out[c] = sum over k = 0 .. chunks-1, in that order, of part[k * cols + c]: the second stage
// of a column reduction whose first stage wrote one row of fp32 partials per chunk of rows
// (LayerNorm's dweight scheme): deterministic, and exact in its order whatever the schedule.
// Launch: ceil(cols / kThreads) blocks of kThreads. `accumulate` adds into out instead.
template <int kThreads>
__global__ void __launch_bounds__(kThreads)
    sum_row_partials(const float* __restrict__ part, int chunks, std::int64_t cols, float* __restrict__ out,
                     bool accumulate) {
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (c >= cols) return;
  float s = 0.f;
  for (int k = 0; k < chunks; ++k) s += part[k * cols + c];
  out[c] = accumulate ? out[c] + s : s;
}

}  // namespace seqscale::reduce
