// The kit of the tensor-core causal attention kernels (causal_attention_tc_fwd.cu,
// causal_attention_tc_bwd.cu): tile traits with their shared-memory budgets, cp.async tile
// loads, warp-level WMMA products, packed fp16/bf16 stores and the shared-memory opt-in.
// Include only from those two files.
//
// Shared-memory rules every tile below follows:
// - Q/K/V/dO tiles are [rows x (D + 8)] in the I/O dtype: rows of 2D + 16 bytes (144, 208,
//   272 B for D = 64, 96, 128) start 16, 80, 16 bytes apart modulo 128, so the 8 rows one
//   ldmatrix phase reads fall in 8 different 16-byte bank groups (no conflicts), and every
//   16 x 16 fragment starts 32-byte aligned, as WMMA requires.
// - Scores are fp32 [rows x 68] (272-byte rows, same property). A warp owns 16 of them and
//   rewrites each row in place as P (or dS) in the I/O dtype: 64 values in the row's first
//   128 bytes, read back as a [16 x 136] WMMA operand.
// - Softmax and the elementwise backward map lane l to row l / 2 and half l % 2 of the 64
//   columns, interleaved in 16-float runs (half 0: columns 0-15, 32-47; half 1: 16-31,
//   48-63) so that a quarter-warp's float4 reads hit 8 distinct bank groups.
// - WMMA leaves the accumulator's element-to-(row, column) map unspecified; the kernels
//   read it at run time by loading a 16 x 16 matrix whose entries are their own row (or
//   column) index into an accumulator fragment: load/store/mma agree on the map, so
//   idx.x[e] is the row of element e in every accumulator fragment of the warp.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <set>
#include <type_traits>
#include <utility>

#include "kernels/causal_attention/causal_attention_view.cuh"
#include "common/check_cuda.h"

namespace seqscale::causal_tc {

namespace wmma = nvcuda::wmma;
using causal_attention_detail::View;
using Acc = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

// Opt-in shared memory per block (cudaDevAttrMaxSharedMemoryPerBlockOptin): sm_80 (A100)
// 163 KB, sm_90 (H100/H200) 227 KB. Every tile below fits sm_80's, so one binary serves both.
inline constexpr std::size_t kSmemSm80 = 163 * 1024;
inline constexpr std::size_t kSmemSm90 = 227 * 1024;

inline constexpr int kKeyTile = 64;          // keys per tile, every kernel
inline constexpr int kSld = kKeyTile + 4;    // fp32 score row stride (floats)
inline constexpr int kPld = 2 * kSld;        // the same rows as P / dS in the I/O dtype (elements)
inline constexpr float kLog2e = 1.4426950408889634f;
inline constexpr float kLn2 = 0.6931471805599453f;

constexpr std::size_t align128(std::size_t x) { return (x + 127) / 128 * 128; }

template <int D>
struct HeadDim {
  static_assert(D == 64 || D == 96 || D == 128, "head sizes 64, 96 and 128");
  static constexpr int kLd = D + 8;                                // tile row stride (elements)
  static constexpr std::size_t tile_bytes(int rows) { return align128(2u * rows * kLd); }  // 2-byte I/O dtype
  static constexpr std::size_t score_bytes(int rows) { return align128(4u * rows * kSld); }
};

// Forward: kWarps warps of 16 query rows each; key tiles of 64 visited up to the diagonal.
// Q stays for the whole block; K and V are reloaded per key tile (split so the next K loads
// during softmax and P V, the next V during the next Q K^T). Bytes, 8 warps:
//   D = 128: Q 34816 + K 17408 + V 17408 + S/P 34816 + 1536 = 103.5 KiB;  D = 96: 87.5 KiB;
//   D = 64: 71.5 KiB. H100/H200 (228 KiB per SM, 1 KiB reserved per block): 2 blocks (16
//   warps) per SM at every size, which the kernel's 128-register bound also allows;
//   A100 (164 KiB): 1 block at D = 96 and 128, 2 at D = 64.
template <int D, int kWarps>
struct FwdTraits {
  using H = HeadDim<D>;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kBlockM = 16 * kWarps;  // query rows per block
  static constexpr int kLd = H::kLd;
  static constexpr std::size_t kQ = 0;
  static constexpr std::size_t kK = kQ + H::tile_bytes(kBlockM);
  static constexpr std::size_t kV = kK + H::tile_bytes(kKeyTile);
  static constexpr std::size_t kS = kV + H::tile_bytes(kKeyTile);      // scores, then P in place
  static constexpr std::size_t kCorr = kS + H::score_bytes(kBlockM);   // per-row rescale factor
  static constexpr std::size_t kIdx = kCorr + align128(4u * kBlockM);  // row-index matrix
  static constexpr std::size_t kBytes = kIdx + align128(4u * 256);
  static_assert(kBytes <= kSmemSm80, "forward tile exceeds sm_80's 163 KB of shared memory");
};

// Backward, dK and dV (and dQ by atomics): 4 warps of 16 keys (a 64-key tile that stays),
// query tiles of 64 from the diagonal down; S^T, dP^T fp32 rewritten in place as P^T, dS^T.
//   D = 128: K, V, Q, dO 4 x 17408 + S^T, dP^T 2 x 17408 + 2560 = 104.5 KiB; D = 96: 88.5 KiB;
//   D = 64: 72.5 KiB. H100/H200: 2 blocks (8 warps) per SM (255 registers x 128 threads
//   allow 2 as well); A100: 1 at D = 96 and 128, 2 at D = 64.
template <int D>
struct BwdKvTraits {
  using H = HeadDim<D>;
  static constexpr int kWarps = 4;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kBlockN = 16 * kWarps;  // keys per block
  static constexpr int kBlockM = kKeyTile;     // query rows per inner tile (= the key tile: diagonals align)
  static constexpr int kLd = H::kLd;
  static constexpr std::size_t kK = 0;
  static constexpr std::size_t kV = kK + H::tile_bytes(kBlockN);
  static constexpr std::size_t kQ = kV + H::tile_bytes(kBlockN);
  static constexpr std::size_t kDo = kQ + H::tile_bytes(kBlockM);
  static constexpr std::size_t kSt = kDo + H::tile_bytes(kBlockM);     // S^T, then P^T in place
  static constexpr std::size_t kDpt = kSt + H::score_bytes(kBlockN);   // dP^T, then dS^T in place
  static constexpr std::size_t kLse = kDpt + H::score_bytes(kBlockN);  // lse of the query tile
  static constexpr std::size_t kDot = kLse + align128(4u * kBlockM);   // D_i of the query tile
  static constexpr std::size_t kIdxRow = kDot + align128(4u * kBlockM);
  static constexpr std::size_t kIdxCol = kIdxRow + align128(4u * 256);
  static constexpr std::size_t kBytes = kIdxCol + align128(4u * 256);
  static_assert(kBlockM == kBlockN, "query and key tiles must align on the diagonal");
  static_assert(kBytes <= kSmemSm80, "dK/dV tile exceeds sm_80's 163 KB of shared memory");
};

// Backward, deterministic dQ: 4 warps of 16 query rows (Q, dO stay), key tiles of 64 up to
// the diagonal. D = 128: 4 x 17408 + 2 x 17408 = 102 KiB; D = 96: 86 KiB; D = 64: 70 KiB.
template <int D>
struct BwdQTraits {
  using H = HeadDim<D>;
  static constexpr int kWarps = 4;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kBlockM = 16 * kWarps;
  static constexpr int kLd = H::kLd;
  static constexpr std::size_t kQ = 0;
  static constexpr std::size_t kDo = kQ + H::tile_bytes(kBlockM);
  static constexpr std::size_t kK = kDo + H::tile_bytes(kBlockM);
  static constexpr std::size_t kV = kK + H::tile_bytes(kKeyTile);
  static constexpr std::size_t kS = kV + H::tile_bytes(kKeyTile);     // S, then dS in place
  static constexpr std::size_t kDp = kS + H::score_bytes(kBlockM);
  static constexpr std::size_t kBytes = kDp + H::score_bytes(kBlockM);
  static_assert(kBlockM == kKeyTile, "query and key tiles must align on the diagonal");
  static_assert(kBytes <= kSmemSm80, "dQ tile exceeds sm_80's 163 KB of shared memory");
};

// ---- packed fp16 / bf16 stores ---------------------------------------------------

template <typename T>
struct Pack;
template <>
struct Pack<__half> {
  using T2 = __half2;
  __device__ static T2 pack(float a, float b) { return __floats2half2_rn(a, b); }
  __device__ static float2 unpack(T2 v) { return __half22float2(v); }
};
template <>
struct Pack<__nv_bfloat16> {
  using T2 = __nv_bfloat162;
  __device__ static T2 pack(float a, float b) { return __floats2bfloat162_rn(a, b); }
  __device__ static float2 unpack(T2 v) { return __bfloat1622float2(v); }
};

// Four values rounded to T and stored at dst (8-byte aligned); returns them as rounded.
template <typename T>
__device__ __forceinline__ float4 store4(T* dst, float4 v) {
  using P = Pack<T>;
  const typename P::T2 lo = P::pack(v.x, v.y), hi = P::pack(v.z, v.w);
  reinterpret_cast<typename P::T2*>(dst)[0] = lo;
  reinterpret_cast<typename P::T2*>(dst)[1] = hi;
  const float2 a = P::unpack(lo), b = P::unpack(hi);
  return make_float4(a.x, a.y, b.x, b.y);
}

// Eight fp32 values from shared (16-byte aligned) times `scale`, rounded to T, one 16-byte
// store to dst (16-byte aligned).
template <typename T>
__device__ __forceinline__ void store8(T* dst, const float* src, float scale) {
  using P = Pack<T>;
  const float4 a = reinterpret_cast<const float4*>(src)[0], b = reinterpret_cast<const float4*>(src)[1];
  const typename P::T2 h[4] = {P::pack(a.x * scale, a.y * scale), P::pack(a.z * scale, a.w * scale),
                               P::pack(b.x * scale, b.y * scale), P::pack(b.z * scale, b.w * scale)};
  uint4 bits;
  static_assert(sizeof(h) == sizeof(bits), "8 values of a 2-byte type");
  memcpy(&bits, h, sizeof(bits));
  *reinterpret_cast<uint4*>(dst) = bits;
}

// The 16-float run of chunk k (0..7, four floats each) that lane half `half` owns in a
// 64-column row: half 0 takes columns 0-15 and 32-47, half 1 16-31 and 48-63.
__device__ __forceinline__ int chunk_col(int k, int half) { return 32 * (k >> 2) + 16 * half + 4 * (k & 3); }

// ---- cp.async (sm_80+) -----------------------------------------------------------

__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, bool pred) {
  const auto dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem), "r"(pred ? 16 : 0) : "memory");
}
__device__ __forceinline__ void cp_async_4(void* smem, const void* gmem, bool pred) {
  const auto dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(gmem), "r"(pred ? 4 : 0) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most N of this thread's committed groups are pending (they complete in order).
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// The block copies rows [r0, r0 + kRows) of a slice (row i at slice + i * row_stride) into
// a shared [kRows x ld] tile, 16 bytes per cp.async; rows at or past `seq` are zero-filled
// (their source is the slice's row 0, valid and not read), so padded rows multiply as zeros.
template <typename T, int D, int kRows, int kThreads>
__device__ __forceinline__ void load_tile(T* dst, int ld, const T* slice, std::int64_t row_stride, std::int64_t r0,
                                          std::int64_t seq) {
  constexpr int kChunks = D / 8;
  static_assert((kRows * kChunks) % kThreads == 0, "every thread copies the same number of chunks");
#pragma unroll
  for (int it = 0; it < kRows * kChunks / kThreads; ++it) {
    const int c = it * kThreads + static_cast<int>(threadIdx.x);
    const int r = c / kChunks, col = (c % kChunks) * 8;
    const std::int64_t row = r0 + r;
    const bool in = row < seq;
    cp_async_16(dst + r * ld + col, slice + (in ? row * row_stride + col : 0), in);
  }
}

// kRows fp32 values of a [B, H, S] row vector from element r0 (zero past seq).
template <int kRows, int kThreads>
__device__ __forceinline__ void load_vec(float* dst, const float* row, std::int64_t r0, std::int64_t seq) {
  for (int r = static_cast<int>(threadIdx.x); r < kRows; r += kThreads) {
    const bool in = r0 + r < seq;
    cp_async_4(dst + r, row + (in ? r0 + r : 0), in);
  }
}

// ---- warp-level products (fp32 accumulators in registers) ------------------------

// acc[N/16] = A B^T with A [16 x K] and B [N x K] both row-major in shared (B^T is B read
// column-major): S = Q K^T, S^T = K Q^T, dP = dO V^T, dP^T = V dO^T.
template <typename T, int K, int N>
__device__ __forceinline__ void mma_abt(Acc (&acc)[N / 16], const T* a, int lda, const T* b, int ldb) {
#pragma unroll
  for (int n = 0; n < N / 16; ++n) wmma::fill_fragment(acc[n], 0.f);
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk) {
    wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa;
    wmma::load_matrix_sync(fa, a + kk * 16, lda);
#pragma unroll
    for (int n = 0; n < N / 16; ++n) {
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> fb;
      wmma::load_matrix_sync(fb, b + n * 16 * ldb + kk * 16, ldb);
      wmma::mma_sync(acc[n], fa, fb, acc[n]);
    }
  }
}

// acc[N/16] += A B with B [K x N] row-major in shared and A [16 x K] row-major, or with
// ALayout = col_major stored transposed (element (r, c) at a[c * lda + r]): O += P V,
// dV += P^T dO, dK += dS^T Q, dQ += dS K (dS read from the dS^T tile).
template <typename T, int K, int N, typename ALayout = wmma::row_major>
__device__ __forceinline__ void mma_ab(Acc (&acc)[N / 16], const T* a, int lda, const T* b, int ldb) {
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk) {
    wmma::fragment<wmma::matrix_a, 16, 16, 16, T, ALayout> fa;
    wmma::load_matrix_sync(fa, std::is_same_v<ALayout, wmma::row_major> ? a + kk * 16 : a + kk * 16 * lda, lda);
#pragma unroll
    for (int n = 0; n < N / 16; ++n) {
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb;
      wmma::load_matrix_sync(fb, b + kk * 16 * ldb + n * 16, ldb);
      wmma::mma_sync(acc[n], fa, fb, acc[n]);
    }
  }
}

// idx[e] = e / 16 (rows) or e % 16 (columns): loaded into an accumulator fragment, entry e
// of the fragment tells the row (column) of its element e.
__device__ __forceinline__ void fill_index_matrix(float* idx, bool rows, int threads) {
  for (int e = static_cast<int>(threadIdx.x); e < 256; e += threads) idx[e] = static_cast<float>(rows ? e / 16 : e % 16);
}
__device__ __forceinline__ void load_index(int (&out)[Acc::num_elements], const float* idx) {
  Acc f;
  wmma::load_matrix_sync(f, idx, 16, wmma::mem_row_major);
#pragma unroll
  for (int e = 0; e < Acc::num_elements; ++e) out[e] = static_cast<int>(f.x[e]);
}

// One warp writes its 16 x D accumulator tile (acc[D/16]) times `scale` to global: 64
// columns at a time through its own 16 x kSld fp32 rows `stage`; lane (r = lane / 2,
// half = lane % 2) writes row r's half of each chunk with 16-byte stores to `row` (this
// lane's row in global; null to skip a row past the sequence).
template <typename T, int D>
__device__ __forceinline__ void store_warp_tile(Acc (&acc)[D / 16], float* stage, T* row, float scale) {
  constexpr int kFrags = D / 16;
  const int lane = static_cast<int>(threadIdx.x % 32), r = lane >> 1, half = lane & 1;
#pragma unroll
  for (int g = 0; g < (kFrags + 3) / 4; ++g) {
    __syncwarp();  // the previous chunk's reads are done
#pragma unroll
    for (int f = 0; f < 4; ++f) {
      if (4 * g + f < kFrags) wmma::store_matrix_sync(stage + 16 * f, acc[4 * g + f < kFrags ? 4 * g + f : 0], kSld, wmma::mem_row_major);
    }
    __syncwarp();
    const int cols = (kFrags - 4 * g >= 4 ? 4 : kFrags - 4 * g) * 16, w = cols / 2;  // 64 or 32 columns
    if (row != nullptr) {
      for (int u = 0; u < w; u += 8) store8(row + 64 * g + half * w + u, stage + r * kSld + half * w + u, scale);
    }
  }
  __syncwarp();
}

// Large tiles need more than 48 KB of shared memory: opt in once per kernel and device (the
// attribute is per device; launches may come from several host threads), and ask for the
// largest shared-memory carveout so that 2-3 blocks fit per SM. A pair is recorded only
// after the opt-in succeeded: a failed one throws with its own message now and is tried
// again at the next launch (the evoformer_attn kernels do the same).
inline void allow_smem(const void* kernel, std::size_t bytes) {
  static std::mutex mu;
  static std::set<std::pair<const void*, int>> done;
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  const std::lock_guard<std::mutex> lock(mu);
  const std::pair<const void*, int> key(kernel, device);
  if (done.count(key) != 0) return;
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                  static_cast<int>(cudaSharedmemCarveoutMaxShared)));
  done.insert(key);
}

}  // namespace seqscale::causal_tc
