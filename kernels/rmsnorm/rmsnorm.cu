// rmsnorm: y = x * rstd * w over the last dim C, rstd = rsqrt(mean(x^2) + eps).
// fwd and bwd dx, one template in two shapes:
//   warp per row (C <= 2048): 8 rows per 256-thread CTA, shuffles only;
//   CTA per row (C > 2048, GenSLM's 6144): 256 threads, one block reduction;
//   both with 16-byte packs when C and the pointers allow (else 1 element a load). Two
//   passes over the row: the second re-reads it from L1/L2 (a 6144-wide bf16 row is 12 KB;
//   the rows in flight on an H100/H200, ~132 x 8, fit its 50/60 MB L2), so DRAM sees one read.
// bwd dweight: grid (column packs, row chunks), a thread owns kVec columns over one chunk
//   of rows and writes fp32 partials; reduce::sum_row_partials folds them in order
//   (deterministic). It runs before dx, so dx may overwrite dy.
// Every lane of a row holds the same sum (reduce.cuh), so the rstd a row is normalised
// with is the rstd it saves. Floor: 1 read + 1 write of x per element -> bandwidth-bound
// (rmsnorm_cost.h). Not yet tuned on a GPU: the 2048 split (at most 8 packs of 8 per lane
// and pass) is a choice, not a measurement.
#include "kernels/rmsnorm/rmsnorm.cuh"

#include "common/check_cuda.h"
#include "kernels/common/launch.cuh"
#include "kernels/common/pack.cuh"
#include "kernels/common/reduce.cuh"
#include "kernels/rmsnorm/rmsnorm_cost.h"

namespace seqscale {
namespace {

constexpr int kBlockThreads = 256;
constexpr std::int64_t kWarpRowMaxCols = 2048;  // <= 8 packs of 8 per lane and pass
constexpr std::int64_t kMaxCols = std::int64_t{1} << 24;
constexpr std::int64_t kMaxRows = (std::int64_t{1} << 31) - 1;  // CTA per row: grid.x

// ---- kernels ----------------------------------------------------------------------------

// kRowThreads threads share one row (32: a warp; kBlockThreads: the CTA). x and y may alias.
template <typename T, int kRowThreads, int kVec>
__global__ void __launch_bounds__(kBlockThreads)
    rmsnorm_fwd_kernel(const T* x, const T* __restrict__ w, T* y, float* __restrict__ rstd_out, std::int64_t rows,
                       std::int64_t cols, float eps) {
  constexpr int kRowsPerBlock = kBlockThreads / kRowThreads;
  const int lane = static_cast<int>(threadIdx.x) % kRowThreads;
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kRowThreads;
  if (row >= rows) return;  // whole rows leave together: a warp, or (kRowsPerBlock = 1) never
  const T* xr = x + row * cols;
  float ss = 0.f;
  for (std::int64_t c = static_cast<std::int64_t>(lane) * kVec; c < cols; c += kRowThreads * kVec) {
    float v[kVec];
    load_pack<T, kVec>(xr + c, v);
#pragma unroll
    for (int k = 0; k < kVec; ++k) ss += v[k] * v[k];
  }
  ss = reduce::row_sum<kRowThreads>(ss);
  const float rstd = rsqrtf(ss / static_cast<float>(cols) + eps);
  T* yr = y + row * cols;
  for (std::int64_t c = static_cast<std::int64_t>(lane) * kVec; c < cols; c += kRowThreads * kVec) {
    float v[kVec], wv[kVec];
    load_pack<T, kVec>(xr + c, v);
    load_pack<T, kVec>(w + c, wv);
#pragma unroll
    for (int k = 0; k < kVec; ++k) v[k] = v[k] * rstd * wv[k];
    store_pack<T, kVec>(yr + c, v);
  }
  if (lane == 0 && rstd_out) rstd_out[row] = rstd;
}

// dy and dx may alias.
template <typename T, int kRowThreads, int kVec>
__global__ void __launch_bounds__(kBlockThreads)
    rmsnorm_bwd_dx_kernel(const T* dy, const T* __restrict__ x, const T* __restrict__ w,
                          const float* __restrict__ rstd, T* dx, std::int64_t rows, std::int64_t cols) {
  constexpr int kRowsPerBlock = kBlockThreads / kRowThreads;
  const int lane = static_cast<int>(threadIdx.x) % kRowThreads;
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kRowThreads;
  if (row >= rows) return;
  const T* xr = x + row * cols;
  const T* dyr = dy + row * cols;
  const float rs = rstd[row];
  float dot = 0.f;  // sum of g * xhat
  for (std::int64_t c = static_cast<std::int64_t>(lane) * kVec; c < cols; c += kRowThreads * kVec) {
    float g[kVec], v[kVec], wv[kVec];
    load_pack<T, kVec>(dyr + c, g);
    load_pack<T, kVec>(xr + c, v);
    load_pack<T, kVec>(w + c, wv);
#pragma unroll
    for (int k = 0; k < kVec; ++k) dot += g[k] * wv[k] * (v[k] * rs);
  }
  const float mean_gx = reduce::row_sum<kRowThreads>(dot) / static_cast<float>(cols);
  T* dxr = dx + row * cols;
  for (std::int64_t c = static_cast<std::int64_t>(lane) * kVec; c < cols; c += kRowThreads * kVec) {
    float g[kVec], v[kVec], wv[kVec];
    load_pack<T, kVec>(dyr + c, g);
    load_pack<T, kVec>(xr + c, v);
    load_pack<T, kVec>(w + c, wv);
#pragma unroll
    for (int k = 0; k < kVec; ++k) g[k] = rs * (g[k] * wv[k] - (v[k] * rs) * mean_gx);
    store_pack<T, kVec>(dxr + c, g);
  }
}

// grid (ceil(cols / (kBlockThreads * kVec)), chunks): coalesced across the CTA, and the
// result does not depend on scheduling.
template <typename T, int kVec>
__global__ void __launch_bounds__(kBlockThreads)
    rmsnorm_bwd_dweight_partials(const T* __restrict__ dy, const T* __restrict__ x, const float* __restrict__ rstd,
                                 float* __restrict__ part, std::int64_t rows, std::int64_t cols,
                                 std::int64_t rows_per_chunk) {
  const std::int64_t col = (static_cast<std::int64_t>(blockIdx.x) * kBlockThreads + threadIdx.x) * kVec;
  if (col >= cols) return;
  const std::int64_t r0 = blockIdx.y * rows_per_chunk;
  const std::int64_t r1 = min(rows, r0 + rows_per_chunk);
  float acc[kVec];
#pragma unroll
  for (int k = 0; k < kVec; ++k) acc[k] = 0.f;
  for (std::int64_t r = r0; r < r1; ++r) {
    float g[kVec], v[kVec];
    load_pack<T, kVec>(dy + r * cols + col, g);
    load_pack<T, kVec>(x + r * cols + col, v);
    const float rs = rstd[r];
#pragma unroll
    for (int k = 0; k < kVec; ++k) acc[k] += g[k] * (v[k] * rs);
  }
#pragma unroll
  for (int k = 0; k < kVec; ++k) part[blockIdx.y * cols + col + k] = acc[k];
}

// ---- launcher (validates params, picks the variant) --------------------------------------

unsigned row_grid(std::int64_t rows, std::int64_t cols) {
  const std::int64_t rows_per_block = cols <= kWarpRowMaxCols ? kBlockThreads / 32 : 1;
  return static_cast<unsigned>((rows + rows_per_block - 1) / rows_per_block);
}

template <typename T, int kVec>
void fwd_launch(const RmsNormFwdParams& p, cudaStream_t s) {
  const auto* x = static_cast<const T*>(p.x);
  const auto* w = static_cast<const T*>(p.weight);
  auto* y = static_cast<T*>(p.y);
  if (p.cols <= kWarpRowMaxCols) {
    rmsnorm_fwd_kernel<T, 32, kVec><<<row_grid(p.rows, p.cols), kBlockThreads, 0, s>>>(x, w, y, p.rstd, p.rows, p.cols, p.eps);
  } else {
    rmsnorm_fwd_kernel<T, kBlockThreads, kVec>
        <<<row_grid(p.rows, p.cols), kBlockThreads, 0, s>>>(x, w, y, p.rstd, p.rows, p.cols, p.eps);
  }
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void fwd_typed(const RmsNormFwdParams& p, cudaStream_t s) {
  if (max_pack(sizeof(T), {p.cols}, {p.x, p.weight, p.y}) == kMaxPack<T>) return fwd_launch<T, kMaxPack<T>>(p, s);
  fwd_launch<T, 1>(p, s);
}

template <typename T, int kVec>
void bwd_launch(const RmsNormBwdParams& p, cudaStream_t s) {
  const auto* dy = static_cast<const T*>(p.dy);
  const auto* x = static_cast<const T*>(p.x);
  const auto* w = static_cast<const T*>(p.weight);
  auto* dx = static_cast<T*>(p.dx);
  if (p.dweight) {  // first: it reads dy, which dx may overwrite
    const std::int64_t chunks = rmsnorm_bwd_row_chunks(p.rows);
    const std::int64_t rows_per_chunk = (p.rows + chunks - 1) / chunks;
    const dim3 grid(static_cast<unsigned>((p.cols / kVec + kBlockThreads - 1) / kBlockThreads), static_cast<unsigned>(chunks));
    rmsnorm_bwd_dweight_partials<T, kVec><<<grid, kBlockThreads, 0, s>>>(dy, x, p.rstd, p.workspace, p.rows, p.cols,
                                                                          rows_per_chunk);
    CUDA_CHECK_LAUNCH();
    reduce::sum_row_partials<kBlockThreads><<<static_cast<unsigned>((p.cols + kBlockThreads - 1) / kBlockThreads),
                                              kBlockThreads, 0, s>>>(p.workspace, static_cast<int>(chunks), p.cols,
                                                                     p.dweight, false);
    CUDA_CHECK_LAUNCH();
  }
  if (p.cols <= kWarpRowMaxCols) {
    rmsnorm_bwd_dx_kernel<T, 32, kVec><<<row_grid(p.rows, p.cols), kBlockThreads, 0, s>>>(dy, x, w, p.rstd, dx, p.rows, p.cols);
  } else {
    rmsnorm_bwd_dx_kernel<T, kBlockThreads, kVec>
        <<<row_grid(p.rows, p.cols), kBlockThreads, 0, s>>>(dy, x, w, p.rstd, dx, p.rows, p.cols);
  }
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void bwd_typed(const RmsNormBwdParams& p, cudaStream_t s) {
  if (max_pack(sizeof(T), {p.cols}, {p.dy, p.x, p.weight, p.dx}) == kMaxPack<T>) return bwd_launch<T, kMaxPack<T>>(p, s);
  bwd_launch<T, 1>(p, s);
}

}  // namespace

void rmsnorm_fwd(const RmsNormFwdParams& p, cudaStream_t stream) {
  constexpr const char* op = "rmsnorm_fwd";
  require_range(op, "rows", p.rows, 0, kMaxRows);
  require_range(op, "cols", p.cols, 1, kMaxCols);
  require_io(op, p.io);
  if (!(p.eps >= 0.f)) throw std::invalid_argument("rmsnorm_fwd: eps must be >= 0, got " + std::to_string(p.eps));
  if (p.rows == 0) return;
  require(op, p.x, "x");
  require(op, p.weight, "weight");
  require(op, p.y, "y");
  dispatch_io(p.io, [&](auto tag) { fwd_typed<decltype(tag)>(p, stream); });
}

void rmsnorm_bwd(const RmsNormBwdParams& p, cudaStream_t stream) {
  constexpr const char* op = "rmsnorm_bwd";
  require_range(op, "rows", p.rows, 0, kMaxRows);
  require_range(op, "cols", p.cols, 1, kMaxCols);
  require_io(op, p.io);
  if (p.rows == 0) {
    if (p.dweight) CUDA_CHECK(cudaMemsetAsync(p.dweight, 0, static_cast<std::size_t>(p.cols) * sizeof(float), stream));
    return;
  }
  require(op, p.dy, "dy");
  require(op, p.x, "x");
  require(op, p.weight, "weight");
  require(op, p.rstd, "rstd");
  require(op, p.dx, "dx");
  if (p.dweight) require(op, p.workspace, "workspace (dweight needs rmsnorm_bwd_cost(...).workspace_bytes)");
  dispatch_io(p.io, [&](auto tag) { bwd_typed<decltype(tag)>(p, stream); });
}

}  // namespace seqscale
