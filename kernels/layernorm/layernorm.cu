// layernorm: y = (x - mean) * rstd * w + b over the last dim C.
// fwd: one warp per row, per-lane Welford merged across the warp with shuffles (fp32
//      math), second pass normalises (the row is L1/L2-resident for C up to a few K).
// bwd: dx one warp per row (two row reductions: sum(g), sum(g*xhat)); dweight/dbias by a
//      column-parallel pass writing per-chunk partials, then a deterministic reduction.
// Floor: 1 read + 1 write of x per element -> bandwidth-bound (layernorm_cost.h).
#include "kernels/layernorm/layernorm.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <string>

#include "common/check_cuda.h"
#include "kernels/common/convert.cuh"
#include "kernels/layernorm/layernorm_cost.h"

namespace seqscale {
namespace {

constexpr int kWarpsPerBlock = 4;  // H100/A100: 4 warps per 128-thread block keeps occupancy high
constexpr int kColsPerChunkBlock = 256;

template <typename T> __device__ __forceinline__ float to_f(T v) { return load_f32(&v, 0); }
template <typename T> __device__ __forceinline__ T from_f(float v) {
  T out;
  store_f32(&out, 0, v);
  return out;
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <typename T>
__global__ void layernorm_fwd_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                     const T* __restrict__ b, T* __restrict__ y,
                                     float* __restrict__ mean_out, float* __restrict__ rstd_out,
                                     std::int64_t rows, int cols, float eps) {
  const int lane = threadIdx.x % 32;
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (row >= rows) return;
  const T* xr = x + row * cols;
  float n = 0.f, mean = 0.f, m2 = 0.f;
  for (int c = lane; c < cols; c += 32) {
    const float v = to_f(xr[c]);
    n += 1.f;
    const float d = v - mean;
    mean += d / n;
    m2 += d * (v - mean);
  }
  for (int o = 16; o > 0; o >>= 1) {  // Chan et al. merge of two Welford states
    const float n_b = __shfl_xor_sync(0xffffffffu, n, o);
    const float mean_b = __shfl_xor_sync(0xffffffffu, mean, o);
    const float m2_b = __shfl_xor_sync(0xffffffffu, m2, o);
    const float n_ab = n + n_b;
    if (n_ab > 0.f) {
      const float d = mean_b - mean;
      mean += d * (n_b / n_ab);
      m2 += m2_b + d * d * (n * n_b / n_ab);
      n = n_ab;
    }
  }
  // The xor butterfly is symmetric in exact arithmetic but not in rounding: lanes can end
  // an ulp apart. Every lane normalises with lane 0's mean and rstd, the values saved for
  // the backward, so forward and backward see one mean/rstd per row.
  mean = __shfl_sync(0xffffffffu, mean, 0);
  const float rstd = __shfl_sync(0xffffffffu, rsqrtf(m2 / static_cast<float>(cols) + eps), 0);
  T* yr = y + row * cols;
  for (int c = lane; c < cols; c += 32) {
    yr[c] = from_f<T>((to_f(xr[c]) - mean) * rstd * to_f(w[c]) + to_f(b[c]));
  }
  if (lane == 0) {
    if (mean_out) mean_out[row] = mean;
    if (rstd_out) rstd_out[row] = rstd;
  }
}

template <typename T>
__global__ void layernorm_bwd_dx_kernel(const T* __restrict__ dy, const T* __restrict__ x,
                                        const T* __restrict__ w, const float* __restrict__ mean,
                                        const float* __restrict__ rstd, T* __restrict__ dx,
                                        std::int64_t rows, int cols) {
  const int lane = threadIdx.x % 32;
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (row >= rows) return;
  const T* xr = x + row * cols;
  const T* dyr = dy + row * cols;
  const float mu = mean[row], rs = rstd[row];
  float sum_g = 0.f, sum_gx = 0.f;
  for (int c = lane; c < cols; c += 32) {
    const float g = to_f(dyr[c]) * to_f(w[c]);
    sum_g += g;
    sum_gx += g * (to_f(xr[c]) - mu) * rs;
  }
  sum_g = warp_sum(sum_g) / cols;
  sum_gx = warp_sum(sum_gx) / cols;
  T* dxr = dx + row * cols;
  for (int c = lane; c < cols; c += 32) {
    const float g = to_f(dyr[c]) * to_f(w[c]);
    const float xhat = (to_f(xr[c]) - mu) * rs;
    dxr[c] = from_f<T>(rs * (g - sum_g - xhat * sum_gx));
  }
}

// grid (ceil(cols/256), chunks): thread owns one column within one chunk of rows, so the
// loads are coalesced across the block and the result does not depend on scheduling.
template <typename T>
__global__ void layernorm_bwd_partials_kernel(const T* __restrict__ dy, const T* __restrict__ x,
                                              const float* __restrict__ mean,
                                              const float* __restrict__ rstd,
                                              float* __restrict__ part_dw, float* __restrict__ part_db,
                                              std::int64_t rows, int cols, std::int64_t rows_per_chunk) {
  const int col = blockIdx.x * kColsPerChunkBlock + threadIdx.x;
  if (col >= cols) return;
  const std::int64_t r0 = blockIdx.y * rows_per_chunk;
  const std::int64_t r1 = min(rows, r0 + rows_per_chunk);
  float dw = 0.f, db = 0.f;
  for (std::int64_t r = r0; r < r1; ++r) {
    const float g = to_f(dy[r * cols + col]);
    dw += g * (to_f(x[r * cols + col]) - mean[r]) * rstd[r];
    db += g;
  }
  part_dw[blockIdx.y * static_cast<std::int64_t>(cols) + col] = dw;
  part_db[blockIdx.y * static_cast<std::int64_t>(cols) + col] = db;
}

__global__ void layernorm_bwd_reduce_kernel(const float* __restrict__ part_dw,
                                            const float* __restrict__ part_db, float* __restrict__ dw,
                                            float* __restrict__ db, int chunks, int cols) {
  const int col = blockIdx.x * blockDim.x + threadIdx.x;
  if (col >= cols) return;
  float sw = 0.f, sb = 0.f;
  for (int k = 0; k < chunks; ++k) {
    sw += part_dw[static_cast<std::int64_t>(k) * cols + col];
    sb += part_db[static_cast<std::int64_t>(k) * cols + col];
  }
  if (dw) dw[col] = sw;
  if (db) db[col] = sb;
}

void check_shape(std::int64_t rows, std::int64_t cols) {
  if (rows < 0 || cols <= 0 || cols > (1 << 24)) {
    throw std::invalid_argument("layernorm: rows must be >= 0 and cols in [1, 2^24], got rows=" +
                                std::to_string(rows) + " cols=" + std::to_string(cols));
  }
}

template <typename T>
void fwd_typed(const LayerNormFwdParams& p, cudaStream_t s) {
  const auto blocks = static_cast<unsigned>((p.rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
  layernorm_fwd_kernel<T><<<blocks, 32 * kWarpsPerBlock, 0, s>>>(
      static_cast<const T*>(p.x), static_cast<const T*>(p.weight), static_cast<const T*>(p.bias),
      static_cast<T*>(p.y), p.mean, p.rstd, p.rows, static_cast<int>(p.cols), p.eps);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void bwd_typed(const LayerNormBwdParams& p, cudaStream_t s) {
  const int cols = static_cast<int>(p.cols);
  const auto blocks = static_cast<unsigned>((p.rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
  layernorm_bwd_dx_kernel<T><<<blocks, 32 * kWarpsPerBlock, 0, s>>>(
      static_cast<const T*>(p.dy), static_cast<const T*>(p.x), static_cast<const T*>(p.weight),
      p.mean, p.rstd, static_cast<T*>(p.dx), p.rows, cols);
  CUDA_CHECK_LAUNCH();
  if (!p.dweight && !p.dbias) return;
  const std::int64_t chunks = layernorm_bwd_row_chunks(p.rows);
  const std::int64_t rows_per_chunk = (p.rows + chunks - 1) / chunks;
  float* part_dw = p.workspace;
  float* part_db = p.workspace + chunks * p.cols;
  const dim3 grid((cols + kColsPerChunkBlock - 1) / kColsPerChunkBlock, static_cast<unsigned>(chunks));
  layernorm_bwd_partials_kernel<T><<<grid, kColsPerChunkBlock, 0, s>>>(
      static_cast<const T*>(p.dy), static_cast<const T*>(p.x), p.mean, p.rstd, part_dw, part_db,
      p.rows, cols, rows_per_chunk);
  CUDA_CHECK_LAUNCH();
  layernorm_bwd_reduce_kernel<<<(cols + 255) / 256, 256, 0, s>>>(part_dw, part_db, p.dweight, p.dbias,
                                                                 static_cast<int>(chunks), cols);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void layernorm_fwd(const LayerNormFwdParams& p, cudaStream_t stream) {
  check_shape(p.rows, p.cols);
  if (p.rows == 0) return;
  if (!p.x || !p.weight || !p.bias || !p.y) throw std::invalid_argument("layernorm_fwd: null pointer");
  switch (p.io) {
    case DType::kFp32: return fwd_typed<float>(p, stream);
    case DType::kFp16: return fwd_typed<__half>(p, stream);
    case DType::kBf16: return fwd_typed<__nv_bfloat16>(p, stream);
    default: throw std::invalid_argument("layernorm_fwd: io dtype must be fp32, fp16 or bf16");
  }
}

void layernorm_bwd(const LayerNormBwdParams& p, cudaStream_t stream) {
  check_shape(p.rows, p.cols);
  if (p.rows == 0) return;
  if (!p.dy || !p.x || !p.weight || !p.mean || !p.rstd || !p.dx) {
    throw std::invalid_argument("layernorm_bwd: null pointer");
  }
  if ((p.dweight || p.dbias) && !p.workspace) throw std::invalid_argument("layernorm_bwd: workspace is null");
  switch (p.io) {
    case DType::kFp32: return bwd_typed<float>(p, stream);
    case DType::kFp16: return bwd_typed<__half>(p, stream);
    case DType::kBf16: return bwd_typed<__nv_bfloat16>(p, stream);
    default: throw std::invalid_argument("layernorm_bwd: io dtype must be fp32, fp16 or bf16");
  }
}

}  // namespace seqscale
