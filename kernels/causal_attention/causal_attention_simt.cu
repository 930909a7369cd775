// Status: compiles for sm_80/sm_90; not yet run on a GPU (its tests skip without one).
// causal_attention on SIMT cores: one thread per query row (forward, dQ) or key row (dK,
// dV), fp32 math, K/V (or Q/dO) tiles of 32 rows staged in shared memory as fp32. The
// independent check of the tensor-core kernels on the device, and the fp32 path; it does
// no tensor-core work, keeps rows of D floats in registers (local memory at D = 128) and
// is slow by design. Deterministic: every sum runs in a fixed order, no atomics.
// Forward: online softmax in base 2 over keys j <= i, O = acc / l, lse = (m + log2 l) ln 2.
// Backward (D_i from causal_attention_row_dot): P_ij = exp2(s_ij log2 e - lse_i log2 e),
//   dS_ij = P_ij (dO_i . V_j - D_i); dV_j = sum_{i >= j} P_ij dO_i, dK_j = sum_{i >= j} dS_ij Q_i / sqrt(D),
//   dQ_i = sum_{j <= i} dS_ij K_j / sqrt(D).
#include <cmath>

#include "kernels/causal_attention/causal_attention.cuh"
#include "kernels/causal_attention/causal_attention_view.cuh"
#include "common/check_cuda.h"
#include "kernels/common/convert.cuh"

namespace seqscale {
namespace {

using causal_attention_detail::make_view;
using causal_attention_detail::View;

constexpr int kRows = 64;  // threads per block, one row each
constexpr int kTile = 32;  // rows staged per step
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// Rows [r0, r0 + kTile) of a slice into shared fp32 (zero past seq).
template <typename T, int D>
__device__ void stage(float (*dst)[D], const T* slice, std::int64_t row_stride, std::int64_t r0, std::int64_t seq) {
  for (int e = static_cast<int>(threadIdx.x); e < kTile * D; e += kRows) {
    const int r = e / D, d = e % D;
    const std::int64_t row = r0 + r;
    dst[r][d] = row < seq ? load_f32(slice, row * row_stride + d) : 0.f;
  }
}

// Block -> (b, h, tile of kRows rows); `reverse` runs a head's last tiles first.
struct Tile {
  std::int64_t b, h, bh, r0;
};
__device__ Tile tile_of(std::int64_t heads, std::int64_t seq, bool reverse) {
  const std::int64_t n = (seq + kRows - 1) / kRows, block = blockIdx.x, bh = block / n;
  const std::int64_t t = reverse ? n - 1 - block % n : block % n;
  return {bh / heads, bh % heads, bh, t * kRows};
}

template <typename T, int D>
__global__ void __launch_bounds__(kRows) causal_fwd_simt(View<const T> q, View<const T> k, View<const T> v, View<T> o,
                                                         float* __restrict__ lse, std::int64_t heads, std::int64_t seq,
                                                         float scale_log2) {
  __shared__ float ks[kTile][D];
  __shared__ float vs[kTile][D];
  const Tile tl = tile_of(heads, seq, /*reverse=*/true);
  const std::int64_t i = tl.r0 + threadIdx.x;
  const bool active = i < seq;
  const T* qsl = q.slice(tl.b, tl.h);
  float qr[D], acc[D];
#pragma unroll
  for (int d = 0; d < D; ++d) {
    qr[d] = active ? load_f32(qsl, i * q.ss + d) * scale_log2 : 0.f;
    acc[d] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  const std::int64_t keys_end = seq < tl.r0 + kRows ? seq : tl.r0 + kRows;
  for (std::int64_t j0 = 0; j0 < keys_end; j0 += kTile) {
    stage<T, D>(ks, k.slice(tl.b, tl.h), k.ss, j0, seq);
    stage<T, D>(vs, v.slice(tl.b, tl.h), v.ss, j0, seq);
    __syncthreads();
    if (active) {
      const std::int64_t last = i - j0 + 1;  // keys j0 .. i of this tile (none when i < j0)
      const int n = static_cast<int>(last < kTile ? last : kTile);
      for (int jj = 0; jj < n; ++jj) {
        float s = 0.f;
#pragma unroll
        for (int d = 0; d < D; ++d) s += qr[d] * ks[jj][d];
        const float m_new = fmaxf(m, s);
        const float corr = exp2f(m - m_new);  // 0 at the first key (m = -inf)
        const float p = exp2f(s - m_new);
        l = l * corr + p;
#pragma unroll
        for (int d = 0; d < D; ++d) acc[d] = acc[d] * corr + p * vs[jj][d];
        m = m_new;
      }
    }
    __syncthreads();
  }
  if (!active) return;
  T* orow = o.slice(tl.b, tl.h) + i * o.ss;
#pragma unroll
  for (int d = 0; d < D; ++d) store_f32(orow, d, acc[d] / l);
  lse[tl.bh * seq + i] = (m + log2f(l)) * kLn2;
}

// dK, dV: thread = key row j, over the query rows i >= j.
template <typename T, int D>
__global__ void __launch_bounds__(kRows) causal_bwd_kv_simt(View<const T> q, View<const T> k, View<const T> v,
                                                            View<const T> d_o, const float* __restrict__ lse,
                                                            const float* __restrict__ row_dot, View<T> dk, View<T> dv,
                                                            std::int64_t heads, std::int64_t seq, float scale) {
  __shared__ float qs[kTile][D];
  __shared__ float dos[kTile][D];
  __shared__ float lse_s[kTile];
  __shared__ float dot_s[kTile];
  const Tile tl = tile_of(heads, seq, /*reverse=*/false);  // first key tiles see the most queries
  const std::int64_t j = tl.r0 + threadIdx.x;
  const bool active = j < seq;
  const T* ksl = k.slice(tl.b, tl.h);
  const T* vsl = v.slice(tl.b, tl.h);
  float kr[D], vr[D], dk_acc[D], dv_acc[D];
#pragma unroll
  for (int d = 0; d < D; ++d) {
    kr[d] = active ? load_f32(ksl, j * k.ss + d) : 0.f;
    vr[d] = active ? load_f32(vsl, j * v.ss + d) : 0.f;
    dk_acc[d] = dv_acc[d] = 0.f;
  }
  const float scale_log2 = scale * kLog2e;
  for (std::int64_t i0 = tl.r0; i0 < seq; i0 += kTile) {
    stage<T, D>(qs, q.slice(tl.b, tl.h), q.ss, i0, seq);
    stage<T, D>(dos, d_o.slice(tl.b, tl.h), d_o.ss, i0, seq);
    for (int r = static_cast<int>(threadIdx.x); r < kTile; r += kRows) {
      const bool in = i0 + r < seq;
      lse_s[r] = in ? lse[tl.bh * seq + i0 + r] * kLog2e : 0.f;
      dot_s[r] = in ? row_dot[tl.bh * seq + i0 + r] : 0.f;
    }
    __syncthreads();
    if (active) {
      const int n = static_cast<int>(seq - i0 < kTile ? seq - i0 : kTile);
      for (int ii = 0; ii < n; ++ii) {
        if (i0 + ii < j) continue;  // query before the key: masked
        float s = 0.f, dp = 0.f;
#pragma unroll
        for (int d = 0; d < D; ++d) {
          s += qs[ii][d] * kr[d];
          dp += dos[ii][d] * vr[d];
        }
        const float p = exp2f(s * scale_log2 - lse_s[ii]);
        const float ds = p * (dp - dot_s[ii]);
#pragma unroll
        for (int d = 0; d < D; ++d) {
          dv_acc[d] += p * dos[ii][d];
          dk_acc[d] += ds * qs[ii][d];
        }
      }
    }
    __syncthreads();
  }
  if (!active) return;
  T* dkrow = dk.slice(tl.b, tl.h) + j * dk.ss;
  T* dvrow = dv.slice(tl.b, tl.h) + j * dv.ss;
#pragma unroll
  for (int d = 0; d < D; ++d) {
    store_f32(dkrow, d, dk_acc[d] * scale);
    store_f32(dvrow, d, dv_acc[d]);
  }
}

// dQ: thread = query row i, over the keys j <= i.
template <typename T, int D>
__global__ void __launch_bounds__(kRows) causal_bwd_q_simt(View<const T> q, View<const T> k, View<const T> v,
                                                           View<const T> d_o, const float* __restrict__ lse,
                                                           const float* __restrict__ row_dot, View<T> dq,
                                                           std::int64_t heads, std::int64_t seq, float scale) {
  __shared__ float ks[kTile][D];
  __shared__ float vs[kTile][D];
  const Tile tl = tile_of(heads, seq, /*reverse=*/true);
  const std::int64_t i = tl.r0 + threadIdx.x;
  const bool active = i < seq;
  const T* qsl = q.slice(tl.b, tl.h);
  const T* dosl = d_o.slice(tl.b, tl.h);
  float qr[D], dor[D], acc[D];
#pragma unroll
  for (int d = 0; d < D; ++d) {
    qr[d] = active ? load_f32(qsl, i * q.ss + d) : 0.f;
    dor[d] = active ? load_f32(dosl, i * d_o.ss + d) : 0.f;
    acc[d] = 0.f;
  }
  const float scale_log2 = scale * kLog2e;
  const float lse2 = active ? lse[tl.bh * seq + i] * kLog2e : 0.f;
  const float row_d = active ? row_dot[tl.bh * seq + i] : 0.f;
  const std::int64_t keys_end = seq < tl.r0 + kRows ? seq : tl.r0 + kRows;
  for (std::int64_t j0 = 0; j0 < keys_end; j0 += kTile) {
    stage<T, D>(ks, k.slice(tl.b, tl.h), k.ss, j0, seq);
    stage<T, D>(vs, v.slice(tl.b, tl.h), v.ss, j0, seq);
    __syncthreads();
    if (active) {
      const std::int64_t last = i - j0 + 1;
      const int n = static_cast<int>(last < kTile ? last : kTile);
      for (int jj = 0; jj < n; ++jj) {
        float s = 0.f, dp = 0.f;
#pragma unroll
        for (int d = 0; d < D; ++d) {
          s += qr[d] * ks[jj][d];
          dp += dor[d] * vs[jj][d];
        }
        const float p = exp2f(s * scale_log2 - lse2);
        const float ds = p * (dp - row_d);
#pragma unroll
        for (int d = 0; d < D; ++d) acc[d] += ds * ks[jj][d];
      }
    }
    __syncthreads();
  }
  if (!active) return;
  T* dqrow = dq.slice(tl.b, tl.h) + i * dq.ss;
#pragma unroll
  for (int d = 0; d < D; ++d) store_f32(dqrow, d, acc[d] * scale);
}

unsigned blocks_of(const CausalAttentionShape& s) {
  return static_cast<unsigned>(s.batch * s.heads * ((s.seq + kRows - 1) / kRows));  // validated <= 2^31 - 1
}

template <typename T, int D>
void launch_fwd(const CausalAttentionParams& p, cudaStream_t st) {
  const CausalAttentionShape& s = p.shape;
  causal_fwd_simt<T, D><<<blocks_of(s), kRows, 0, st>>>(
      make_view<const T>(p.q, p.q_strides, s), make_view<const T>(p.k, p.k_strides, s),
      make_view<const T>(p.v, p.v_strides, s), make_view<T>(p.o, p.o_strides, s), p.lse, s.heads, s.seq,
      kLog2e / std::sqrt(static_cast<float>(D)));
  CUDA_CHECK_LAUNCH();
}

template <typename T, int D>
void launch_bwd(const CausalAttentionParams& p, const CausalAttentionGrads& g, cudaStream_t st) {
  const CausalAttentionShape& s = p.shape;
  const auto q = make_view<const T>(p.q, p.q_strides, s);
  const auto k = make_view<const T>(p.k, p.k_strides, s);
  const auto v = make_view<const T>(p.v, p.v_strides, s);
  const auto d_o = make_view<const T>(g.d_o, g.d_o_strides, s);
  const float scale = 1.f / std::sqrt(static_cast<float>(D));
  causal_bwd_kv_simt<T, D><<<blocks_of(s), kRows, 0, st>>>(q, k, v, d_o, p.lse, g.row_dot,
                                                           make_view<T>(g.dk, g.dk_strides, s),
                                                           make_view<T>(g.dv, g.dv_strides, s), s.heads, s.seq, scale);
  CUDA_CHECK_LAUNCH();
  causal_bwd_q_simt<T, D><<<blocks_of(s), kRows, 0, st>>>(q, k, v, d_o, p.lse, g.row_dot,
                                                          make_view<T>(g.dq, g.dq_strides, s), s.heads, s.seq, scale);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void causal_attention_fwd_simt(const CausalAttentionParams& p, cudaStream_t stream) {
  causal_attention_detail::by_dtype</*kAllowFp32=*/true>(p.io, [&](auto t) {
    using T = decltype(t);
    causal_attention_detail::by_head_dim(p.shape.head_dim, [&](auto d) { launch_fwd<T, decltype(d)::value>(p, stream); });
  });
}

void causal_attention_bwd_simt(const CausalAttentionParams& p, const CausalAttentionGrads& g, cudaStream_t stream) {
  causal_attention_detail::by_dtype</*kAllowFp32=*/true>(p.io, [&](auto t) {
    using T = decltype(t);
    causal_attention_detail::by_head_dim(p.shape.head_dim, [&](auto d) { launch_bwd<T, decltype(d)::value>(p, g, stream); });
  });
}

}  // namespace seqscale
