// Status: compiles for sm_80/sm_90; not yet run on a GPU (its tests skip without one).
// causal_attention backward on tensor cores (fp16 / bf16, head sizes 64, 96, 128), by
// recomputation from the forward's log-sum-exp, FlashAttention-2's split:
//   (1) causal_bwd_kv_tc, one block per 64-key tile (4 warps x 16 keys, K and V stay),
//       over the query tiles from the diagonal down (the ones above it see none of these
//       keys and are never visited). Per query tile (Q, dO, lse, D_i loaded with cp.async
//       while the previous tile's dQ work runs):
//         S^T_w = K_w Q^T, dP^T_w = V_w dO^T (WMMA, fp32 to the warp's rows);
//         P^T = exp2(S^T scale log2 e - lse log2 e), zero where the query precedes the key
//           (diagonal tile) or lies past S; dS^T = P^T (dP^T - D_i); both rounded to the
//           I/O dtype in place, as FlashAttention feeds them to the tensor cores;
//         dV_w += P^T_w dO, dK_w += dS^T_w Q (fp32 fragments held in registers);
//         kAtomic: dQ (16 query rows per warp) += dS K, the tile's dS^T read column-major,
//           added with fp32 atomics into dq_accum [B, H, S, D] (element addresses from the
//           run-time accumulator map, as FlashAttention-2 adds from its registers).
//   (2) kDeterministic: causal_bwd_q_tc, one block per 64-row query tile (Q, dO stay), over
//       the key tiles up to the diagonal in order: S, dP, dS recomputed, dQ_w += dS_w K in
//       registers, written once. No atomics: the same bits every run, at 7 S^2 D / 2
//       products instead of 5.
//   kAtomic then converts dq_accum to dQ (times 1/sqrt(D)) in the I/O dtype.
// dK gets its 1/sqrt(D) at the end; D_i = dO_i . O_i comes from causal_attention_row_dot.
// Key tiles run heaviest (first) first; query tiles of (2) last first.
#include <cmath>

#include "kernels/causal_attention/causal_attention.cuh"
#include "kernels/causal_attention/causal_attention_tc.cuh"
#include "kernels/common/convert.cuh"

namespace seqscale {
namespace {

using namespace causal_tc;  // NOLINT(google-build-using-namespace): this file's own kit

template <typename T>
struct BwdArgs {
  View<const T> q, k, v, d_o;
  View<T> dq, dk, dv;
  const float* lse;      // [B, H, S]
  const float* row_dot;  // [B, H, S]
  float* dq_accum;       // [B, H, S, D], kAtomic only
  std::int64_t heads, seq;
  float scale;       // 1 / sqrt(D)
  float scale_log2;  // log2(e) / sqrt(D)
};

// The 4 float4 chunks (16 floats) of a lane's row that the in-place P / dS rewrite
// overwrites (the row's first 32 floats, see causal_attention_tc.cuh): read before it.
__device__ __forceinline__ void read_low(float4 (&lo)[4], const float* row, int half) {
#pragma unroll
  for (int c = 0; c < 4; ++c) lo[c] = *reinterpret_cast<const float4*>(row + chunk_col(c, half));
}

// ---- (1) dK, dV (and dQ by atomics) per key tile --------------------------------------

template <typename T, int D, bool kAtomicDq>
__global__ void __launch_bounds__(128) causal_bwd_kv_tc(const BwdArgs<T> a) {
  using Tr = BwdKvTraits<D>;
  static_assert(sizeof(T) == 2, "fp16 / bf16");
  constexpr int kLd = Tr::kLd;
  extern __shared__ __align__(128) unsigned char smem[];
  T* ks = reinterpret_cast<T*>(smem + Tr::kK);
  T* vs = reinterpret_cast<T*>(smem + Tr::kV);
  T* qs = reinterpret_cast<T*>(smem + Tr::kQ);
  T* dos = reinterpret_cast<T*>(smem + Tr::kDo);
  float* st = reinterpret_cast<float*>(smem + Tr::kSt);
  float* dpt = reinterpret_cast<float*>(smem + Tr::kDpt);
  float* lse_s = reinterpret_cast<float*>(smem + Tr::kLse);
  float* dot_s = reinterpret_cast<float*>(smem + Tr::kDot);
  float* idx_r = reinterpret_cast<float*>(smem + Tr::kIdxRow);
  float* idx_c = reinterpret_cast<float*>(smem + Tr::kIdxCol);
  const int warp = static_cast<int>(threadIdx.x / 32), lane = static_cast<int>(threadIdx.x % 32);
  const int r = lane >> 1, half = lane & 1;

  const std::int64_t n_tiles = (a.seq + Tr::kBlockN - 1) / Tr::kBlockN;
  const auto block = static_cast<std::int64_t>(blockIdx.x);
  const std::int64_t bh = block / n_tiles;
  const std::int64_t j0 = (block % n_tiles) * Tr::kBlockN;  // first key of the tile
  const std::int64_t b = bh / a.heads, h = bh % a.heads;
  const T* q = a.q.slice(b, h);
  const T* d_o = a.d_o.slice(b, h);
  const float* lse_row = a.lse + bh * a.seq;
  const float* dot_row = a.row_dot + bh * a.seq;

  if constexpr (kAtomicDq) {
    fill_index_matrix(idx_r, /*rows=*/true, Tr::kThreads);
    fill_index_matrix(idx_c, /*rows=*/false, Tr::kThreads);
  }
  load_tile<T, D, Tr::kBlockN, Tr::kThreads>(ks, kLd, a.k.slice(b, h), a.k.ss, j0, a.seq);
  load_tile<T, D, Tr::kBlockN, Tr::kThreads>(vs, kLd, a.v.slice(b, h), a.v.ss, j0, a.seq);
  // The first query tile is the diagonal one: i0 = j0.
  load_tile<T, D, Tr::kBlockM, Tr::kThreads>(qs, kLd, q, a.q.ss, j0, a.seq);
  load_tile<T, D, Tr::kBlockM, Tr::kThreads>(dos, kLd, d_o, a.d_o.ss, j0, a.seq);
  load_vec<Tr::kBlockM, Tr::kThreads>(lse_s, lse_row, j0, a.seq);
  load_vec<Tr::kBlockM, Tr::kThreads>(dot_s, dot_row, j0, a.seq);
  cp_async_commit();

  const std::int64_t key = j0 + 16 * warp + r;  // this lane's key row in the elementwise phase
  float* st_w = st + 16 * warp * kSld;           // the warp's 16 rows of S^T, then P^T
  float* dpt_w = dpt + 16 * warp * kSld;         // ... of dP^T, then dS^T
  float* st_row = st_w + r * kSld;
  float* dpt_row = dpt_w + r * kSld;
  Acc dk[D / 16], dv[D / 16];
#pragma unroll
  for (int n = 0; n < D / 16; ++n) {
    wmma::fill_fragment(dk[n], 0.f);
    wmma::fill_fragment(dv[n], 0.f);
  }

  for (std::int64_t i0 = j0; i0 < a.seq; i0 += Tr::kBlockM) {
    cp_async_wait<0>();
    __syncthreads();  // Q_i, dO_i, lse_i, D_i (and K, V) visible; the last tile's dS^T reads are done
    {
      Acc s[Tr::kBlockM / 16];
      mma_abt<T, D, Tr::kBlockM>(s, ks + 16 * warp * kLd, kLd, qs, kLd);
#pragma unroll
      for (int n = 0; n < Tr::kBlockM / 16; ++n) wmma::store_matrix_sync(st_w + 16 * n, s[n], kSld, wmma::mem_row_major);
      mma_abt<T, D, Tr::kBlockM>(s, vs + 16 * warp * kLd, kLd, dos, kLd);
#pragma unroll
      for (int n = 0; n < Tr::kBlockM / 16; ++n) wmma::store_matrix_sync(dpt_w + 16 * n, s[n], kSld, wmma::mem_row_major);
    }
    __syncwarp();
    {
      float4 s_lo[4], dp_lo[4];
      read_low(s_lo, st_row, half);
      read_low(dp_lo, dpt_row, half);
      __syncwarp();  // every lane has read what the in-place P^T / dS^T will overwrite
      const bool diag = i0 == j0;  // the only tile with queries before keys
#pragma unroll
      for (int c = 0; c < 8; ++c) {
        const int col = chunk_col(c, half);
        const float4 sx = c < 4 ? s_lo[c] : *reinterpret_cast<const float4*>(st_row + col);
        const float4 dx = c < 4 ? dp_lo[c] : *reinterpret_cast<const float4*>(dpt_row + col);
        const float4 l4 = *reinterpret_cast<const float4*>(lse_s + col);
        const float4 d4 = *reinterpret_cast<const float4*>(dot_s + col);
        const float sv[4] = {sx.x, sx.y, sx.z, sx.w}, dpv[4] = {dx.x, dx.y, dx.z, dx.w};
        const float lv[4] = {l4.x, l4.y, l4.z, l4.w}, dv4[4] = {d4.x, d4.y, d4.z, d4.w};
        float p[4], ds[4];
#pragma unroll
        for (int u = 0; u < 4; ++u) {
          const std::int64_t i = i0 + col + u;
          const bool zero = i >= a.seq || (diag && i < key);
          p[u] = zero ? 0.f : exp2f(sv[u] * a.scale_log2 - lv[u] * kLog2e);
          ds[u] = p[u] * (dpv[u] - dv4[u]);
        }
        store4(reinterpret_cast<T*>(st_row) + col, make_float4(p[0], p[1], p[2], p[3]));
        store4(reinterpret_cast<T*>(dpt_row) + col, make_float4(ds[0], ds[1], ds[2], ds[3]));
      }
    }
    __syncwarp();  // P^T_w and dS^T_w written
    mma_ab<T, Tr::kBlockM, D>(dv, reinterpret_cast<const T*>(st_w), kPld, dos, kLd);
    mma_ab<T, Tr::kBlockM, D>(dk, reinterpret_cast<const T*>(dpt_w), kPld, qs, kLd);
    __syncthreads();  // every warp's dS^T is written; Q_i, dO_i, lse_i, D_i are no longer read
    const std::int64_t i1 = i0 + Tr::kBlockM;
    if (i1 < a.seq) {
      load_tile<T, D, Tr::kBlockM, Tr::kThreads>(qs, kLd, q, a.q.ss, i1, a.seq);
      load_tile<T, D, Tr::kBlockM, Tr::kThreads>(dos, kLd, d_o, a.d_o.ss, i1, a.seq);
      load_vec<Tr::kBlockM, Tr::kThreads>(lse_s, lse_row, i1, a.seq);
      load_vec<Tr::kBlockM, Tr::kThreads>(dot_s, dot_row, i1, a.seq);
    }
    cp_async_commit();
    if constexpr (kAtomicDq) {
      // dQ of query rows i0 + 16 w .. + 15 over this key tile: dS [queries x keys] is the
      // dS^T tile read column-major from column 16 w; G fragments (16 G columns) at a time
      // to bound the registers on top of dK and dV.
      constexpr int G = (D / 16) % 4 == 0 ? 4 : 2;
      int row_of[Acc::num_elements], col_of[Acc::num_elements];
      load_index(row_of, idx_r);
      load_index(col_of, idx_c);
      const T* ds_cols = reinterpret_cast<const T*>(dpt) + 16 * warp;
      float* acc_rows = a.dq_accum + (bh * a.seq + i0 + 16 * warp) * D;
      const std::int64_t rows_left = a.seq - (i0 + 16 * warp);  // rows at or past it are padding
#pragma unroll
      for (int c = 0; c < D / 16; c += G) {
        Acc part[G];
#pragma unroll
        for (int f = 0; f < G; ++f) wmma::fill_fragment(part[f], 0.f);
        mma_ab<T, Tr::kBlockN, 16 * G, wmma::col_major>(part, ds_cols, kPld, ks + 16 * c, kLd);
#pragma unroll
        for (int f = 0; f < G; ++f) {
#pragma unroll
          for (int e = 0; e < Acc::num_elements; ++e) {
            if (row_of[e] < rows_left) atomicAdd(acc_rows + row_of[e] * D + 16 * (c + f) + col_of[e], part[f].x[e]);
          }
        }
      }
    }
  }
  cp_async_wait<0>();

  const bool key_ok = key < a.seq;
  store_warp_tile<T, D>(dk, st_w, key_ok ? a.dk.slice(b, h) + key * a.dk.ss : nullptr, a.scale);
  store_warp_tile<T, D>(dv, st_w, key_ok ? a.dv.slice(b, h) + key * a.dv.ss : nullptr, 1.f);
}

// ---- (2) deterministic dQ per query tile -----------------------------------------------

template <typename T, int D>
__global__ void __launch_bounds__(128) causal_bwd_q_tc(const BwdArgs<T> a) {
  using Tr = BwdQTraits<D>;
  static_assert(sizeof(T) == 2, "fp16 / bf16");
  constexpr int kLd = Tr::kLd;
  extern __shared__ __align__(128) unsigned char smem[];
  T* qs = reinterpret_cast<T*>(smem + Tr::kQ);
  T* dos = reinterpret_cast<T*>(smem + Tr::kDo);
  T* ks = reinterpret_cast<T*>(smem + Tr::kK);
  T* vs = reinterpret_cast<T*>(smem + Tr::kV);
  float* ss = reinterpret_cast<float*>(smem + Tr::kS);
  float* dps = reinterpret_cast<float*>(smem + Tr::kDp);
  const int warp = static_cast<int>(threadIdx.x / 32), lane = static_cast<int>(threadIdx.x % 32);
  const int r = lane >> 1, half = lane & 1;

  const std::int64_t n_tiles = (a.seq + Tr::kBlockM - 1) / Tr::kBlockM;
  const auto block = static_cast<std::int64_t>(blockIdx.x);
  const std::int64_t bh = block / n_tiles;
  const std::int64_t i0 = (n_tiles - 1 - block % n_tiles) * Tr::kBlockM;
  const std::int64_t b = bh / a.heads, h = bh % a.heads;
  const T* k = a.k.slice(b, h);
  const T* v = a.v.slice(b, h);

  load_tile<T, D, Tr::kBlockM, Tr::kThreads>(qs, kLd, a.q.slice(b, h), a.q.ss, i0, a.seq);
  load_tile<T, D, Tr::kBlockM, Tr::kThreads>(dos, kLd, a.d_o.slice(b, h), a.d_o.ss, i0, a.seq);
  load_tile<T, D, kKeyTile, Tr::kThreads>(ks, kLd, k, a.k.ss, 0, a.seq);
  load_tile<T, D, kKeyTile, Tr::kThreads>(vs, kLd, v, a.v.ss, 0, a.seq);
  cp_async_commit();

  const std::int64_t row = i0 + 16 * warp + r;  // this lane's query row in the elementwise phase
  const bool row_ok = row < a.seq;
  // Padded rows get lse = D_i = 0: with their zero-filled Q and dO, dS = P (0 - 0) = 0.
  const float lse2 = row_ok ? a.lse[bh * a.seq + row] * kLog2e : 0.f;
  const float row_d = row_ok ? a.row_dot[bh * a.seq + row] : 0.f;
  float* s_w = ss + 16 * warp * kSld;  // the warp's 16 rows of S, then dS
  float* dp_w = dps + 16 * warp * kSld;
  float* s_row = s_w + r * kSld;
  const float* dp_row = dp_w + r * kSld;
  Acc dq[D / 16];
#pragma unroll
  for (int n = 0; n < D / 16; ++n) wmma::fill_fragment(dq[n], 0.f);

  const int n_kt = static_cast<int>(i0 / kKeyTile) + 1;  // key tiles 0 .. the diagonal one
  for (int t = 0; t < n_kt; ++t) {
    const std::int64_t j0 = static_cast<std::int64_t>(t) * kKeyTile;
    cp_async_wait<0>();
    __syncthreads();  // K_t, V_t (and Q, dO) visible
    {
      Acc s[kKeyTile / 16];
      mma_abt<T, D, kKeyTile>(s, qs + 16 * warp * kLd, kLd, ks, kLd);
#pragma unroll
      for (int n = 0; n < kKeyTile / 16; ++n) wmma::store_matrix_sync(s_w + 16 * n, s[n], kSld, wmma::mem_row_major);
      mma_abt<T, D, kKeyTile>(s, dos + 16 * warp * kLd, kLd, vs, kLd);
#pragma unroll
      for (int n = 0; n < kKeyTile / 16; ++n) wmma::store_matrix_sync(dp_w + 16 * n, s[n], kSld, wmma::mem_row_major);
    }
    __syncthreads();  // every warp is done reading V_t (K_t is still needed below)
    if (t + 1 < n_kt) load_tile<T, D, kKeyTile, Tr::kThreads>(vs, kLd, v, a.v.ss, j0 + kKeyTile, a.seq);
    cp_async_commit();
    {
      float4 s_lo[4];
      read_low(s_lo, s_row, half);
      __syncwarp();  // every lane has read what the in-place dS will overwrite
      const bool diag = j0 == i0;  // the only tile with keys after queries
#pragma unroll
      for (int c = 0; c < 8; ++c) {
        const int col = chunk_col(c, half);
        const float4 sx = c < 4 ? s_lo[c] : *reinterpret_cast<const float4*>(s_row + col);
        const float4 dx = *reinterpret_cast<const float4*>(dp_row + col);
        const float sv[4] = {sx.x, sx.y, sx.z, sx.w}, dpv[4] = {dx.x, dx.y, dx.z, dx.w};
        float ds[4];
#pragma unroll
        for (int u = 0; u < 4; ++u) {
          const bool zero = diag && j0 + col + u > row;
          const float p = zero ? 0.f : exp2f(sv[u] * a.scale_log2 - lse2);
          ds[u] = p * (dpv[u] - row_d);
        }
        store4(reinterpret_cast<T*>(s_row) + col, make_float4(ds[0], ds[1], ds[2], ds[3]));
      }
    }
    __syncwarp();  // dS_w written
    mma_ab<T, kKeyTile, D>(dq, reinterpret_cast<const T*>(s_w), kPld, ks, kLd);
    __syncthreads();  // every warp is done reading K_t
    if (t + 1 < n_kt) load_tile<T, D, kKeyTile, Tr::kThreads>(ks, kLd, k, a.k.ss, j0 + kKeyTile, a.seq);
    cp_async_commit();
  }
  cp_async_wait<0>();
  store_warp_tile<T, D>(dq, s_w, row_ok ? a.dq.slice(b, h) + row * a.dq.ss : nullptr, a.scale);
}

// dQ = dq_accum / sqrt(D) in the I/O dtype; one thread per element, grid-stride.
template <typename T>
__global__ void dq_from_accum(const float* __restrict__ acc, View<T> dq, std::int64_t heads, std::int64_t seq, int dim,
                              float scale, std::int64_t total) {
  for (std::int64_t idx = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t d = idx % dim, i = (idx / dim) % seq, bh = idx / (dim * seq);
    store_f32(dq.slice(bh / heads, bh % heads), i * dq.ss + d, acc[idx] * scale);
  }
}

// ---- launcher -------------------------------------------------------------------------

template <typename T, int D>
void launch_bwd(const CausalAttentionParams& p, const CausalAttentionGrads& g, cudaStream_t st) {
  using causal_attention_detail::make_view;
  using TrKv = BwdKvTraits<D>;
  using TrQ = BwdQTraits<D>;
  const CausalAttentionShape& s = p.shape;
  const bool atomic = g.mode == CausalBwdMode::kAtomic;
  const BwdArgs<T> a{make_view<const T>(p.q, p.q_strides, s),     make_view<const T>(p.k, p.k_strides, s),
                     make_view<const T>(p.v, p.v_strides, s),     make_view<const T>(g.d_o, g.d_o_strides, s),
                     make_view<T>(g.dq, g.dq_strides, s),         make_view<T>(g.dk, g.dk_strides, s),
                     make_view<T>(g.dv, g.dv_strides, s),         p.lse,
                     g.row_dot,                                   g.dq_accum,
                     s.heads,                                     s.seq,
                     1.f / std::sqrt(static_cast<float>(D)),      kLog2e / std::sqrt(static_cast<float>(D))};
  const auto blocks = static_cast<unsigned>(s.batch * s.heads * ((s.seq + kKeyTile - 1) / kKeyTile));  // validated
  if (atomic) {
    CUDA_CHECK(cudaMemsetAsync(g.dq_accum, 0, sizeof(float) * static_cast<std::size_t>(s.elements()), st));
    const auto kv = causal_bwd_kv_tc<T, D, true>;
    allow_smem(reinterpret_cast<const void*>(kv), TrKv::kBytes);
    kv<<<blocks, TrKv::kThreads, TrKv::kBytes, st>>>(a);
    CUDA_CHECK_LAUNCH();
    const std::int64_t total = s.elements();
    const auto grid = static_cast<unsigned>(std::min<std::int64_t>((total + 255) / 256, 1 << 20));
    dq_from_accum<T><<<grid, 256, 0, st>>>(g.dq_accum, a.dq, s.heads, s.seq, D, a.scale, total);
    CUDA_CHECK_LAUNCH();
  } else {
    const auto kv = causal_bwd_kv_tc<T, D, false>;
    allow_smem(reinterpret_cast<const void*>(kv), TrKv::kBytes);
    kv<<<blocks, TrKv::kThreads, TrKv::kBytes, st>>>(a);
    CUDA_CHECK_LAUNCH();
    const auto qk = causal_bwd_q_tc<T, D>;
    allow_smem(reinterpret_cast<const void*>(qk), TrQ::kBytes);
    qk<<<blocks, TrQ::kThreads, TrQ::kBytes, st>>>(a);
    CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

void causal_attention_bwd_tc(const CausalAttentionParams& p, const CausalAttentionGrads& g, cudaStream_t stream) {
  causal_attention_detail::by_dtype</*kAllowFp32=*/false>(p.io, [&](auto t) {
    using T = decltype(t);
    causal_attention_detail::by_head_dim(p.shape.head_dim, [&](auto d) { launch_bwd<T, decltype(d)::value>(p, g, stream); });
  });
}

}  // namespace seqscale
