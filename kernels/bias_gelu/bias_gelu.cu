// bias_gelu: y = gelu(x + b) over rows of x [rows, cols] (tanh GELU, bias_gelu_math.h).
// fwd: elementwise, grid-stride over packs of kVec elements (16-byte loads when cols and
//      the pointers allow, else 1); the bias pack is re-read per row from L1/L2.
// bwd: dx and dbias in one pass: grid (column packs, row chunks); a thread owns kVec
//      columns over one chunk of rows, writes dx and one fp32 partial of dbias per column;
//      then reduce::sum_row_partials folds the chunks in order: deterministic dbias.
// Floor: fwd 1 read + 1 write per element, bwd 2 reads + 1 write -> bandwidth-bound
// (bias_gelu_cost.h); GenSLM's 32768 x 24576 bf16 forward moves 3.2 GB.
#include "kernels/bias_gelu/bias_gelu.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "kernels/bias_gelu/bias_gelu_cost.h"
#include "kernels/bias_gelu/bias_gelu_math.h"
#include "common/check_cuda.h"
#include "kernels/common/launch.cuh"
#include "kernels/common/pack.cuh"
#include "kernels/common/reduce.cuh"

namespace seqscale {
namespace {

constexpr int kThreads = 256;
// Grid-stride cap: 8192 CTAs of 256 is ~8 waves of 1056 resident CTAs on an H100/H200
// (132 SMs x 8); beyond that a launch only adds block scheduling.
constexpr std::int64_t kMaxBlocks = 8192;
// Shape limits: the column grid and the partials' int offsets stay in range.
constexpr std::int64_t kMaxCols = std::int64_t{1} << 30;
constexpr std::int64_t kMaxRows = std::int64_t{1} << 40;

// ---- kernels ----------------------------------------------------------------------------

// x and y may alias (in place): no __restrict__ on them.
template <typename T, int kVec>
__global__ void __launch_bounds__(kThreads)
    bias_gelu_fwd_kernel(const T* x, const T* __restrict__ bias, T* y, std::int64_t packs, std::int64_t packs_per_row) {
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < packs;
       i += static_cast<std::int64_t>(gridDim.x) * kThreads) {
    const std::int64_t col = (i % packs_per_row) * kVec;
    float v[kVec], b[kVec];
    load_pack<T, kVec>(x + i * kVec, v);
    load_pack<T, kVec>(bias + col, b);
#pragma unroll
    for (int k = 0; k < kVec; ++k) v[k] = gelu::forward(v[k] + b[k]);
    store_pack<T, kVec>(y + i * kVec, v);
  }
}

// grid (ceil(cols / (kThreads * kVec)), chunks). dy and dx may alias.
template <typename T, int kVec, bool kBiasGrad>
__global__ void __launch_bounds__(kThreads)
    bias_gelu_bwd_kernel(const T* dy, const T* __restrict__ x, const T* __restrict__ bias, T* dx,
                         float* __restrict__ part_dbias, std::int64_t rows, std::int64_t cols,
                         std::int64_t rows_per_chunk) {
  const std::int64_t col = (static_cast<std::int64_t>(blockIdx.x) * kThreads + threadIdx.x) * kVec;
  if (col >= cols) return;
  const std::int64_t r0 = blockIdx.y * rows_per_chunk;
  const std::int64_t r1 = min(rows, r0 + rows_per_chunk);
  float b[kVec], acc[kVec];
  load_pack<T, kVec>(bias + col, b);
#pragma unroll
  for (int k = 0; k < kVec; ++k) acc[k] = 0.f;
  for (std::int64_t r = r0; r < r1; ++r) {
    const std::int64_t at = r * cols + col;
    float g[kVec], z[kVec];
    load_pack<T, kVec>(dy + at, g);
    load_pack<T, kVec>(x + at, z);
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      g[k] *= gelu::derivative(z[k] + b[k]);
      acc[k] += g[k];
    }
    store_pack<T, kVec>(dx + at, g);
  }
  if constexpr (kBiasGrad) {
#pragma unroll
    for (int k = 0; k < kVec; ++k) part_dbias[blockIdx.y * cols + col + k] = acc[k];
  }
}

// ---- launcher (validates params, picks the variant) --------------------------------------

template <typename T, int kVec>
void fwd_launch(const BiasGeluFwdParams& p, cudaStream_t s) {
  const std::int64_t packs = p.rows * p.cols / kVec;
  const auto blocks = static_cast<unsigned>(std::min((packs + kThreads - 1) / kThreads, kMaxBlocks));
  bias_gelu_fwd_kernel<T, kVec><<<blocks, kThreads, 0, s>>>(static_cast<const T*>(p.x), static_cast<const T*>(p.bias),
                                                            static_cast<T*>(p.y), packs, p.cols / kVec);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void fwd_typed(const BiasGeluFwdParams& p, cudaStream_t s) {
  // 16-byte packs need cols (the row stride and the bias period) and every pointer to allow them.
  if (max_pack(sizeof(T), {p.cols}, {p.x, p.bias, p.y}) == kMaxPack<T>) return fwd_launch<T, kMaxPack<T>>(p, s);
  fwd_launch<T, 1>(p, s);
}

template <typename T, int kVec>
void bwd_launch(const BiasGeluBwdParams& p, cudaStream_t s) {
  const std::int64_t chunks = bias_gelu_bwd_row_chunks(p.rows);
  const std::int64_t rows_per_chunk = (p.rows + chunks - 1) / chunks;
  const std::int64_t col_blocks = (p.cols / kVec + kThreads - 1) / kThreads;
  const dim3 grid(static_cast<unsigned>(col_blocks), static_cast<unsigned>(chunks));
  const auto* dy = static_cast<const T*>(p.dy);
  const auto* x = static_cast<const T*>(p.x);
  const auto* b = static_cast<const T*>(p.bias);
  auto* dx = static_cast<T*>(p.dx);
  if (p.dbias == nullptr) {
    bias_gelu_bwd_kernel<T, kVec, false><<<grid, kThreads, 0, s>>>(dy, x, b, dx, nullptr, p.rows, p.cols, rows_per_chunk);
    CUDA_CHECK_LAUNCH();
    return;
  }
  bias_gelu_bwd_kernel<T, kVec, true><<<grid, kThreads, 0, s>>>(dy, x, b, dx, p.workspace, p.rows, p.cols, rows_per_chunk);
  CUDA_CHECK_LAUNCH();
  reduce::sum_row_partials<kThreads><<<static_cast<unsigned>((p.cols + kThreads - 1) / kThreads), kThreads, 0, s>>>(
      p.workspace, static_cast<int>(chunks), p.cols, p.dbias, false);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void bwd_typed(const BiasGeluBwdParams& p, cudaStream_t s) {
  if (max_pack(sizeof(T), {p.cols}, {p.dy, p.x, p.bias, p.dx}) == kMaxPack<T>) return bwd_launch<T, kMaxPack<T>>(p, s);
  bwd_launch<T, 1>(p, s);
}

}  // namespace

void bias_gelu_fwd(const BiasGeluFwdParams& p, cudaStream_t stream) {
  constexpr const char* op = "bias_gelu_fwd";
  require_range(op, "rows", p.rows, 0, kMaxRows);
  require_range(op, "cols", p.cols, 1, kMaxCols);
  require_io(op, p.io);
  if (p.rows == 0) return;
  require(op, p.x, "x");
  require(op, p.bias, "bias");
  require(op, p.y, "y");
  dispatch_io(p.io, [&](auto tag) { fwd_typed<decltype(tag)>(p, stream); });
}

void bias_gelu_bwd(const BiasGeluBwdParams& p, cudaStream_t stream) {
  constexpr const char* op = "bias_gelu_bwd";
  require_range(op, "rows", p.rows, 0, kMaxRows);
  require_range(op, "cols", p.cols, 1, kMaxCols);
  require_io(op, p.io);
  if (p.rows == 0) {
    if (p.dbias) CUDA_CHECK(cudaMemsetAsync(p.dbias, 0, static_cast<std::size_t>(p.cols) * sizeof(float), stream));
    return;
  }
  require(op, p.dy, "dy");
  require(op, p.x, "x");
  require(op, p.bias, "bias");
  require(op, p.dx, "dx");
  if (p.dbias) require(op, p.workspace, "workspace (dbias needs bias_gelu_bwd_cost(...).workspace_bytes)");
  dispatch_io(p.io, [&](auto tag) { bwd_typed<decltype(tag)>(p, stream); });
}

}  // namespace seqscale
