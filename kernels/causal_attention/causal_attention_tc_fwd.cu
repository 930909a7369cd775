// Status: compiles for sm_80/sm_90; not yet run on a GPU (its tests skip without one).
// causal_attention forward on tensor cores (fp16 / bf16, head sizes 64, 96, 128).
// FlashAttention-2's schedule on the WMMA API: a block of kWarps warps owns 16 * kWarps
// query rows (16 per warp) and walks the key tiles of 64 from key 0 up to its last row,
// never past it (the tiles above the diagonal, about half of the S^2 work, are not
// visited); a warp whose 16 rows all precede a tile skips that tile. Per tile:
//   K_t -> shared (cp.async, issued during the previous tile's softmax);
//   S_w = Q_w K_t^T (WMMA, fp32) -> the warp's score rows;
//   per row (a lane pair): scale in base 2, mask keys after the row (tiles that reach past
//     the warp's first row only), running max, P = exp2(S - max) rounded to the I/O dtype in
//     place, running sum of the rounded P (so O is exactly a weighted mean of V's rows);
//   O_w (fp32 WMMA fragments held in registers across tiles) rescaled per row through the
//     run-time row map (causal_attention_tc.cuh), then O_w += P_w V_t (WMMA).
// End: O = O_w / l (staged through the warp's score rows, 16-byte stores), lse = (m + log2 l) ln 2.
// Floor: 2 B H S^2 D FLOPs (causal half); the inputs are read once from DRAM, K/V tiles
// many times from L2 (128 query rows per block: 128 FLOPs per byte of K and V, any D).
// Next steps (not done: no GPU to tune on): mma.sync with P kept in registers (no score
// round trip through shared memory), wgmma/TMA on sm_90 (FlashAttention-3).
#include <cmath>

#include "kernels/causal_attention/causal_attention.cuh"
#include "kernels/causal_attention/causal_attention_tc.cuh"

namespace seqscale {
namespace {

using namespace causal_tc;  // NOLINT(google-build-using-namespace): this file's own kit

template <typename T>
struct FwdArgs {
  View<const T> q, k, v;
  View<T> o;
  float* lse;          // [B, H, S]
  std::int64_t heads, seq;
  float scale_log2;    // log2(e) / sqrt(D): scores in base 2, so exp2f serves
};

// ---- kernel ---------------------------------------------------------------------------

// grid: B * H * ceil(S / kBlockM) blocks, (b, h) major; kThreads threads.
template <typename T, int D, int kWarps>
__global__ void __launch_bounds__(32 * kWarps, 2) causal_fwd_tc(const FwdArgs<T> a) {
  using Tr = FwdTraits<D, kWarps>;
  static_assert(sizeof(T) == 2, "fp16 / bf16");
  constexpr int kLd = Tr::kLd;
  extern __shared__ __align__(128) unsigned char smem[];
  T* qs = reinterpret_cast<T*>(smem + Tr::kQ);
  T* ks = reinterpret_cast<T*>(smem + Tr::kK);
  T* vs = reinterpret_cast<T*>(smem + Tr::kV);
  float* ss = reinterpret_cast<float*>(smem + Tr::kS);
  float* corr_s = reinterpret_cast<float*>(smem + Tr::kCorr);
  float* idx_s = reinterpret_cast<float*>(smem + Tr::kIdx);
  const int warp = static_cast<int>(threadIdx.x / 32), lane = static_cast<int>(threadIdx.x % 32);
  const int r = lane >> 1, half = lane & 1;

  // Block -> (b, h, query tile); a head's tiles run last (heaviest) first, so the short
  // tiles fill the tail of the grid.
  const std::int64_t n_tiles = (a.seq + Tr::kBlockM - 1) / Tr::kBlockM;
  const auto block = static_cast<std::int64_t>(blockIdx.x);
  const std::int64_t bh = block / n_tiles;
  const std::int64_t i0 = (n_tiles - 1 - block % n_tiles) * Tr::kBlockM;
  const std::int64_t b = bh / a.heads, h = bh % a.heads;
  const T* q = a.q.slice(b, h);
  const T* k = a.k.slice(b, h);
  const T* v = a.v.slice(b, h);

  fill_index_matrix(idx_s, /*rows=*/true, Tr::kThreads);
  load_tile<T, D, Tr::kBlockM, Tr::kThreads>(qs, kLd, q, a.q.ss, i0, a.seq);
  cp_async_commit();  // group Q
  load_tile<T, D, kKeyTile, Tr::kThreads>(ks, kLd, k, a.k.ss, 0, a.seq);
  cp_async_commit();  // group K_0
  load_tile<T, D, kKeyTile, Tr::kThreads>(vs, kLd, v, a.v.ss, 0, a.seq);
  cp_async_commit();  // group V_0

  const std::int64_t warp_row0 = i0 + 16 * warp;  // the warp's first query row
  const std::int64_t row = warp_row0 + r;         // this lane's row in the softmax
  const bool warp_live = warp_row0 < a.seq;
  const std::int64_t keys_end = a.seq < i0 + Tr::kBlockM ? a.seq : i0 + Tr::kBlockM;
  const int n_kt = static_cast<int>((keys_end + kKeyTile - 1) / kKeyTile);
  float* s_w = ss + 16 * warp * kSld;     // the warp's 16 score rows
  float* s_row = s_w + r * kSld;          // this lane's row
  T* p_row = reinterpret_cast<T*>(s_row);  // ... rewritten as P
  const T* p_w = reinterpret_cast<const T*>(s_w);

  Acc o[D / 16];
#pragma unroll
  for (int n = 0; n < D / 16; ++n) wmma::fill_fragment(o[n], 0.f);
  float m = -INFINITY, l = 0.f;  // running max (base 2) and sum of this lane's row

  // cp.async groups are committed in the order Q, K_0, V_0, then per tile K_{t+1}, V_{t+1}
  // (empty past the last tile, so the counts stay uniform): "at most 1 pending" first
  // means K_t has landed (V_t may not), then V_t (K_{t+1} may not).
  for (int t = 0; t < n_kt; ++t) {
    const std::int64_t j0 = static_cast<std::int64_t>(t) * kKeyTile;
    cp_async_wait<1>();
    __syncthreads();  // K_t visible to every warp
    const bool active = warp_live && j0 <= warp_row0 + 15;  // some (row, key) of the warp is unmasked
    if (active) {
      Acc s[kKeyTile / 16];
      mma_abt<T, D, kKeyTile>(s, qs + 16 * warp * kLd, kLd, ks, kLd);
#pragma unroll
      for (int n = 0; n < kKeyTile / 16; ++n) wmma::store_matrix_sync(s_w + 16 * n, s[n], kSld, wmma::mem_row_major);
    }
    __syncthreads();  // every warp is done reading K_t
    if (t + 1 < n_kt) load_tile<T, D, kKeyTile, Tr::kThreads>(ks, kLd, k, a.k.ss, j0 + kKeyTile, a.seq);
    cp_async_commit();  // group K_{t+1}
    if (active) {
      // Scores of this lane's row in base 2, keys after the row masked (only tiles that reach
      // past the warp's first row can hold any).
      const bool masked = j0 + kKeyTile - 1 > warp_row0;
      const auto scaled = [&](int c) {
        float4 x = *reinterpret_cast<const float4*>(s_row + chunk_col(c, half));
        const std::int64_t j = j0 + chunk_col(c, half);
        x.x = masked && j > row ? -INFINITY : x.x * a.scale_log2;
        x.y = masked && j + 1 > row ? -INFINITY : x.y * a.scale_log2;
        x.z = masked && j + 2 > row ? -INFINITY : x.z * a.scale_log2;
        x.w = masked && j + 3 > row ? -INFINITY : x.w * a.scale_log2;
        return x;
      };
      // Pass 1: the row max; the first four chunks (the row's first 32 floats, which P
      // overwrites) are kept, the last four are read again in pass 2.
      float4 lo[4];
      float mx = -INFINITY;
#pragma unroll
      for (int c = 0; c < 8; ++c) {
        const float4 x = scaled(c);
        if (c < 4) lo[c] = x;
        mx = fmaxf(mx, fmaxf(fmaxf(x.x, x.y), fmaxf(x.z, x.w)));
      }
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      __syncwarp();  // every lane's pass-1 reads are done before any P write
      const float m_new = fmaxf(m, mx);
      // Every row sees key 0 in tile 0, so m_new is finite; the guard keeps a row with no
      // key yet at zeros rather than NaN should that ever change.
      const float base = m_new == -INFINITY ? 0.f : m_new;
      const float corr = exp2f(m - base);  // 0 on the row's first tile (m = -inf)
      // Pass 2: P = exp2(S - max) rounded to T in place; the sum is of the rounded values.
      float sum = 0.f;
#pragma unroll
      for (int c = 0; c < 8; ++c) {
        const float4 x = c < 4 ? lo[c] : scaled(c);
        const float4 p = store4(p_row + chunk_col(c, half), make_float4(exp2f(x.x - base), exp2f(x.y - base),
                                                                         exp2f(x.z - base), exp2f(x.w - base)));
        sum += (p.x + p.y) + (p.z + p.w);
      }
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      l = l * corr + sum;
      m = m_new;
      if (half == 0) corr_s[16 * warp + r] = corr;
      __syncwarp();  // P and the row factors written
      // O_w rows times their factors: element e of every accumulator fragment lies in row row_of[e].
      int row_of[Acc::num_elements];
      load_index(row_of, idx_s);
      float c_e[Acc::num_elements];
#pragma unroll
      for (int e = 0; e < Acc::num_elements; ++e) c_e[e] = corr_s[16 * warp + row_of[e]];
#pragma unroll
      for (int n = 0; n < D / 16; ++n) {
#pragma unroll
        for (int e = 0; e < Acc::num_elements; ++e) o[n].x[e] *= c_e[e];
      }
    }
    cp_async_wait<1>();
    __syncthreads();  // V_t visible to every warp
    if (active) mma_ab<T, kKeyTile, D>(o, p_w, kPld, vs, kLd);
    __syncthreads();  // every warp is done reading V_t
    if (t + 1 < n_kt) load_tile<T, D, kKeyTile, Tr::kThreads>(vs, kLd, v, a.v.ss, j0 + kKeyTile, a.seq);
    cp_async_commit();  // group V_{t+1}
  }
  cp_async_wait<0>();

  if (!warp_live) return;  // no barrier follows
  const bool row_ok = row < a.seq;
  store_warp_tile<T, D>(o, s_w, row_ok ? a.o.slice(b, h) + row * a.o.ss : nullptr, l > 0.f ? 1.f / l : 0.f);
  if (half == 0 && row_ok) a.lse[bh * a.seq + row] = (m + log2f(l)) * kLn2;
}

// ---- launcher -------------------------------------------------------------------------

// 8 warps (128 query rows) at every head size: against 64 rows it halves the K/V tile
// traffic per FLOP from L2 (a 64-row block gets 64 FLOPs per byte of K and V: at ~5.5 TB/s
// of H100 L2 bandwidth, ~350 TFLOP/s, near the mma.sync rate). __launch_bounds__(256, 2) caps the kernel at 128
// registers so that two blocks (16 warps) fit an H100/H200 SM, whose 228 KiB hold two
// 103.5-KiB tiles at D = 128; ptxas (CUDA 13, sm_90) then spills 32 bytes per thread at
// D = 128 (fp16 and bf16) and at bf16 D = 96, none elsewhere (sm_80, whose 164 KiB hold
// one such block anyway, spills up to 140 bytes at bf16 D = 128). Chosen by this
// arithmetic, not measured: tune on the device.
constexpr int kFwdWarps = 8;

template <typename T, int D>
void launch_fwd(const CausalAttentionParams& p, cudaStream_t st) {
  using Tr = FwdTraits<D, kFwdWarps>;
  using causal_attention_detail::make_view;
  const auto kernel = causal_fwd_tc<T, D, kFwdWarps>;
  allow_smem(reinterpret_cast<const void*>(kernel), Tr::kBytes);
  const CausalAttentionShape& s = p.shape;
  const FwdArgs<T> a{make_view<const T>(p.q, p.q_strides, s), make_view<const T>(p.k, p.k_strides, s),
                     make_view<const T>(p.v, p.v_strides, s),  make_view<T>(p.o, p.o_strides, s),
                     p.lse, s.heads, s.seq, kLog2e / std::sqrt(static_cast<float>(D))};
  const std::int64_t blocks = s.batch * s.heads * ((s.seq + Tr::kBlockM - 1) / Tr::kBlockM);  // validated <= 2^31 - 1
  kernel<<<static_cast<unsigned>(blocks), Tr::kThreads, Tr::kBytes, st>>>(a);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void causal_attention_fwd_tc(const CausalAttentionParams& p, cudaStream_t stream) {
  causal_attention_detail::by_dtype</*kAllowFp32=*/false>(p.io, [&](auto t) {
    using T = decltype(t);
    causal_attention_detail::by_head_dim(p.shape.head_dim, [&](auto d) { launch_fwd<T, decltype(d)::value>(p, stream); });
  });
}

}  // namespace seqscale
