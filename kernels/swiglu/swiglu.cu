// swiglu: y = silu(a) * g for x = [a | g] of [rows, 2 ffn] (swiglu_math.h).
// fwd and bwd: elementwise, grid-stride over packs of kVec outputs; a thread reads the
//      matching packs of a (column c) and g (column ffn + c) of its row. 16-byte packs
//      when ffn and the pointers allow (Llama's 11008, 14336, 28672 do), else 1.
// Floor: fwd reads 2 and writes 1 element per output, bwd reads 3 and writes 2 ->
// bandwidth-bound (swiglu_cost.h).
#include "kernels/swiglu/swiglu.cuh"

#include <algorithm>

#include "common/check_cuda.h"
#include "kernels/common/launch.cuh"
#include "kernels/common/pack.cuh"
#include "kernels/swiglu/swiglu_math.h"

namespace seqscale {
namespace {

constexpr int kThreads = 256;
constexpr std::int64_t kMaxBlocks = 8192;  // ~8 waves of resident CTAs on an H100/H200, then grid-stride
constexpr std::int64_t kMaxFfn = std::int64_t{1} << 30;
constexpr std::int64_t kMaxRows = std::int64_t{1} << 40;

// ---- kernels ----------------------------------------------------------------------------

template <typename T, int kVec>
__global__ void __launch_bounds__(kThreads)
    swiglu_fwd_kernel(const T* __restrict__ x, T* __restrict__ y, std::int64_t packs, std::int64_t packs_per_row,
                      std::int64_t ffn) {
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < packs;
       i += static_cast<std::int64_t>(gridDim.x) * kThreads) {
    const std::int64_t row = i / packs_per_row, col = (i - row * packs_per_row) * kVec;
    const T* xr = x + row * 2 * ffn;
    float a[kVec], g[kVec];
    load_pack<T, kVec>(xr + col, a);
    load_pack<T, kVec>(xr + ffn + col, g);
#pragma unroll
    for (int k = 0; k < kVec; ++k) a[k] = swiglu::forward(a[k], g[k]);
    store_pack<T, kVec>(y + i * kVec, a);
  }
}

// dx may alias x: no __restrict__ on them.
template <typename T, int kVec>
__global__ void __launch_bounds__(kThreads)
    swiglu_bwd_kernel(const T* __restrict__ dy, const T* x, T* dx, std::int64_t packs, std::int64_t packs_per_row,
                      std::int64_t ffn) {
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < packs;
       i += static_cast<std::int64_t>(gridDim.x) * kThreads) {
    const std::int64_t row = i / packs_per_row, col = (i - row * packs_per_row) * kVec;
    const std::int64_t at = row * 2 * ffn + col;
    float a[kVec], g[kVec], d[kVec];
    load_pack<T, kVec>(x + at, a);
    load_pack<T, kVec>(x + at + ffn, g);
    load_pack<T, kVec>(dy + i * kVec, d);
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      const float dg = d[k] * a[k] * swiglu::sigmoid(a[k]);  // dy silu(a)
      a[k] = d[k] * g[k] * swiglu::silu_derivative(a[k]);    // da
      g[k] = dg;
    }
    store_pack<T, kVec>(dx + at, a);
    store_pack<T, kVec>(dx + at + ffn, g);
  }
}

// ---- launcher (validates params, picks the variant) --------------------------------------

unsigned grid_for(std::int64_t packs) {
  return static_cast<unsigned>(std::min((packs + kThreads - 1) / kThreads, kMaxBlocks));
}

template <typename T>
void fwd_typed(const SwiGluFwdParams& p, cudaStream_t s) {
  const auto* x = static_cast<const T*>(p.x);
  auto* y = static_cast<T*>(p.y);
  // 16-byte packs need ffn (the offset of g and both row strides) and the pointers to allow them.
  if (max_pack(sizeof(T), {p.ffn}, {p.x, p.y}) == kMaxPack<T>) {
    constexpr int kVec = kMaxPack<T>;
    const std::int64_t packs = p.rows * p.ffn / kVec;
    swiglu_fwd_kernel<T, kVec><<<grid_for(packs), kThreads, 0, s>>>(x, y, packs, p.ffn / kVec, p.ffn);
  } else {
    swiglu_fwd_kernel<T, 1><<<grid_for(p.rows * p.ffn), kThreads, 0, s>>>(x, y, p.rows * p.ffn, p.ffn, p.ffn);
  }
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void bwd_typed(const SwiGluBwdParams& p, cudaStream_t s) {
  const auto* dy = static_cast<const T*>(p.dy);
  const auto* x = static_cast<const T*>(p.x);
  auto* dx = static_cast<T*>(p.dx);
  if (max_pack(sizeof(T), {p.ffn}, {p.dy, p.x, p.dx}) == kMaxPack<T>) {
    constexpr int kVec = kMaxPack<T>;
    const std::int64_t packs = p.rows * p.ffn / kVec;
    swiglu_bwd_kernel<T, kVec><<<grid_for(packs), kThreads, 0, s>>>(dy, x, dx, packs, p.ffn / kVec, p.ffn);
  } else {
    swiglu_bwd_kernel<T, 1><<<grid_for(p.rows * p.ffn), kThreads, 0, s>>>(dy, x, dx, p.rows * p.ffn, p.ffn, p.ffn);
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void swiglu_fwd(const SwiGluFwdParams& p, cudaStream_t stream) {
  constexpr const char* op = "swiglu_fwd";
  require_range(op, "rows", p.rows, 0, kMaxRows);
  require_range(op, "ffn", p.ffn, 1, kMaxFfn);
  require_io(op, p.io);
  if (p.rows == 0) return;
  require(op, p.x, "x");
  require(op, p.y, "y");
  dispatch_io(p.io, [&](auto tag) { fwd_typed<decltype(tag)>(p, stream); });
}

void swiglu_bwd(const SwiGluBwdParams& p, cudaStream_t stream) {
  constexpr const char* op = "swiglu_bwd";
  require_range(op, "rows", p.rows, 0, kMaxRows);
  require_range(op, "ffn", p.ffn, 1, kMaxFfn);
  require_io(op, p.io);
  if (p.rows == 0) return;
  require(op, p.dy, "dy");
  require(op, p.x, "x");
  require(op, p.dx, "dx");
  dispatch_io(p.io, [&](auto tag) { bwd_typed<decltype(tag)>(p, stream); });
}

}  // namespace seqscale
