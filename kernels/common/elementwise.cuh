// The elementwise kernels every layer backend needs (the Evoformer block's, the GPT
// layer's): a grid-stride loop, y = a + b, a bias added over rows and the bias gradient
// (column sums). fp32 arithmetic on any storage type (convert.cuh's load_f32/store_f32).
#pragma once
#include <algorithm>
#include <cstdint>

#include "kernels/common/convert.cuh"

namespace seqscale {

constexpr int kElementwiseThreads = 256;

// Blocks for n elements at kElementwiseThreads a block: at least 1, at most 2^20 (the
// grid-stride loop covers the rest).
inline unsigned elementwise_blocks(std::int64_t n) {
  return static_cast<unsigned>(
      std::max<std::int64_t>(1, std::min<std::int64_t>((n + kElementwiseThreads - 1) / kElementwiseThreads, 1 << 20)));
}

#define SEQSCALE_GRID_STRIDE(i, n)                                                     \
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < (n); \
       i += std::int64_t{gridDim.x} * blockDim.x)

template <typename T>
__global__ void add_kernel(const T* a, const T* b, T* y, std::int64_t n) {
  SEQSCALE_GRID_STRIDE(i, n) store_f32(y, i, load_f32(a, i) + load_f32(b, i));
}

template <typename T>
__global__ void bias_add_kernel(T* y, const T* b, std::int64_t rows, std::int64_t cols) {
  SEQSCALE_GRID_STRIDE(i, rows * cols) store_f32(y, i, load_f32(y, i) + load_f32(b, i % cols));
}

// Column sums into fp32: blockIdx.y strides over row chunks, one thread a column, fp32
// atomics combine the chunks (db zeroed first). Not bitwise repeatable, as the weight
// gradients' GEMMs are not either (cuBLAS may split k).
template <typename T>
__global__ void bias_grad_kernel(const T* dy, float* db, std::int64_t rows, std::int64_t cols) {
  const std::int64_t c = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x;
  if (c >= cols) return;
  float acc = 0.f;
  for (std::int64_t r = blockIdx.y; r < rows; r += gridDim.y) acc += load_f32(dy, r * cols + c);
  atomicAdd(db + c, acc);
}

}  // namespace seqscale
