// softmax: fused scale + mask + bias + softmax over the last dim (FastFold's kernels).
// v1 warp per row for cols <= 1024: the row lives in registers (4, 8 or 32 per lane), one
//    read and one write of x, shuffles for max and sum.
// v2 block per row beyond 1024 columns: three passes over the row (L2-resident), block
//    reductions through shared memory.
// Floor: 1 read + 1 write per element (+ broadcast biases) -> bandwidth-bound.
// A row whose logits are all -inf yields zeros (no NaN): exp of -inf - max is skipped.
#include "kernels/softmax/softmax.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <stdexcept>
#include <string>

#include "common/check_cuda.h"
#include "kernels/common/convert.cuh"

namespace seqscale {
namespace {

constexpr int kWarpsPerBlock = 4;
constexpr int kBlockThreads = 256;

template <typename T> __device__ __forceinline__ float ld(const T* p, std::int64_t i) { return load_f32(p, i); }
template <typename T> __device__ __forceinline__ void st(T* p, std::int64_t i, float v) { store_f32(p, i, v); }

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

struct Dims {
  std::int64_t rows_total, n, heads, rows;
  int cols;
  // Offsets of the broadcast operands for a flat row index of x.
  __device__ std::int64_t mask_offset(std::int64_t row) const { return row / (heads * rows) * cols; }
  __device__ std::int64_t bias_offset(std::int64_t row) const {
    const std::int64_t bn = row / (heads * rows), hr = row % (heads * rows);
    return ((bn / n) * heads * rows + hr) * cols;
  }
};

__device__ __forceinline__ float safe_exp(float v, float mx) { return v == -INFINITY ? 0.f : __expf(v - mx); }

template <typename T, int kPerLane>
// x and y may alias (in place): no __restrict__ on them.
__global__ void softmax_fwd_warp(const T* x, T* y, const T* __restrict__ mask,
                                 const T* __restrict__ bias, Dims d, float scale) {
  const int lane = threadIdx.x % 32;
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (row >= d.rows_total) return;
  const std::int64_t base = row * d.cols;
  const T* mrow = mask ? mask + d.mask_offset(row) : nullptr;
  const T* brow = bias ? bias + d.bias_offset(row) : nullptr;
  float v[kPerLane];
  float mx = -INFINITY;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int c = lane + 32 * i;
    v[i] = -INFINITY;
    if (c < d.cols) {
      v[i] = scale * ld(x, base + c) + (mrow ? ld(mrow, c) : 0.f) + (brow ? ld(brow, c) : 0.f);
      mx = fmaxf(mx, v[i]);
    }
  }
  mx = warp_max(mx);
  float sum = 0.f;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    v[i] = mx == -INFINITY ? 0.f : safe_exp(v[i], mx);
    sum += v[i];
  }
  sum = warp_sum(sum);
  const float inv = sum > 0.f ? 1.f / sum : 0.f;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int c = lane + 32 * i;
    if (c < d.cols) st(y, base + c, v[i] * inv);
  }
}

template <typename T, int kPerLane>
__global__ void softmax_bwd_warp(const T* __restrict__ y, const T* dy, T* dx, std::int64_t rows_total, int cols,
                                 float scale) {
  const int lane = threadIdx.x % 32;
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (row >= rows_total) return;
  const std::int64_t base = row * cols;
  float yv[kPerLane], gv[kPerLane];
  float dot = 0.f;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int c = lane + 32 * i;
    yv[i] = c < cols ? ld(y, base + c) : 0.f;
    gv[i] = c < cols ? ld(dy, base + c) : 0.f;
    dot += yv[i] * gv[i];
  }
  dot = warp_sum(dot);
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int c = lane + 32 * i;
    if (c < cols) st(dx, base + c, scale * yv[i] * (gv[i] - dot));
  }
}

// Block-wide reduction: op over every thread's value, result in every thread.
template <bool kMax>
__device__ float block_reduce(float v, float* scratch) {
  v = kMax ? warp_max(v) : warp_sum(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float w = lane < kBlockThreads / 32 ? scratch[lane] : (kMax ? -INFINITY : 0.f);
    w = kMax ? warp_max(w) : warp_sum(w);
    if (lane == 0) scratch[kBlockThreads / 32] = w;
  }
  __syncthreads();
  const float r = scratch[kBlockThreads / 32];
  __syncthreads();
  return r;
}

template <typename T>
__global__ void softmax_fwd_block(const T* x, T* y, const T* __restrict__ mask,
                                  const T* __restrict__ bias, Dims d, float scale) {
  __shared__ float scratch[kBlockThreads / 32 + 1];
  const std::int64_t row = blockIdx.x;
  const std::int64_t base = row * d.cols;
  const T* mrow = mask ? mask + d.mask_offset(row) : nullptr;
  const T* brow = bias ? bias + d.bias_offset(row) : nullptr;
  auto logit = [&](int c) {
    return scale * ld(x, base + c) + (mrow ? ld(mrow, c) : 0.f) + (brow ? ld(brow, c) : 0.f);
  };
  float mx = -INFINITY;
  for (int c = threadIdx.x; c < d.cols; c += kBlockThreads) mx = fmaxf(mx, logit(c));
  mx = block_reduce<true>(mx, scratch);
  float sum = 0.f;
  if (mx != -INFINITY) {
    for (int c = threadIdx.x; c < d.cols; c += kBlockThreads) sum += safe_exp(logit(c), mx);
  }
  sum = block_reduce<false>(sum, scratch);
  const float inv = sum > 0.f ? 1.f / sum : 0.f;
  // x is read again before y overwrites it element by element: in place stays correct.
  for (int c = threadIdx.x; c < d.cols; c += kBlockThreads) {
    st(y, base + c, mx == -INFINITY ? 0.f : safe_exp(logit(c), mx) * inv);
  }
}

template <typename T>
__global__ void softmax_bwd_block(const T* __restrict__ y, const T* dy, T* dx, int cols, float scale) {
  __shared__ float scratch[kBlockThreads / 32 + 1];
  const std::int64_t base = static_cast<std::int64_t>(blockIdx.x) * cols;
  float dot = 0.f;
  for (int c = threadIdx.x; c < cols; c += kBlockThreads) dot += ld(y, base + c) * ld(dy, base + c);
  dot = block_reduce<false>(dot, scratch);
  for (int c = threadIdx.x; c < cols; c += kBlockThreads) {
    const float yv = ld(y, base + c);
    st(dx, base + c, scale * yv * (ld(dy, base + c) - dot));
  }
}

void check_shape(const SoftmaxShape& s) {
  if (s.batch <= 0 || s.n <= 0 || s.heads <= 0 || s.rows <= 0 || s.cols <= 0 || s.cols > (1 << 30)) {
    throw std::invalid_argument("softmax: every dim must be positive (cols " + std::to_string(s.cols) + ")");
  }
}

template <typename T>
void fwd_typed(const SoftmaxFwdParams& p, cudaStream_t st) {
  const Dims d{p.shape.batch * p.shape.n * p.shape.heads * p.shape.rows, p.shape.n, p.shape.heads, p.shape.rows,
               static_cast<int>(p.shape.cols)};
  const auto* x = static_cast<const T*>(p.x);
  auto* y = static_cast<T*>(p.y);
  const auto* m = static_cast<const T*>(p.mask);
  const auto* b = static_cast<const T*>(p.bias);
  const auto warp_blocks = static_cast<unsigned>((d.rows_total + kWarpsPerBlock - 1) / kWarpsPerBlock);
  // Registers per lane sized to the row (A100/H100: 32 per lane still keeps 4 warps/block resident).
  if (d.cols <= 128) softmax_fwd_warp<T, 4><<<warp_blocks, 32 * kWarpsPerBlock, 0, st>>>(x, y, m, b, d, p.scale);
  else if (d.cols <= 256) softmax_fwd_warp<T, 8><<<warp_blocks, 32 * kWarpsPerBlock, 0, st>>>(x, y, m, b, d, p.scale);
  else if (d.cols <= 1024) softmax_fwd_warp<T, 32><<<warp_blocks, 32 * kWarpsPerBlock, 0, st>>>(x, y, m, b, d, p.scale);
  else softmax_fwd_block<T><<<static_cast<unsigned>(d.rows_total), kBlockThreads, 0, st>>>(x, y, m, b, d, p.scale);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void bwd_typed(const SoftmaxBwdParams& p, cudaStream_t st) {
  const std::int64_t rows = p.shape.batch * p.shape.n * p.shape.heads * p.shape.rows;
  const int cols = static_cast<int>(p.shape.cols);
  const auto* y = static_cast<const T*>(p.y);
  const auto* dy = static_cast<const T*>(p.dy);
  auto* dx = static_cast<T*>(p.dx);
  const auto warp_blocks = static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
  if (cols <= 128) softmax_bwd_warp<T, 4><<<warp_blocks, 32 * kWarpsPerBlock, 0, st>>>(y, dy, dx, rows, cols, p.scale);
  else if (cols <= 256) softmax_bwd_warp<T, 8><<<warp_blocks, 32 * kWarpsPerBlock, 0, st>>>(y, dy, dx, rows, cols, p.scale);
  else if (cols <= 1024) softmax_bwd_warp<T, 32><<<warp_blocks, 32 * kWarpsPerBlock, 0, st>>>(y, dy, dx, rows, cols, p.scale);
  else softmax_bwd_block<T><<<static_cast<unsigned>(rows), kBlockThreads, 0, st>>>(y, dy, dx, cols, p.scale);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void softmax_fwd(const SoftmaxFwdParams& p, cudaStream_t stream) {
  check_shape(p.shape);
  if (!p.x || !p.y) throw std::invalid_argument("softmax_fwd: null x or y");
  switch (p.io) {
    case DType::kFp32: return fwd_typed<float>(p, stream);
    case DType::kFp16: return fwd_typed<__half>(p, stream);
    case DType::kBf16: return fwd_typed<__nv_bfloat16>(p, stream);
    default: throw std::invalid_argument("softmax_fwd: dtype must be fp32, fp16 or bf16");
  }
}

void softmax_bwd(const SoftmaxBwdParams& p, cudaStream_t stream) {
  check_shape(p.shape);
  if (!p.y || !p.dy || !p.dx) throw std::invalid_argument("softmax_bwd: null pointer");
  switch (p.io) {
    case DType::kFp32: return bwd_typed<float>(p, stream);
    case DType::kFp16: return bwd_typed<__half>(p, stream);
    case DType::kBf16: return bwd_typed<__nv_bfloat16>(p, stream);
    default: throw std::invalid_argument("softmax_bwd: dtype must be fp32, fp16 or bf16");
  }
}

}  // namespace seqscale
