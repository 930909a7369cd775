// Status: compiles for sm_80/sm_90; not yet run on a GPU (its tests skip without one).
// evoformer_attn_fused forward on tensor cores (fp16 / bf16, head sizes 16..128): the same
// online softmax and log-sum-exp as the SIMT kernel, with Q K^T and P V as WMMA 16x16x16
// products (fp32 accumulation). A block of 4 warps owns 64 query rows (16 per warp) and
// walks the keys in tiles of 64:
//   K, V tile -> shared;  S_w = Q_w K^T (WMMA, fp32 to shared);  per row: scale, add the
//   mask and pair bias (a warp reads 32 consecutive keys of one bias row: coalesced),
//   running max / sum, P in the I/O dtype to shared, O row rescaled;  O_w += P_w V (WMMA,
//   the fp32 accumulator kept in shared between tiles).
// This is the FlashAttention-1 schedule on the WMMA API; keeping O in registers
// (mma.sync fragments with a known row layout), cp.async double buffering and wgmma on
// sm_90 are the next steps. The backward is evoformer_attn_fused_tc_bwd.cu.
#include <cmath>
#include <stdexcept>
#include <string>

#include "kernels/common/convert.cuh"
#include "kernels/evoformer_attn/evoformer_attn.cuh"
#include "kernels/evoformer_attn/evoformer_attn_fused_tc.cuh"

namespace seqscale {
namespace {

using namespace evoformer_tc;  // NOLINT(google-build-using-namespace): this file's own kit

// Shared-memory layout; leading dimensions padded against bank conflicts while keeping
// every WMMA tile pointer 32-byte aligned (ldm: multiple of 8 halves / 4 floats).
template <typename T, int D>
struct Layout {
  static constexpr int kQld = D + 16;
  static constexpr int kPld = kKeys + 16;
  static constexpr int kSld = kKeys + 4;
  static constexpr int kOld = D + 4;
  static constexpr std::size_t kQ = 0;
  static constexpr std::size_t kK = kQ + sizeof(T) * kRows * kQld;
  static constexpr std::size_t kV = kK + sizeof(T) * kKeys * kQld;
  static constexpr std::size_t kP = kV + sizeof(T) * kKeys * kQld;
  static constexpr std::size_t kS = kP + sizeof(T) * kRows * kPld;
  static constexpr std::size_t kO = kS + sizeof(float) * kRows * kSld;
  static constexpr std::size_t kBytes = kO + sizeof(float) * kRows * kOld;
};

// grid (ceil(L / 64), H, B*N), 128 threads.
template <typename T, int D>
__global__ void __launch_bounds__(32 * kWarps) fused_fwd_tc(const T* __restrict__ q, const T* __restrict__ k,
                                                            const T* __restrict__ v, const T* __restrict__ mask,
                                                            const T* __restrict__ pair, T* __restrict__ o,
                                                            float* __restrict__ lse, TcGeo g, float scale) {
  using L = Layout<T, D>;
  extern __shared__ __align__(128) unsigned char smem[];
  T* qs = reinterpret_cast<T*>(smem + L::kQ);
  T* ks = reinterpret_cast<T*>(smem + L::kK);
  T* vs = reinterpret_cast<T*>(smem + L::kV);
  T* ps = reinterpret_cast<T*>(smem + L::kP);
  float* ss = reinterpret_cast<float*>(smem + L::kS);
  float* os = reinterpret_cast<float*>(smem + L::kO);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const std::int64_t bn = blockIdx.z, h = blockIdx.y, i0 = static_cast<std::int64_t>(blockIdx.x) * kRows;

  load_rows<T, D>(qs, L::kQld, q, g, bn, h, i0, kRows);
  for (int e = threadIdx.x; e < kRows * D; e += blockDim.x) os[(e / D) * L::kOld + e % D] = 0.f;
  float m_run[16], l_run[16];
#pragma unroll
  for (int r = 0; r < 16; ++r) {
    m_run[r] = -INFINITY;
    l_run[r] = 0.f;
  }
  const std::int64_t bias_row0 = ((bn / g.n) * g.heads + h) * g.len;  // pair[b, h, i, :] = pair + (bias_row0 + i) * len

  for (std::int64_t j0 = 0; j0 < g.len; j0 += kKeys) {
    __syncthreads();  // the previous tile's K/V reads are done (and Q/O are initialised)
    load_rows<T, D>(ks, L::kQld, k, g, bn, h, j0, kKeys);
    load_rows<T, D>(vs, L::kQld, v, g, bn, h, j0, kKeys);
    __syncthreads();

    // S_w = Q_w K^T.
    warp_mma_abt<T, D, kKeys>(qs + warp * 16 * L::kQld, L::kQld, ks, L::kQld, ss + warp * 16 * L::kSld, L::kSld);
    __syncwarp();

#pragma unroll
    for (int r = 0; r < 16; ++r) {
      const int row = warp * 16 + r;
      const std::int64_t i = i0 + row;
      float s[kKeys / 32];
      float mx = -INFINITY;
#pragma unroll
      for (int t = 0; t < kKeys / 32; ++t) {
        const int c = lane + 32 * t;
        const std::int64_t j = j0 + c;
        float val = -INFINITY;
        if (i < g.len && j < g.len) {
          val = ss[row * L::kSld + c] * scale;
          if (mask) val += load_f32(mask, bn * g.len + j);
          if (pair) val += load_f32(pair, (bias_row0 + i) * g.len + j);
        }
        s[t] = val;
        mx = fmaxf(mx, val);
      }
      mx = warp_max(mx);
      const float m_new = fmaxf(m_run[r], mx);
      const float corr = m_run[r] == -INFINITY ? 0.f : __expf(m_run[r] - m_new);
      float psum = 0.f;
#pragma unroll
      for (int t = 0; t < kKeys / 32; ++t) {
        const float p = s[t] == -INFINITY ? 0.f : __expf(s[t] - m_new);
        ps[row * L::kPld + lane + 32 * t] = T(p);
        psum += p;
      }
      psum = warp_sum(psum);
      l_run[r] = l_run[r] * corr + psum;
      m_run[r] = m_new;
      for (int d = lane; d < D; d += 32) os[row * L::kOld + d] *= corr;
    }
    __syncwarp();

    // O_w += P_w V.
    warp_mma_ab_acc<T, kKeys, D>(ps + warp * 16 * L::kPld, L::kPld, vs, L::kQld, os + warp * 16 * L::kOld, L::kOld);
    __syncwarp();
  }

#pragma unroll
  for (int r = 0; r < 16; ++r) {
    const int row = warp * 16 + r;
    const std::int64_t i = i0 + row;
    if (i >= g.len) continue;
    const float inv = l_run[r] > 0.f ? 1.f / l_run[r] : 0.f;
    for (int d = lane; d < D; d += 32) store_f32(o, g.qkv<D>(bn, i, h) + d, os[row * L::kOld + d] * inv);
    if (lane == 0) lse[(bn * g.heads + h) * g.len + i] = l_run[r] > 0.f ? m_run[r] + __logf(l_run[r]) : -INFINITY;
  }
}

template <typename T, int D>
void launch(const EvoformerAttnFusedParams& p, cudaStream_t st) {
  const auto& a = p.a;
  using L = Layout<T, D>;
  allow_smem(reinterpret_cast<const void*>(fused_fwd_tc<T, D>), L::kBytes);
  if (a.shape.rows() > 65535 || a.shape.heads > 65535) {
    throw std::invalid_argument("evoformer_attn_fused: B*N and H must be < 65536");
  }
  const dim3 grid(static_cast<unsigned>((a.shape.len + kRows - 1) / kRows), static_cast<unsigned>(a.shape.heads),
                  static_cast<unsigned>(a.shape.rows()));
  fused_fwd_tc<T, D><<<grid, 32 * kWarps, L::kBytes, st>>>(
      static_cast<const T*>(a.q), static_cast<const T*>(a.k), static_cast<const T*>(a.v),
      static_cast<const T*>(a.mask_bias), static_cast<const T*>(a.pair_bias), static_cast<T*>(a.o), p.lse,
      TcGeo{a.shape.n, a.shape.len, a.shape.heads}, 1.f / std::sqrt(static_cast<float>(D)));
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void by_dim(const EvoformerAttnFusedParams& p, cudaStream_t st) {
  switch (p.a.shape.head_dim) {
    case 16: return launch<T, 16>(p, st);
    case 32: return launch<T, 32>(p, st);
    case 64: return launch<T, 64>(p, st);
    case 128: return launch<T, 128>(p, st);
    default: throw std::invalid_argument("evoformer_attn_fused tensor-core forward: head_dim must be 16, 32, 64 or 128");
  }
}

}  // namespace

bool evoformer_attn_fused_tc_supported(DType io, std::int64_t head_dim) {
  return (io == DType::kFp16 || io == DType::kBf16) &&
         (head_dim == 16 || head_dim == 32 || head_dim == 64 || head_dim == 128);
}

void evoformer_attn_fused_fwd_tc(const EvoformerAttnFusedParams& p, cudaStream_t stream) {
  if (!evoformer_attn_fused_tc_supported(p.a.io, p.a.shape.head_dim)) {
    throw std::invalid_argument("evoformer_attn_fused tensor-core forward: needs fp16 or bf16 and head_dim 16..128, got head_dim " +
                                std::to_string(p.a.shape.head_dim));
  }
  if (p.a.io == DType::kFp16) {
    by_dim<__half>(p, stream);
  } else {
    by_dim<__nv_bfloat16>(p, stream);
  }
}

}  // namespace seqscale
