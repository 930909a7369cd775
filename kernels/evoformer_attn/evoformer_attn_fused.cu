// evoformer_attn_fused: exact attention with mask and pair bias, without materialising
// the [B, N, H, L, L] logits (the DS4Sci EvoformerAttention design, our own code).
// The forward for fp16/bf16 at head sizes 16..128 runs on tensor cores
// (evoformer_attn_fused_tc.cu); this file holds the SIMT kernels:
// v1: SIMT, fp32 math, one thread per query row (forward, dQ) or key row (dK,
//    dV); K/V (or Q/dO) tiles of kTile rows staged in shared memory as fp32. Correctness
//    first: the pair-bias reads are strided across a warp and nothing uses tensor cores.
//    A v2 would hold Q/K/V tiles in registers as mma.sync (sm_80) / wgmma (sm_90)
//    fragments, stage the pair-bias tile through shared memory coalesced, and pipeline the
//    tiles with cp.async / TMA, as FlashAttention-2/3 do.
// Forward: online softmax (running max m, sum l, rescaled accumulator), O = acc / l,
//    lse = m + log l; a row with every logit -inf keeps l = 0 and writes O = 0, lse = -inf.
// Backward: D_i = dO_i . O_i; P_ij = exp(s_ij - lse_i); dS_ij = P_ij (dO_i . V_j - D_i);
//    dV_j = sum_i P_ij dO_i; dK_j = sum_i dS_ij Q_i / sqrt(D); dQ_i = sum_j dS_ij K_j / sqrt(D);
//    d(pair)_bhij = sum_n dS; d(mask)_bnj = sum_{h,i} dS.
#include "kernels/evoformer_attn/evoformer_attn.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "common/check_cuda.h"
#include "kernels/common/convert.cuh"

namespace seqscale {
namespace {

constexpr int kTile = 32;     // rows of K/V (or Q/dO) staged per step
constexpr int kThreads = 64;  // query (or key) rows per block

template <typename T> __device__ __forceinline__ float ld(const T* p, std::int64_t i) { return load_f32(p, i); }
template <typename T> __device__ __forceinline__ void st(T* p, std::int64_t i, float v) { store_f32(p, i, v); }

struct Geo {
  std::int64_t batch, n, len, heads;
  // Element (bn, l, h, d) of a [B, N, L, H, D] tensor, D = template parameter.
  template <int D>
  __device__ std::int64_t qkv(std::int64_t bn, std::int64_t l, std::int64_t h) const {
    return ((bn * len + l) * heads + h) * D;
  }
  __device__ std::int64_t pair(std::int64_t bn, std::int64_t h, std::int64_t i, std::int64_t j) const {
    return (((bn / n) * heads + h) * len + i) * len + j;
  }
  __device__ std::int64_t row(std::int64_t bn, std::int64_t h, std::int64_t i) const { return (bn * heads + h) * len + i; }
};

// Stage rows [r0, r0 + kTile) of a [B, N, L, H, D] tensor for (bn, h) into shared memory.
template <typename T, int D>
__device__ void stage(float (*dst)[D], const T* src, const Geo& g, std::int64_t bn, std::int64_t h, std::int64_t r0) {
  for (int e = threadIdx.x; e < kTile * D; e += blockDim.x) {
    const int r = e / D, d = e % D;
    const std::int64_t l = r0 + r;
    dst[r][d] = l < g.len ? ld(src, g.qkv<D>(bn, l, h) + d) : 0.f;
  }
}

template <typename T>
__device__ __forceinline__ float bias_at(const T* mask, const T* pair, const Geo& g, std::int64_t bn, std::int64_t h,
                                         std::int64_t i, std::int64_t j) {
  float b = 0.f;
  if (mask) b += ld(mask, bn * g.len + j);
  if (pair) b += ld(pair, g.pair(bn, h, i, j));
  return b;
}

// grid (ceil(L / kThreads), H, B*N); thread = query row.
template <typename T, int D>
__global__ void __launch_bounds__(kThreads) fused_fwd(const T* __restrict__ q, const T* __restrict__ k,
                                                      const T* __restrict__ v, const T* __restrict__ mask,
                                                      const T* __restrict__ pair, T* __restrict__ o,
                                                      float* __restrict__ lse, Geo g, float scale) {
  __shared__ float ks[kTile][D];
  __shared__ float vs[kTile][D];
  const std::int64_t bn = blockIdx.z, h = blockIdx.y;
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  const bool active = i < g.len;
  float qr[D], acc[D];
#pragma unroll
  for (int d = 0; d < D; ++d) {
    qr[d] = active ? scale * ld(q, g.qkv<D>(bn, i, h) + d) : 0.f;
    acc[d] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  for (std::int64_t j0 = 0; j0 < g.len; j0 += kTile) {
    stage<T, D>(ks, k, g, bn, h, j0);
    stage<T, D>(vs, v, g, bn, h, j0);
    __syncthreads();
    if (active) {
      const int tile = static_cast<int>(g.len - j0 < kTile ? g.len - j0 : kTile);
      for (int jj = 0; jj < tile; ++jj) {
        float s = 0.f;
#pragma unroll
        for (int d = 0; d < D; ++d) s += qr[d] * ks[jj][d];
        s += bias_at(mask, pair, g, bn, h, i, j0 + jj);
        if (s == -INFINITY) continue;
        const float m_new = fmaxf(m, s);
        const float corr = m == -INFINITY ? 0.f : __expf(m - m_new);
        const float p = __expf(s - m_new);
        l = l * corr + p;
#pragma unroll
        for (int d = 0; d < D; ++d) acc[d] = acc[d] * corr + p * vs[jj][d];
        m = m_new;
      }
    }
    __syncthreads();
  }
  if (!active) return;
  const float inv = l > 0.f ? 1.f / l : 0.f;
#pragma unroll
  for (int d = 0; d < D; ++d) st(o, g.qkv<D>(bn, i, h) + d, acc[d] * inv);
  lse[g.row(bn, h, i)] = l > 0.f ? m + __logf(l) : -INFINITY;
}

// D_i = dO_i . O_i, one thread per (bn, h, i).
template <typename T, int D>
__global__ void row_dot_kernel(const T* __restrict__ d_o, const T* __restrict__ o, float* __restrict__ out, Geo g) {
  const std::int64_t idx = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= g.batch * g.n * g.heads * g.len) return;
  const std::int64_t i = idx % g.len, h = (idx / g.len) % g.heads, bn = idx / (g.len * g.heads);
  float s = 0.f;
  for (int d = 0; d < D; ++d) s += ld(d_o, g.qkv<D>(bn, i, h) + d) * ld(o, g.qkv<D>(bn, i, h) + d);
  out[idx] = s;
}

// dK, dV (and d(pair) with atomics, d(mask) partials): grid (ceil(L / kThreads), H, B*N);
// thread = key row j; Q and dO tiles staged.
template <typename T, int D>
__global__ void __launch_bounds__(kThreads) fused_bwd_kv(
    const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, const T* __restrict__ mask,
    const T* __restrict__ pair, const T* __restrict__ d_o, const float* __restrict__ lse,
    const float* __restrict__ row_dot, T* __restrict__ dk, T* __restrict__ dv, float* __restrict__ d_pair,
    float* __restrict__ d_mask_partial, Geo g, float scale, bool pair_atomic) {
  __shared__ float qs[kTile][D];
  __shared__ float dos[kTile][D];
  __shared__ float lse_s[kTile];
  __shared__ float dot_s[kTile];
  const std::int64_t bn = blockIdx.z, h = blockIdx.y;
  const std::int64_t j = static_cast<std::int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  const bool active = j < g.len;
  float kr[D], vr[D], dk_acc[D], dv_acc[D];
#pragma unroll
  for (int d = 0; d < D; ++d) {
    kr[d] = active ? ld(k, g.qkv<D>(bn, j, h) + d) : 0.f;
    vr[d] = active ? ld(v, g.qkv<D>(bn, j, h) + d) : 0.f;
    dk_acc[d] = dv_acc[d] = 0.f;
  }
  float dmask_acc = 0.f;
  for (std::int64_t i0 = 0; i0 < g.len; i0 += kTile) {
    stage<T, D>(qs, q, g, bn, h, i0);
    stage<T, D>(dos, d_o, g, bn, h, i0);
    for (int r = threadIdx.x; r < kTile; r += blockDim.x) {
      const bool in = i0 + r < g.len;
      lse_s[r] = in ? lse[g.row(bn, h, i0 + r)] : -INFINITY;
      dot_s[r] = in ? row_dot[g.row(bn, h, i0 + r)] : 0.f;
    }
    __syncthreads();
    if (active) {
      const int tile = static_cast<int>(g.len - i0 < kTile ? g.len - i0 : kTile);
      for (int ii = 0; ii < tile; ++ii) {
        if (lse_s[ii] == -INFINITY) continue;  // fully masked query row: no gradient
        float s = 0.f, dp = 0.f;
#pragma unroll
        for (int d = 0; d < D; ++d) {
          s += qs[ii][d] * kr[d];
          dp += dos[ii][d] * vr[d];
        }
        s = scale * s + bias_at(mask, pair, g, bn, h, i0 + ii, j);
        const float p = s == -INFINITY ? 0.f : __expf(s - lse_s[ii]);
        const float ds = p * (dp - dot_s[ii]);
#pragma unroll
        for (int d = 0; d < D; ++d) {
          dv_acc[d] += p * dos[ii][d];
          dk_acc[d] += scale * ds * qs[ii][d];
        }
        dmask_acc += ds;
        if (d_pair && pair_atomic) atomicAdd(d_pair + g.pair(bn, h, i0 + ii, j), ds);
      }
    }
    __syncthreads();
  }
  if (!active) return;
#pragma unroll
  for (int d = 0; d < D; ++d) {
    st(dk, g.qkv<D>(bn, j, h) + d, dk_acc[d]);
    st(dv, g.qkv<D>(bn, j, h) + d, dv_acc[d]);
  }
  if (d_mask_partial) d_mask_partial[g.row(bn, h, j)] = dmask_acc;
}

// dQ: grid (ceil(L / kThreads), H, B*N); thread = query row i; K and V tiles staged.
template <typename T, int D>
__global__ void __launch_bounds__(kThreads) fused_bwd_q(
    const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, const T* __restrict__ mask,
    const T* __restrict__ pair, const T* __restrict__ d_o, const float* __restrict__ lse,
    const float* __restrict__ row_dot, T* __restrict__ dq, Geo g, float scale) {
  __shared__ float ks[kTile][D];
  __shared__ float vs[kTile][D];
  const std::int64_t bn = blockIdx.z, h = blockIdx.y;
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  const bool active = i < g.len;
  float qr[D], dor[D], acc[D];
#pragma unroll
  for (int d = 0; d < D; ++d) {
    qr[d] = active ? ld(q, g.qkv<D>(bn, i, h) + d) : 0.f;
    dor[d] = active ? ld(d_o, g.qkv<D>(bn, i, h) + d) : 0.f;
    acc[d] = 0.f;
  }
  const float row_lse = active ? lse[g.row(bn, h, i)] : -INFINITY;
  const float row_d = active ? row_dot[g.row(bn, h, i)] : 0.f;
  for (std::int64_t j0 = 0; j0 < g.len; j0 += kTile) {
    stage<T, D>(ks, k, g, bn, h, j0);
    stage<T, D>(vs, v, g, bn, h, j0);
    __syncthreads();
    if (active && row_lse != -INFINITY) {
      const int tile = static_cast<int>(g.len - j0 < kTile ? g.len - j0 : kTile);
      for (int jj = 0; jj < tile; ++jj) {
        float s = 0.f, dp = 0.f;
#pragma unroll
        for (int d = 0; d < D; ++d) {
          s += qr[d] * ks[jj][d];
          dp += dor[d] * vs[jj][d];
        }
        s = scale * s + bias_at(mask, pair, g, bn, h, i, j0 + jj);
        const float p = s == -INFINITY ? 0.f : __expf(s - row_lse);
        const float ds = p * (dp - row_d);
#pragma unroll
        for (int d = 0; d < D; ++d) acc[d] += scale * ds * ks[jj][d];
      }
    }
    __syncthreads();
  }
  if (!active) return;
#pragma unroll
  for (int d = 0; d < D; ++d) st(dq, g.qkv<D>(bn, i, h) + d, acc[d]);
}

// Deterministic d(pair): one thread per (b, h, i, j), loop over n in order, recomputing
// s and dO.V from global memory (no atomics, the same bits on every run).
template <typename T, int D>
__global__ void pair_grad_deterministic(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                                        const T* __restrict__ mask, const T* __restrict__ pair,
                                        const T* __restrict__ d_o, const float* __restrict__ lse,
                                        const float* __restrict__ row_dot, float* __restrict__ d_pair, Geo g,
                                        float scale) {
  const std::int64_t idx = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= g.batch * g.heads * g.len * g.len) return;
  const std::int64_t j = idx % g.len, i = (idx / g.len) % g.len, h = (idx / (g.len * g.len)) % g.heads;
  const std::int64_t b = idx / (g.len * g.len * g.heads);
  float total = 0.f;
  for (std::int64_t n = 0; n < g.n; ++n) {
    const std::int64_t bn = b * g.n + n;
    const float row_lse = lse[g.row(bn, h, i)];
    if (row_lse == -INFINITY) continue;
    float s = 0.f, dp = 0.f;
    for (int d = 0; d < D; ++d) {
      s += ld(q, g.qkv<D>(bn, i, h) + d) * ld(k, g.qkv<D>(bn, j, h) + d);
      dp += ld(d_o, g.qkv<D>(bn, i, h) + d) * ld(v, g.qkv<D>(bn, j, h) + d);
    }
    s = scale * s + bias_at(mask, pair, g, bn, h, i, j);
    const float p = s == -INFINITY ? 0.f : __expf(s - row_lse);
    total += p * (dp - row_dot[g.row(bn, h, i)]);
  }
  d_pair[idx] = total;
}

// d(mask)[bn, j] = sum_h partial[bn, h, j].
__global__ void mask_grad_reduce(const float* __restrict__ partial, float* __restrict__ d_mask, std::int64_t bn_count,
                                 std::int64_t heads, std::int64_t len) {
  const std::int64_t idx = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= bn_count * len) return;
  const std::int64_t bn = idx / len, j = idx % len;
  float s = 0.f;
  for (std::int64_t h = 0; h < heads; ++h) s += partial[(bn * heads + h) * len + j];
  d_mask[idx] = s;
}

Geo geo_of(const EvoformerAttnShape& s) { return {s.batch, s.n, s.len, s.heads}; }

dim3 grid_of(const EvoformerAttnShape& s) {
  if (s.rows() > 65535 || s.heads > 65535) throw std::invalid_argument("evoformer_attn_fused: B*N and H must be < 65536");
  return dim3(static_cast<unsigned>((s.len + kThreads - 1) / kThreads), static_cast<unsigned>(s.heads),
              static_cast<unsigned>(s.rows()));
}

template <typename T, int D>
void fwd_typed(const EvoformerAttnFusedParams& p, cudaStream_t st) {
  const auto& a = p.a;
  fused_fwd<T, D><<<grid_of(a.shape), kThreads, 0, st>>>(
      static_cast<const T*>(a.q), static_cast<const T*>(a.k), static_cast<const T*>(a.v),
      static_cast<const T*>(a.mask_bias), static_cast<const T*>(a.pair_bias), static_cast<T*>(a.o), p.lse,
      geo_of(a.shape), 1.f / std::sqrt(static_cast<float>(D)));
  CUDA_CHECK_LAUNCH();
}

template <typename T, int D>
void bwd_typed(const EvoformerAttnFusedParams& p, const EvoformerAttnFusedGrads& gr, cudaStream_t st) {
  const auto& a = p.a;
  const Geo g = geo_of(a.shape);
  const float scale = 1.f / std::sqrt(static_cast<float>(D));
  const auto* q = static_cast<const T*>(a.q);
  const auto* k = static_cast<const T*>(a.k);
  const auto* v = static_cast<const T*>(a.v);
  const auto* mask = static_cast<const T*>(a.mask_bias);
  const auto* pair = static_cast<const T*>(a.pair_bias);
  const auto* d_o = static_cast<const T*>(gr.d_o);
  const std::int64_t rows = a.shape.rows() * a.shape.heads * a.shape.len;
  row_dot_kernel<T, D><<<static_cast<unsigned>((rows + 255) / 256), 256, 0, st>>>(d_o, static_cast<const T*>(a.o),
                                                                                  gr.row_dot, g);
  CUDA_CHECK_LAUNCH();
  const bool atomic = gr.d_pair && gr.pair_mode == PairGradMode::kAtomic;
  if (atomic) CUDA_CHECK(cudaMemsetAsync(gr.d_pair, 0, sizeof(float) * a.shape.batch * a.shape.heads * a.shape.len * a.shape.len, st));
  const bool tc = evoformer_attn_fused_tc_supported(a.io, a.shape.head_dim);
  if (p.kernel == FusedKernel::kTensorCore || (p.kernel == FusedKernel::kAuto && tc)) {
    evoformer_attn_fused_bwd_tc(p, gr, atomic, st);  // throws where it does not apply
  } else {
    fused_bwd_kv<T, D><<<grid_of(a.shape), kThreads, 0, st>>>(q, k, v, mask, pair, d_o, p.lse, gr.row_dot,
                                                              static_cast<T*>(gr.dk), static_cast<T*>(gr.dv), gr.d_pair,
                                                              gr.d_mask ? gr.d_mask_partial : nullptr, g, scale, atomic);
    CUDA_CHECK_LAUNCH();
    fused_bwd_q<T, D><<<grid_of(a.shape), kThreads, 0, st>>>(q, k, v, mask, pair, d_o, p.lse, gr.row_dot,
                                                             static_cast<T*>(gr.dq), g, scale);
    CUDA_CHECK_LAUNCH();
  }
  if (gr.d_pair && !atomic) {
    const std::int64_t total = a.shape.batch * a.shape.heads * a.shape.len * a.shape.len;
    pair_grad_deterministic<T, D><<<static_cast<unsigned>((total + 255) / 256), 256, 0, st>>>(
        q, k, v, mask, pair, d_o, p.lse, gr.row_dot, gr.d_pair, g, scale);
    CUDA_CHECK_LAUNCH();
  }
  if (gr.d_mask) {
    const std::int64_t total = a.shape.rows() * a.shape.len;
    mask_grad_reduce<<<static_cast<unsigned>((total + 255) / 256), 256, 0, st>>>(gr.d_mask_partial, gr.d_mask,
                                                                                  a.shape.rows(), a.shape.heads, a.shape.len);
    CUDA_CHECK_LAUNCH();
  }
}

// Runtime dispatch over the head sizes we support: 5 head sizes x 3 dtypes.
template <template <typename, int> class Fn, typename... Args>
void dispatch(DType io, std::int64_t head_dim, Args&&... args) {
  auto by_dim = [&](auto tag) {
    using T = decltype(tag);
    switch (head_dim) {
      case 8: return Fn<T, 8>::run(args...);
      case 16: return Fn<T, 16>::run(args...);
      case 32: return Fn<T, 32>::run(args...);
      case 64: return Fn<T, 64>::run(args...);
      case 128: return Fn<T, 128>::run(args...);
      default: throw std::invalid_argument("evoformer_attn_fused: head_dim must be 8, 16, 32, 64 or 128, got " + std::to_string(head_dim));
    }
  };
  switch (io) {
    case DType::kFp32: return by_dim(float{});
    case DType::kFp16: return by_dim(__half{});
    case DType::kBf16: return by_dim(__nv_bfloat16{});
    default: throw std::invalid_argument("evoformer_attn_fused: dtype must be fp32, fp16 or bf16");
  }
}

template <typename T, int D> struct Fwd {
  static void run(const EvoformerAttnFusedParams& p, cudaStream_t s) { fwd_typed<T, D>(p, s); }
};
template <typename T, int D> struct Bwd {
  static void run(const EvoformerAttnFusedParams& p, const EvoformerAttnFusedGrads& g, cudaStream_t s) { bwd_typed<T, D>(p, g, s); }
};

void check(const EvoformerAttnFusedParams& p) {
  const auto& s = p.a.shape;
  if (s.batch <= 0 || s.n <= 0 || s.len <= 0 || s.heads <= 0) throw std::invalid_argument("evoformer_attn_fused: every dim must be positive");
  if (!p.a.q || !p.a.k || !p.a.v || !p.a.o || !p.lse) throw std::invalid_argument("evoformer_attn_fused: null q, k, v, o or lse");
}

}  // namespace

void evoformer_attn_fused_fwd(const EvoformerAttnFusedParams& p, cudaStream_t stream) {
  check(p);
  const bool tc = evoformer_attn_fused_tc_supported(p.a.io, p.a.shape.head_dim);
  if (p.kernel == FusedKernel::kTensorCore || (p.kernel == FusedKernel::kAuto && tc)) {
    evoformer_attn_fused_fwd_tc(p, stream);  // throws where it does not apply
    return;
  }
  dispatch<Fwd>(p.a.io, p.a.shape.head_dim, p, stream);
}

void evoformer_attn_fused_bwd(const EvoformerAttnFusedParams& p, const EvoformerAttnFusedGrads& g, cudaStream_t stream) {
  check(p);
  if (!g.d_o || !g.dq || !g.dk || !g.dv || !g.row_dot) throw std::invalid_argument("evoformer_attn_fused_bwd: null gradient buffer");
  // Checked here, before any launch: thrown after the dK/dV kernels it would leave the
  // gradients half written.
  if (g.d_mask && !g.d_mask_partial) throw std::invalid_argument("evoformer_attn_fused_bwd: d_mask needs d_mask_partial");
  dispatch<Bwd>(p.a.io, p.a.shape.head_dim, p, g, stream);
}

}  // namespace seqscale
