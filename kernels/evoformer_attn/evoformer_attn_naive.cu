// evoformer_attn_naive: the materialised baseline. Per head h (H <= 8 calls), one
// strided-batched GEMM over the B*N rows: row-major S = Q K^T / sqrt(D) is column-major
// S^T = K Q^T / sqrt(D) with Q, K read in place from [B, N, L, H, D] (leading dimension H*D,
// batch stride L*H*D). The 1/sqrt(D) is the GEMM's alpha, applied to the fp32 accumulator
// before S is rounded to the I/O dtype: stored unscaled, S would overflow fp16 where
// |q.k| > 65504 although the logit |q.k| / sqrt(D) fits (the relative rounding is the same
// either way). Then the fused softmax (scale 1) adds mask and pair bias in place; O = P V.
// Backward: dV = P^T dO, dP = dO V^T, dS = P (dP - rowsum(dP P)) (softmax backward, scale
// 1 as in the forward; the biases are added to S unscaled, so dS is also their gradient);
// S = Q K^T / sqrt(D) gives dQ = dS K / sqrt(D), dK = dS^T Q / sqrt(D): exactly one
// 1/sqrt(D), the alpha of those two GEMMs. d(pair) sums dS over N and d(mask) over heads
// and query rows, in fp32 with a deterministic loop.
#include "kernels/evoformer_attn/evoformer_attn.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <stdexcept>

#include "common/check_cublas.h"
#include "common/check_cuda.h"
#include "kernels/common/convert.cuh"
#include "kernels/softmax/softmax.cuh"

namespace seqscale {
namespace {

cudaDataType_t cuda_type(DType t) { return cuda_data_type(t); }

template <typename T> __device__ __forceinline__ float ld(const T* p, std::int64_t i) { return load_f32(p, i); }

// d_pair[b, h, i, j] = sum_n dS[b, n, h, i, j]: one thread per output, loop over n in order.
template <typename T>
__global__ void reduce_pair_grad(const T* __restrict__ ds, float* __restrict__ d_pair, std::int64_t batch,
                                 std::int64_t n, std::int64_t hll) {
  const std::int64_t idx = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= batch * hll) return;
  const std::int64_t b = idx / hll, rest = idx % hll;
  float acc = 0.f;
  for (std::int64_t k = 0; k < n; ++k) acc += ld(ds, (b * n + k) * hll + rest);
  d_pair[idx] = acc;
}

// d_mask[b, n, j] = sum_{h, i} dS[b, n, h, i, j]: one thread per (b, n, j).
template <typename T>
__global__ void reduce_mask_grad(const T* __restrict__ ds, float* __restrict__ d_mask, std::int64_t bn,
                                 std::int64_t rows_per_bn, std::int64_t len) {
  const std::int64_t idx = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= bn * len) return;
  const std::int64_t r = idx / len, j = idx % len;
  float acc = 0.f;
  for (std::int64_t i = 0; i < rows_per_bn; ++i) acc += ld(ds, (r * rows_per_bn + i) * len + j);
  d_mask[idx] = acc;
}

struct Geometry {
  int L, D, ld_qkv;            // ld of Q/K/V/O rows: H * D
  long long stride_qkv;        // between consecutive (b, n): L * H * D
  long long stride_probs;      // between consecutive (b, n) in [B, N, H, L, L]: H * L * L
  int batch;                   // B * N
  std::size_t es;
};

Geometry geometry(const EvoformerAttnParams& p) {
  const auto& s = p.shape;
  if (s.batch <= 0 || s.n <= 0 || s.len <= 0 || s.heads <= 0 || s.head_dim <= 0) {
    throw std::invalid_argument("evoformer_attn: every dim must be positive");
  }
  return {static_cast<int>(s.len), static_cast<int>(s.head_dim), static_cast<int>(s.heads * s.head_dim),
          s.len * s.heads * s.head_dim, s.heads * s.len * s.len, static_cast<int>(s.rows()),
          static_cast<std::size_t>(dtype_bytes(p.io))};
}

const char* at(const void* base, std::size_t bytes) { return static_cast<const char*>(base) + bytes; }
char* at(void* base, std::size_t bytes) { return static_cast<char*>(base) + bytes; }

// C (column-major m x n, ldc, strideC) = alpha * op(A) op(B) + beta * C, batched over B*N.
void gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha,
          const void* a, int lda, long long sa, const void* b, int ldb, long long sb, float beta, void* c, int ldc,
          long long sc, int batch, cudaDataType_t t) {
  CUBLAS_CHECK(cublasGemmStridedBatchedEx(h, ta, tb, m, n, k, &alpha, a, t, lda, sa, b, t, ldb, sb, &beta, c, t, ldc, sc,
                                          batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

template <typename T>
void reduce_grads(const EvoformerAttnParams& p, const EvoformerAttnGrads& g, cudaStream_t st) {
  const auto& s = p.shape;
  const auto* ds = static_cast<const T*>(g.d_probs);
  if (g.d_pair) {
    const std::int64_t hll = s.heads * s.len * s.len, total = s.batch * hll;
    reduce_pair_grad<T><<<static_cast<unsigned>((total + 255) / 256), 256, 0, st>>>(ds, g.d_pair, s.batch, s.n, hll);
    CUDA_CHECK_LAUNCH();
  }
  if (g.d_mask) {
    const std::int64_t total = s.rows() * s.len;
    reduce_mask_grad<T><<<static_cast<unsigned>((total + 255) / 256), 256, 0, st>>>(ds, g.d_mask, s.rows(),
                                                                                     s.heads * s.len, s.len);
    CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

void evoformer_attn_naive_fwd(const EvoformerAttnParams& p, cublasHandle_t handle, cudaStream_t stream) {
  const Geometry g = geometry(p);
  const cudaDataType_t t = cuda_type(p.io);
  const float scale = 1.f / std::sqrt(static_cast<float>(p.shape.head_dim));
  CUBLAS_CHECK(cublasSetStream(handle, stream));
  for (std::int64_t h = 0; h < p.shape.heads; ++h) {
    const std::size_t head_off = static_cast<std::size_t>(h * g.D) * g.es;
    const std::size_t probs_off = static_cast<std::size_t>(h * g.L) * g.L * g.es;
    // S^T[j, i] = scale * sum_d K[j, d] Q[i, d]: column-major m = L (keys), n = L (queries), k = D.
    gemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, g.L, g.L, g.D, scale, at(p.k, head_off), g.ld_qkv, g.stride_qkv,
         at(p.q, head_off), g.ld_qkv, g.stride_qkv, 0.f, at(p.probs, probs_off), g.L, g.stride_probs, g.batch, t);
  }
  SoftmaxFwdParams sp;
  sp.x = sp.y = p.probs;
  sp.mask = p.mask_bias;
  sp.bias = p.pair_bias;
  sp.shape = {p.shape.batch, p.shape.n, p.shape.heads, p.shape.len, p.shape.len};
  sp.scale = 1.f;  // 1/sqrt(D) is already in S (the GEMM's alpha); the biases are never scaled
  sp.io = p.io;
  softmax_fwd(sp, stream);
  for (std::int64_t h = 0; h < p.shape.heads; ++h) {
    const std::size_t head_off = static_cast<std::size_t>(h * g.D) * g.es;
    const std::size_t probs_off = static_cast<std::size_t>(h * g.L) * g.L * g.es;
    // O^T[d, i] = sum_j V^T[d, j] P^T[j, i]: m = D, n = L (queries), k = L (keys).
    gemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, g.D, g.L, g.L, 1.f, at(p.v, head_off), g.ld_qkv, g.stride_qkv,
         at(p.probs, probs_off), g.L, g.stride_probs, 0.f, at(p.o, head_off), g.ld_qkv, g.stride_qkv, g.batch, t);
  }
}

void evoformer_attn_naive_bwd(const EvoformerAttnParams& p, const EvoformerAttnGrads& gr, cublasHandle_t handle,
                              cudaStream_t stream) {
  const Geometry g = geometry(p);
  const cudaDataType_t t = cuda_type(p.io);
  const float scale = 1.f / std::sqrt(static_cast<float>(p.shape.head_dim));
  CUBLAS_CHECK(cublasSetStream(handle, stream));
  for (std::int64_t h = 0; h < p.shape.heads; ++h) {
    const std::size_t head_off = static_cast<std::size_t>(h * g.D) * g.es;
    const std::size_t probs_off = static_cast<std::size_t>(h * g.L) * g.L * g.es;
    // dV^T[d, j] = sum_i dO^T[d, i] P[i, j]: m = D, n = L (keys), k = L (queries); P^T col-major = P row-major.
    gemm(handle, CUBLAS_OP_N, CUBLAS_OP_T, g.D, g.L, g.L, 1.f, at(gr.d_o, head_off), g.ld_qkv, g.stride_qkv,
         at(p.probs, probs_off), g.L, g.stride_probs, 0.f, at(gr.dv, head_off), g.ld_qkv, g.stride_qkv, g.batch, t);
    // dP^T[j, i] = sum_d V[j, d] dO[i, d]: m = L (keys), n = L (queries), k = D.
    gemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, g.L, g.L, g.D, 1.f, at(p.v, head_off), g.ld_qkv, g.stride_qkv,
         at(gr.d_o, head_off), g.ld_qkv, g.stride_qkv, 0.f, at(gr.d_probs, probs_off), g.L, g.stride_probs, g.batch, t);
  }
  SoftmaxBwdParams sb;
  sb.y = p.probs;
  sb.dy = gr.d_probs;
  sb.dx = gr.d_probs;  // dS over dP, in place; scale 1 (as in the forward): dS is the biases' gradient
  sb.shape = {p.shape.batch, p.shape.n, p.shape.heads, p.shape.len, p.shape.len};
  sb.scale = 1.f;
  sb.io = p.io;
  softmax_bwd(sb, stream);
  for (std::int64_t h = 0; h < p.shape.heads; ++h) {
    const std::size_t head_off = static_cast<std::size_t>(h * g.D) * g.es;
    const std::size_t probs_off = static_cast<std::size_t>(h * g.L) * g.L * g.es;
    // dQ^T[d, i] = scale * sum_j K^T[d, j] dS^T[j, i]: m = D, n = L (queries), k = L (keys).
    gemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, g.D, g.L, g.L, scale, at(p.k, head_off), g.ld_qkv, g.stride_qkv,
         at(gr.d_probs, probs_off), g.L, g.stride_probs, 0.f, at(gr.dq, head_off), g.ld_qkv, g.stride_qkv, g.batch, t);
    // dK^T[d, j] = scale * sum_i Q^T[d, i] dS[i, j]: m = D, n = L (keys), k = L (queries).
    gemm(handle, CUBLAS_OP_N, CUBLAS_OP_T, g.D, g.L, g.L, scale, at(p.q, head_off), g.ld_qkv, g.stride_qkv,
         at(gr.d_probs, probs_off), g.L, g.stride_probs, 0.f, at(gr.dk, head_off), g.ld_qkv, g.stride_qkv, g.batch, t);
  }
  switch (p.io) {
    case DType::kFp32: reduce_grads<float>(p, gr, stream); break;
    case DType::kFp16: reduce_grads<__half>(p, gr, stream); break;
    case DType::kBf16: reduce_grads<__nv_bfloat16>(p, gr, stream); break;
    default: throw std::invalid_argument("evoformer_attn: dtype must be fp32, fp16 or bf16");
  }
}

}  // namespace seqscale
