// Shared pieces of the tensor-core Evoformer attention kernels (evoformer_attn_fused_tc.cu
// forward, evoformer_attn_fused_tc_bwd.cu backward): tile sizes, warp reductions, the
// [B, N, L, H, D] indexing and the shared-memory opt-in. Include only from those two files.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include <cstdint>
#include <mutex>
#include <set>
#include <utility>

#include "common/check_cuda.h"

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

// One warp, C[16 x N] (fp32, shared, row-major, ldc) = A[16 x K] B^T, with A [16 rows x K]
// and B [N rows x K] row-major in shared: S = Q K^T, dP = dO V^T and their transposes.
template <typename T, int K, int N>
__device__ __forceinline__ void warp_mma_abt(const T* a, int lda, const T* b, int ldb, float* c, int ldc) {
#pragma unroll
  for (int cn = 0; cn < N / 16; ++cn) {
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::fill_fragment(acc, 0.f);
#pragma unroll
    for (int kk = 0; kk < K / 16; ++kk) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa;
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> fb;  // B^T: B read column-major
      wmma::load_matrix_sync(fa, a + kk * 16, lda);
      wmma::load_matrix_sync(fb, b + cn * 16 * ldb + kk * 16, ldb);
      wmma::mma_sync(acc, fa, fb, acc);
    }
    wmma::store_matrix_sync(c + cn * 16, acc, ldc, wmma::mem_row_major);
  }
}

// One warp, C[16 x N] (fp32, shared) += A[16 x K] B, with B [K x N] row-major in shared:
// O += P V, dV += P^T dO, dK += dS^T Q, dQ += dS K, the accumulator kept in shared.
template <typename T, int K, int N>
__device__ __forceinline__ void warp_mma_ab_acc(const T* a, int lda, const T* b, int ldb, float* c, int ldc) {
#pragma unroll
  for (int cn = 0; cn < N / 16; ++cn) {
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::load_matrix_sync(acc, c + cn * 16, ldc, wmma::mem_row_major);
#pragma unroll
    for (int kk = 0; kk < K / 16; ++kk) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa;
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb;
      wmma::load_matrix_sync(fa, a + kk * 16, lda);
      wmma::load_matrix_sync(fb, b + kk * 16 * ldb + cn * 16, ldb);
      wmma::mma_sync(acc, fa, fb, acc);
    }
    wmma::store_matrix_sync(c + cn * 16, acc, ldc, wmma::mem_row_major);
  }
}

// The whole block copies `rows` rows of one (bn, h) slice of a [B, N, L, H, D] tensor,
// starting at row r0, into shared [rows x ld]; rows past L are zero.
template <typename T, int D>
__device__ __forceinline__ void load_rows(T* dst, int ld, const T* src, const TcGeo& g, std::int64_t bn, std::int64_t h,
                                          std::int64_t r0, int rows) {
  const T zero = T(0.f);
  for (int e = threadIdx.x; e < rows * D; e += blockDim.x) {
    const int r = e / D, d = e % D;
    const std::int64_t l = r0 + r;
    dst[r * ld + d] = l < g.len ? src[g.qkv<D>(bn, l, h) + d] : zero;
  }
}

// Large tiles need more than 48 KB of shared memory: opt in once per kernel and device
// (the attribute is per device; launches may come from several host threads). A pair is
// recorded only after the opt-in succeeded: a failed one (e.g. a sticky error from an
// earlier fault) throws with its own message now and is tried again at the next launch,
// rather than being skipped there and surfacing as a launch-configuration error.
inline void allow_smem(const void* kernel, std::size_t bytes) {
  static std::mutex mu;
  static std::set<std::pair<const void*, int>> done;
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  const std::lock_guard<std::mutex> lock(mu);
  const std::pair<const void*, int> key(kernel, device);
  if (done.count(key) != 0) return;
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  done.insert(key);
}

}  // namespace seqscale::evoformer_tc
