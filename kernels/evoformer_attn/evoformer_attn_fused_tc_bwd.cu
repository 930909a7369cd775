// Status: compiles for sm_80/sm_90; not yet run on a GPU (its tests skip without one).
// evoformer_attn_fused backward on tensor cores (fp16 / bf16, head sizes 16..128).
// Two kernels, the FlashAttention-2 split: (1) per key tile, dV += P^T dO and
// dK += dS^T Q / sqrt(D) over all query tiles (plus d(pair) by fp32 atomics and the
// d(mask) partial sums of the tile's keys); (2) per query tile, dQ += dS K / sqrt(D) over
// all key tiles. P is recomputed from the saved log-sum-exp; D_i = dO_i . O_i comes in
// (row_dot). P^T and dS^T enter the WMMA products in the I/O dtype, as FlashAttention does.
#include <cmath>
#include <stdexcept>
#include <string>

#include "kernels/common/convert.cuh"
#include "kernels/evoformer_attn/evoformer_attn.cuh"
#include "kernels/evoformer_attn/evoformer_attn_fused_tc.cuh"

namespace seqscale {
namespace {

using namespace evoformer_tc;  // NOLINT(google-build-using-namespace): this file's own kit

template <typename T, int D, int KW>  // KW warps, 16 keys each
struct KvLayout {
  static constexpr int kKeysTile = 16 * KW;
  static constexpr int kQ = 64;  // query rows per inner tile
  static constexpr int kLd = D + 16, kSld = kQ + 4, kPld = kQ + 16, kOld = D + 4;
  static constexpr std::size_t kK = 0;
  static constexpr std::size_t kV = kK + sizeof(T) * kKeysTile * kLd;
  static constexpr std::size_t kQs = kV + sizeof(T) * kKeysTile * kLd;
  static constexpr std::size_t kDo = kQs + sizeof(T) * kQ * kLd;
  static constexpr std::size_t kS = kDo + sizeof(T) * kQ * kLd;        // S^T, then dP^T (fp32)
  static constexpr std::size_t kP = kS + sizeof(float) * kKeysTile * kSld;   // P^T (T)
  static constexpr std::size_t kDs = kP + sizeof(T) * kKeysTile * kPld;      // dS^T (T)
  static constexpr std::size_t kDk = kDs + sizeof(T) * kKeysTile * kPld;     // dK accumulator
  static constexpr std::size_t kDv = kDk + sizeof(float) * kKeysTile * kOld; // dV accumulator
  static constexpr std::size_t kLse = kDv + sizeof(float) * kKeysTile * kOld;
  static constexpr std::size_t kDot = kLse + sizeof(float) * kQ;
  static constexpr std::size_t kBytes = kDot + sizeof(float) * kQ;
};

template <typename T, int D, int KW>
__global__ void __launch_bounds__(32 * KW) fused_bwd_kv_tc(
    const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, const T* __restrict__ mask,
    const T* __restrict__ pair, const T* __restrict__ d_o, const float* __restrict__ lse,
    const float* __restrict__ row_dot, T* __restrict__ dk, T* __restrict__ dv, float* __restrict__ d_pair,
    float* __restrict__ d_mask_partial, TcGeo g, float scale, bool pair_atomic) {
  using L = KvLayout<T, D, KW>;
  extern __shared__ __align__(128) unsigned char smem[];
  T* ks = reinterpret_cast<T*>(smem + L::kK);
  T* vs = reinterpret_cast<T*>(smem + L::kV);
  T* qs = reinterpret_cast<T*>(smem + L::kQs);
  T* dos = reinterpret_cast<T*>(smem + L::kDo);
  float* st = reinterpret_cast<float*>(smem + L::kS);
  T* pt = reinterpret_cast<T*>(smem + L::kP);
  T* dst = reinterpret_cast<T*>(smem + L::kDs);
  float* dks = reinterpret_cast<float*>(smem + L::kDk);
  float* dvs = reinterpret_cast<float*>(smem + L::kDv);
  float* lse_s = reinterpret_cast<float*>(smem + L::kLse);
  float* dot_s = reinterpret_cast<float*>(smem + L::kDot);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const std::int64_t bn = blockIdx.z, h = blockIdx.y, j0 = static_cast<std::int64_t>(blockIdx.x) * L::kKeysTile;
  load_rows<T, D>(ks, L::kLd, k, g, bn, h, j0, L::kKeysTile);
  load_rows<T, D>(vs, L::kLd, v, g, bn, h, j0, L::kKeysTile);
  for (int e = threadIdx.x; e < L::kKeysTile * D; e += blockDim.x) {
    dks[(e / D) * L::kOld + e % D] = 0.f;
    dvs[(e / D) * L::kOld + e % D] = 0.f;
  }
  float dmask[16];
#pragma unroll
  for (int r = 0; r < 16; ++r) dmask[r] = 0.f;
  const std::int64_t pair_base = ((bn / g.n) * g.heads + h) * g.len;  // pair[b, h, i, j] = pair[(pair_base + i) * len + j]

  for (std::int64_t i0 = 0; i0 < g.len; i0 += L::kQ) {
    __syncthreads();
    load_rows<T, D>(qs, L::kLd, q, g, bn, h, i0, L::kQ);
    load_rows<T, D>(dos, L::kLd, d_o, g, bn, h, i0, L::kQ);
    for (int r = threadIdx.x; r < L::kQ; r += blockDim.x) {
      const std::int64_t i = i0 + r;
      lse_s[r] = i < g.len ? lse[(bn * g.heads + h) * g.len + i] : -INFINITY;
      dot_s[r] = i < g.len ? row_dot[(bn * g.heads + h) * g.len + i] : 0.f;
    }
    __syncthreads();
    // S^T_w = K_w Q^T (16 keys x 64 queries).
    warp_mma_abt<T, D, L::kQ>(ks + warp * 16 * L::kLd, L::kLd, qs, L::kLd, st + warp * 16 * L::kSld, L::kSld);
    __syncwarp();
    // P^T = exp(S^T / sqrt(D) + bias^T - lse).
#pragma unroll
    for (int r = 0; r < 16; ++r) {
      const int row = warp * 16 + r;
      const std::int64_t j = j0 + row;
      for (int c = lane; c < L::kQ; c += 32) {
        const std::int64_t i = i0 + c;
        float p = 0.f;
        if (j < g.len && i < g.len && lse_s[c] != -INFINITY) {
          float sv = st[row * L::kSld + c] * scale;
          if (mask) sv += load_f32(mask, bn * g.len + j);
          if (pair) sv += load_f32(pair, (pair_base + i) * g.len + j);
          p = sv == -INFINITY ? 0.f : __expf(sv - lse_s[c]);
        }
        pt[row * L::kPld + c] = T(p);
      }
    }
    __syncwarp();
    // dV_w += P^T_w dO.
    warp_mma_ab_acc<T, L::kQ, D>(pt + warp * 16 * L::kPld, L::kPld, dos, L::kLd, dvs + warp * 16 * L::kOld, L::kOld);
    // dP^T_w = V_w dO^T (into the S^T buffer: S^T is no longer needed).
    warp_mma_abt<T, D, L::kQ>(vs + warp * 16 * L::kLd, L::kLd, dos, L::kLd, st + warp * 16 * L::kSld, L::kSld);
    __syncwarp();
    // dS^T = P^T (dP^T - D_i); d(pair) and the d(mask) partials of the tile's keys.
#pragma unroll
    for (int r = 0; r < 16; ++r) {
      const int row = warp * 16 + r;
      const std::int64_t j = j0 + row;
      float row_sum = 0.f;
      for (int c = lane; c < L::kQ; c += 32) {
        const std::int64_t i = i0 + c;
        const float p = static_cast<float>(pt[row * L::kPld + c]);
        const float ds = p * (st[row * L::kSld + c] - dot_s[c]);
        dst[row * L::kPld + c] = T(ds);
        if (p != 0.f) {
          row_sum += ds;
          if (d_pair && pair_atomic) atomicAdd(d_pair + (pair_base + i) * g.len + j, ds);
        }
      }
      row_sum = warp_sum(row_sum);
      dmask[r] += row_sum;
    }
    __syncwarp();
    // dK_w += dS^T_w Q (scaled at the end).
    warp_mma_ab_acc<T, L::kQ, D>(dst + warp * 16 * L::kPld, L::kPld, qs, L::kLd, dks + warp * 16 * L::kOld, L::kOld);
  }
  __syncwarp();
#pragma unroll
  for (int r = 0; r < 16; ++r) {
    const int row = warp * 16 + r;
    const std::int64_t j = j0 + row;
    if (j >= g.len) continue;
    for (int d = lane; d < D; d += 32) {
      store_f32(dk, g.qkv<D>(bn, j, h) + d, dks[row * L::kOld + d] * scale);
      store_f32(dv, g.qkv<D>(bn, j, h) + d, dvs[row * L::kOld + d]);
    }
    if (d_mask_partial && lane == 0) d_mask_partial[(bn * g.heads + h) * g.len + j] = dmask[r];
  }
}

template <typename T, int D>
struct QLayout {
  static constexpr int kLd = D + 16, kSld = kKeys + 4, kPld = kKeys + 16, kOld = D + 4;
  static constexpr std::size_t kQs = 0;
  static constexpr std::size_t kDo = kQs + sizeof(T) * kRows * kLd;
  static constexpr std::size_t kK = kDo + sizeof(T) * kRows * kLd;
  static constexpr std::size_t kV = kK + sizeof(T) * kKeys * kLd;
  static constexpr std::size_t kS = kV + sizeof(T) * kKeys * kLd;
  static constexpr std::size_t kDp = kS + sizeof(float) * kRows * kSld;
  static constexpr std::size_t kDs = kDp + sizeof(float) * kRows * kSld;
  static constexpr std::size_t kDq = kDs + sizeof(T) * kRows * kPld;
  static constexpr std::size_t kBytes = kDq + sizeof(float) * kRows * kOld;
};

template <typename T, int D>
__global__ void __launch_bounds__(32 * kWarps) fused_bwd_q_tc(
    const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, const T* __restrict__ mask,
    const T* __restrict__ pair, const T* __restrict__ d_o, const float* __restrict__ lse,
    const float* __restrict__ row_dot, T* __restrict__ dq, TcGeo g, float scale) {
  using L = QLayout<T, D>;
  extern __shared__ __align__(128) unsigned char smem[];
  T* qs = reinterpret_cast<T*>(smem + L::kQs);
  T* dos = reinterpret_cast<T*>(smem + L::kDo);
  T* ks = reinterpret_cast<T*>(smem + L::kK);
  T* vs = reinterpret_cast<T*>(smem + L::kV);
  float* ss = reinterpret_cast<float*>(smem + L::kS);
  float* dps = reinterpret_cast<float*>(smem + L::kDp);
  T* dss = reinterpret_cast<T*>(smem + L::kDs);
  float* dqs = reinterpret_cast<float*>(smem + L::kDq);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const std::int64_t bn = blockIdx.z, h = blockIdx.y, i0 = static_cast<std::int64_t>(blockIdx.x) * kRows;
  load_rows<T, D>(qs, L::kLd, q, g, bn, h, i0, kRows);
  load_rows<T, D>(dos, L::kLd, d_o, g, bn, h, i0, kRows);
  for (int e = threadIdx.x; e < kRows * D; e += blockDim.x) dqs[(e / D) * L::kOld + e % D] = 0.f;
  float row_lse[16], row_d[16];
#pragma unroll
  for (int r = 0; r < 16; ++r) {
    const std::int64_t i = i0 + warp * 16 + r;
    row_lse[r] = i < g.len ? lse[(bn * g.heads + h) * g.len + i] : -INFINITY;
    row_d[r] = i < g.len ? row_dot[(bn * g.heads + h) * g.len + i] : 0.f;
  }
  const std::int64_t pair_base = ((bn / g.n) * g.heads + h) * g.len;

  for (std::int64_t j0 = 0; j0 < g.len; j0 += kKeys) {
    __syncthreads();
    load_rows<T, D>(ks, L::kLd, k, g, bn, h, j0, kKeys);
    load_rows<T, D>(vs, L::kLd, v, g, bn, h, j0, kKeys);
    __syncthreads();
    // S_w = Q_w K^T and dP_w = dO_w V^T (16 queries x 64 keys each).
    warp_mma_abt<T, D, kKeys>(qs + warp * 16 * L::kLd, L::kLd, ks, L::kLd, ss + warp * 16 * L::kSld, L::kSld);
    warp_mma_abt<T, D, kKeys>(dos + warp * 16 * L::kLd, L::kLd, vs, L::kLd, dps + warp * 16 * L::kSld, L::kSld);
    __syncwarp();
#pragma unroll
    for (int r = 0; r < 16; ++r) {
      const int row = warp * 16 + r;
      const std::int64_t i = i0 + row;
      for (int c = lane; c < kKeys; c += 32) {
        const std::int64_t j = j0 + c;
        float ds = 0.f;
        if (i < g.len && j < g.len && row_lse[r] != -INFINITY) {
          float sv = ss[row * L::kSld + c] * scale;
          if (mask) sv += load_f32(mask, bn * g.len + j);
          if (pair) sv += load_f32(pair, (pair_base + i) * g.len + j);
          const float p = sv == -INFINITY ? 0.f : __expf(sv - row_lse[r]);
          ds = p * (dps[row * L::kSld + c] - row_d[r]);
        }
        dss[row * L::kPld + c] = T(ds);
      }
    }
    __syncwarp();
    // dQ_w += dS_w K.
    warp_mma_ab_acc<T, kKeys, D>(dss + warp * 16 * L::kPld, L::kPld, ks, L::kLd, dqs + warp * 16 * L::kOld, L::kOld);
  }
  __syncwarp();
  for (int r = 0; r < 16; ++r) {
    const int row = warp * 16 + r;
    const std::int64_t i = i0 + row;
    if (i >= g.len) continue;
    for (int d = lane; d < D; d += 32) store_f32(dq, g.qkv<D>(bn, i, h) + d, dqs[row * L::kOld + d] * scale);
  }
}

template <typename T, int D>
void launch_bwd(const EvoformerAttnFusedParams& p, const EvoformerAttnFusedGrads& gr, bool pair_atomic, cudaStream_t st) {
  const auto& a = p.a;
  // 4 warps (64 keys) per block up to D = 64; 2 warps at D = 128 so sm_80's 163 KB holds it.
  constexpr int KW = D >= 128 ? 2 : 4;
  using LK = KvLayout<T, D, KW>;
  using LQ = QLayout<T, D>;
  allow_smem(reinterpret_cast<const void*>(fused_bwd_kv_tc<T, D, KW>), LK::kBytes);
  allow_smem(reinterpret_cast<const void*>(fused_bwd_q_tc<T, D>), LQ::kBytes);
  const TcGeo g{a.shape.n, a.shape.len, a.shape.heads};
  const float scale = 1.f / std::sqrt(static_cast<float>(D));
  const auto* q = static_cast<const T*>(a.q);
  const auto* k = static_cast<const T*>(a.k);
  const auto* v = static_cast<const T*>(a.v);
  const auto* mask = static_cast<const T*>(a.mask_bias);
  const auto* pair = static_cast<const T*>(a.pair_bias);
  const auto* d_o = static_cast<const T*>(gr.d_o);
  const dim3 grid_kv(static_cast<unsigned>((a.shape.len + LK::kKeysTile - 1) / LK::kKeysTile),
                     static_cast<unsigned>(a.shape.heads), static_cast<unsigned>(a.shape.rows()));
  fused_bwd_kv_tc<T, D, KW><<<grid_kv, 32 * KW, LK::kBytes, st>>>(
      q, k, v, mask, pair, d_o, p.lse, gr.row_dot, static_cast<T*>(gr.dk), static_cast<T*>(gr.dv), gr.d_pair,
      gr.d_mask ? gr.d_mask_partial : nullptr, g, scale, pair_atomic);
  CUDA_CHECK_LAUNCH();
  const dim3 grid_q(static_cast<unsigned>((a.shape.len + kRows - 1) / kRows), static_cast<unsigned>(a.shape.heads),
                    static_cast<unsigned>(a.shape.rows()));
  fused_bwd_q_tc<T, D><<<grid_q, 32 * kWarps, LQ::kBytes, st>>>(q, k, v, mask, pair, d_o, p.lse, gr.row_dot,
                                                                 static_cast<T*>(gr.dq), g, scale);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void bwd_by_dim(const EvoformerAttnFusedParams& p, const EvoformerAttnFusedGrads& gr, bool pair_atomic, cudaStream_t st) {
  switch (p.a.shape.head_dim) {
    case 16: return launch_bwd<T, 16>(p, gr, pair_atomic, st);
    case 32: return launch_bwd<T, 32>(p, gr, pair_atomic, st);
    case 64: return launch_bwd<T, 64>(p, gr, pair_atomic, st);
    case 128: return launch_bwd<T, 128>(p, gr, pair_atomic, st);
    default: throw std::invalid_argument("evoformer_attn_fused tensor-core backward: head_dim must be 16, 32, 64 or 128");
  }
}

}  // namespace

void evoformer_attn_fused_bwd_tc(const EvoformerAttnFusedParams& p, const EvoformerAttnFusedGrads& g, bool pair_atomic,
                                 cudaStream_t stream) {
  if (!evoformer_attn_fused_tc_supported(p.a.io, p.a.shape.head_dim)) {
    throw std::invalid_argument("evoformer_attn_fused tensor-core backward: needs fp16 or bf16 and head_dim 16..128");
  }
  if (p.a.shape.rows() > 65535 || p.a.shape.heads > 65535) {
    throw std::invalid_argument("evoformer_attn_fused: B*N and H must be < 65536");
  }
  if (p.a.io == DType::kFp16) {
    bwd_by_dim<__half>(p, g, pair_atomic, stream);
  } else {
    bwd_by_dim<__nv_bfloat16>(p, g, pair_atomic, stream);
  }
}

}  // namespace seqscale
