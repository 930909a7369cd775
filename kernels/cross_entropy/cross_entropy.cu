// cross_entropy: loss per token from hidden [T, h] and W [V, h], chunked over the vocab
// (cross_entropy.cuh). Per chunk of Vc vocab rows:
//   fwd: GEMM logits_c [T, Vc] fp32 = hidden x W_c^T; ce_chunk_stats: a warp per token,
//        per-lane online (max, sum e^(x - max)) in one pass, merged across the warp, then
//        into the token's running pair (the online softmax's rescale-and-add); the chunk
//        holding the target stashes its logit in loss[t]; the last chunk writes lse, loss.
//   bwd: GEMM logits_c again; ce_chunk_grad: d = dloss (e^(x - lse) - [v == target]) into
//        d logits (the I/O dtype for the tensor-core GEMMs; in place for fp32); GEMM
//        dW_c = d logits^T x hidden (fp32, this chunk's rows: no accumulation); GEMM
//        d hidden += d logits x W_c (fp32 accumulator); at the end one conversion.
// Every reduction has a fixed order: the result is reproducible run to run.
// Floor: compute-bound, 2 T V h FLOPs forward, 6 T V h backward (cross_entropy_cost.h).
#include "kernels/cross_entropy/cross_entropy.cuh"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "common/check_cublas.h"
#include "common/check_cuda.h"
#include "kernels/common/convert.cuh"
#include "kernels/common/launch.cuh"
#include "kernels/common/pack.cuh"
#include "kernels/common/reduce.cuh"

namespace seqscale {
namespace {

constexpr int kThreads = 256;
constexpr int kRowsPerBlock = kThreads / 32;  // a warp per token
constexpr std::int64_t kMaxDim = (std::int64_t{1} << 31) - 1;  // cuBLAS takes int sizes

// One chunk of logits rows: columns [col0, col0 + cols) of the vocab, row stride ld.
struct Chunk {
  std::int64_t rows, ld, col0, vocab;
  int cols;
};

// ---- kernels ----------------------------------------------------------------------------

template <typename L>
__global__ void __launch_bounds__(kThreads)
    ce_chunk_stats(const L* __restrict__ logits, Chunk ch, const std::int32_t* __restrict__ targets,
                   float* __restrict__ run_max, float* __restrict__ run_sum, float* __restrict__ loss,
                   float* __restrict__ lse, bool first, bool last) {
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (row >= ch.rows) return;
  const L* xr = logits + row * ch.ld;
  float m = -INFINITY, s = 0.f;
#pragma unroll 4
  for (int c = lane; c < ch.cols; c += 32) {
    const float v = load_f32(xr, c);
    if (v > m) {
      s = s * expf(m - v) + 1.f;  // expf(-inf) = 0 on the first value
      m = v;
    } else if (v != -INFINITY) {
      s += expf(v - m);  // a NaN logit makes s NaN: the loss says so
    }
  }
  float mx = reduce::warp_max(m);
  float sum = reduce::warp_sum(m == -INFINITY ? 0.f : s * expf(m - mx));
  if (lane != 0) return;
  const std::int32_t tgt = targets[row];
  if (tgt >= ch.col0 && tgt < ch.col0 + ch.cols) loss[row] = load_f32(xr, tgt - ch.col0);  // stash the target logit
  if (!first) {  // merge with the running pair of the earlier chunks
    const float m0 = run_max[row], s0 = run_sum[row];
    const float mn = fmaxf(m0, mx);
    sum = (m0 == -INFINITY ? 0.f : s0 * expf(m0 - mn)) + (mx == -INFINITY ? 0.f : sum * expf(mx - mn));
    mx = mn;
  }
  if (!last) {
    run_max[row] = mx;
    run_sum[row] = sum;
    return;
  }
  const float l = mx + logf(sum);
  lse[row] = l;
  loss[row] = tgt < 0 ? 0.f : (tgt >= ch.vocab ? std::numeric_limits<float>::quiet_NaN() : l - loss[row]);
}

// logits and dlogits may alias (fp32 in place): no __restrict__ on them.
template <typename L, typename G>
__global__ void __launch_bounds__(kThreads)
    ce_chunk_grad(const L* logits, Chunk ch, const std::int32_t* __restrict__ targets, const float* __restrict__ lse,
                  const float* __restrict__ dloss, G* dlogits) {
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (row >= ch.rows) return;
  const std::int32_t tgt = targets[row];
  const float g = tgt < 0 ? 0.f : (tgt >= ch.vocab ? std::numeric_limits<float>::quiet_NaN() : dloss[row]);
  const float l = lse[row];
  const std::int64_t tc = tgt - ch.col0;  // the target's column in this chunk (may be outside)
  const L* xr = logits + row * ch.ld;
  G* dr = dlogits + row * ch.ld;
#pragma unroll 4
  for (int c = lane; c < ch.cols; c += 32) {
    const float p = expf(load_f32(xr, c) - l);
    store_f32(dr, c, g * (c == tc ? p - 1.f : p));
  }
}

template <typename T, int kVec>
__global__ void __launch_bounds__(kThreads)
    convert_from_f32(const float* __restrict__ in, T* __restrict__ out, std::int64_t packs) {
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < packs;
       i += static_cast<std::int64_t>(gridDim.x) * kThreads) {
    float v[kVec];
    load_pack<float, kVec>(in + i * kVec, v);
    store_pack<T, kVec>(out + i * kVec, v);
  }
}

// ---- GEMMs ------------------------------------------------------------------------------

// Row-major C[m, n] (row stride ldc, fp32) = op(A) op(B) + beta C, A and B in `io` with row
// strides lda, ldb (op = transpose when ta / tb). Row-major is column-major transposed:
// C^T = op(B)^T op(A)^T, so cuBLAS gets B first. fp32 accumulation; fp32 I/O pedantic.
void gemm_rm(cublasHandle_t h, bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const void* a,
             std::int64_t lda, const void* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc, DType io) {
  const float alpha = 1.f;
  const cudaDataType_t t = cuda_data_type(io);
  CUBLAS_CHECK(cublasGemmEx(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(n),
                            static_cast<int>(m), static_cast<int>(k), &alpha, b, t, static_cast<int>(ldb), a, t,
                            static_cast<int>(lda), &beta, c, CUDA_R_32F, static_cast<int>(ldc),
                            io == DType::kFp32 ? CUBLAS_COMPUTE_32F_PEDANTIC : CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

// ---- launcher (validates params) ---------------------------------------------------------

unsigned row_blocks(std::int64_t rows) { return static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock); }

template <typename T> const T* at(const void* base, std::int64_t elems) { return static_cast<const T*>(base) + elems; }

void check_shape(const char* op, const CrossEntropyShape& s) {
  require_range(op, "tokens", s.tokens, 0, kMaxDim);
  require_range(op, "hidden", s.hidden, 1, kMaxDim);
  require_range(op, "vocab", s.vocab, 1, kMaxDim);
  require_range(op, "vocab_chunk", s.vocab_chunk, 1, kMaxDim);
}

template <typename T>
void fwd_typed(const CrossEntropyFwdParams& p, cudaStream_t stream) {
  const CrossEntropyShape& s = p.shape;
  const CrossEntropyWorkspace w = cross_entropy_workspace(s, p.io, false);
  auto* ws = static_cast<unsigned char*>(p.workspace);
  auto* logits = reinterpret_cast<float*>(ws + w.logits);
  auto* run_max = reinterpret_cast<float*>(ws + w.run_max);
  auto* run_sum = reinterpret_cast<float*>(ws + w.run_sum);
  const std::int64_t vc = s.chunk(), chunks = s.chunks();
  for (std::int64_t c = 0; c < chunks; ++c) {
    const std::int64_t v0 = c * vc, nc = std::min(vc, s.vocab - v0);
    gemm_rm(p.cublas, false, true, s.tokens, nc, s.hidden, p.hidden, s.hidden, at<T>(p.weight, v0 * s.hidden), s.hidden,
            0.f, logits, vc, p.io);
    const Chunk ch{s.tokens, vc, v0, s.vocab, static_cast<int>(nc)};
    ce_chunk_stats<float><<<row_blocks(s.tokens), kThreads, 0, stream>>>(logits, ch, p.targets, run_max, run_sum, p.loss,
                                                                        p.lse, c == 0, c == chunks - 1);
    CUDA_CHECK_LAUNCH();
  }
}

template <typename T>
void bwd_typed(const CrossEntropyBwdParams& p, cudaStream_t stream) {
  const CrossEntropyShape& s = p.shape;
  const CrossEntropyWorkspace w = cross_entropy_workspace(s, p.io, true);
  auto* ws = static_cast<unsigned char*>(p.workspace);
  auto* logits = reinterpret_cast<float*>(ws + w.logits);
  constexpr bool kHalf = !std::is_same_v<T, float>;
  T* dlogits;      // the GEMMs' operand
  float* dhidden;  // fp32 accumulator
  if constexpr (kHalf) {
    dlogits = reinterpret_cast<T*>(ws + w.dlogits);
    dhidden = reinterpret_cast<float*>(ws + w.dhidden_acc);
  } else {  // fp32 I/O: d logits overwrite the logits chunk and d hidden accumulates in its output
    dlogits = logits;
    dhidden = static_cast<float*>(p.dhidden);
  }
  const std::int64_t vc = s.chunk(), chunks = s.chunks();
  for (std::int64_t c = 0; c < chunks; ++c) {
    const std::int64_t v0 = c * vc, nc = std::min(vc, s.vocab - v0);
    const T* w_c = at<T>(p.weight, v0 * s.hidden);
    gemm_rm(p.cublas, false, true, s.tokens, nc, s.hidden, p.hidden, s.hidden, w_c, s.hidden, 0.f, logits, vc, p.io);
    const Chunk ch{s.tokens, vc, v0, s.vocab, static_cast<int>(nc)};
    ce_chunk_grad<float, T><<<row_blocks(s.tokens), kThreads, 0, stream>>>(logits, ch, p.targets, p.lse, p.dloss, dlogits);
    CUDA_CHECK_LAUNCH();
    // dW rows [v0, v0 + nc) = d logits_c^T [nc, T] x hidden [T, h]
    gemm_rm(p.cublas, true, false, nc, s.hidden, s.tokens, dlogits, vc, p.hidden, s.hidden, 0.f,
            p.dweight + v0 * s.hidden, s.hidden, p.io);
    // d hidden [T, h] (+)= d logits_c [T, nc] x W_c [nc, h]
    gemm_rm(p.cublas, false, false, s.tokens, s.hidden, nc, dlogits, vc, w_c, s.hidden, c == 0 ? 0.f : 1.f, dhidden,
            s.hidden, p.io);
  }
  if constexpr (kHalf) {
    const std::int64_t n = s.tokens * s.hidden;
    auto* out = static_cast<T*>(p.dhidden);
    const auto grid = [](std::int64_t packs) { return static_cast<unsigned>(std::min<std::int64_t>((packs + kThreads - 1) / kThreads, 8192)); };
    if (max_pack(sizeof(T), {n}, {dhidden, out}) == kMaxPack<T>) {
      convert_from_f32<T, kMaxPack<T>><<<grid(n / kMaxPack<T>), kThreads, 0, stream>>>(dhidden, out, n / kMaxPack<T>);
    } else {
      convert_from_f32<T, 1><<<grid(n), kThreads, 0, stream>>>(dhidden, out, n);
    }
    CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

void cross_entropy_fwd(const CrossEntropyFwdParams& p, cudaStream_t stream) {
  constexpr const char* op = "cross_entropy_fwd";
  check_shape(op, p.shape);
  require_io(op, p.io);
  if (p.shape.tokens == 0) return;
  require(op, p.hidden, "hidden");
  require(op, p.weight, "weight");
  require(op, p.targets, "targets");
  require(op, p.loss, "loss");
  require(op, p.lse, "lse");
  require(op, p.workspace, "workspace");
  require(op, p.cublas, "cublas");
  CUBLAS_CHECK(cublasSetStream(p.cublas, stream));
  dispatch_io(p.io, [&](auto tag) { fwd_typed<decltype(tag)>(p, stream); });
}

void cross_entropy_bwd(const CrossEntropyBwdParams& p, cudaStream_t stream) {
  constexpr const char* op = "cross_entropy_bwd";
  check_shape(op, p.shape);
  require_io(op, p.io);
  require(op, p.dweight, "dweight");
  if (p.shape.tokens == 0) {  // no token: dW is zero (d hidden is empty)
    CUDA_CHECK(cudaMemsetAsync(p.dweight, 0, static_cast<std::size_t>(p.shape.vocab * p.shape.hidden) * sizeof(float), stream));
    return;
  }
  require(op, p.hidden, "hidden");
  require(op, p.weight, "weight");
  require(op, p.targets, "targets");
  require(op, p.lse, "lse");
  require(op, p.dloss, "dloss");
  require(op, p.dhidden, "dhidden");
  require(op, p.workspace, "workspace");
  require(op, p.cublas, "cublas");
  CUBLAS_CHECK(cublasSetStream(p.cublas, stream));
  dispatch_io(p.io, [&](auto tag) { bwd_typed<decltype(tag)>(p, stream); });
}

void cross_entropy_logits_fwd(const CrossEntropyLogitsFwdParams& p, cudaStream_t stream) {
  constexpr const char* op = "cross_entropy_logits_fwd";
  require_range(op, "tokens", p.tokens, 0, kMaxDim);
  require_range(op, "vocab", p.vocab, 1, kMaxDim);
  require_io(op, p.io);
  if (p.tokens == 0) return;
  require(op, p.logits, "logits");
  require(op, p.targets, "targets");
  require(op, p.loss, "loss");
  require(op, p.lse, "lse");
  const Chunk ch{p.tokens, p.vocab, 0, p.vocab, static_cast<int>(p.vocab)};
  dispatch_io(p.io, [&](auto tag) {
    using T = decltype(tag);
    ce_chunk_stats<T><<<row_blocks(p.tokens), kThreads, 0, stream>>>(static_cast<const T*>(p.logits), ch, p.targets,
                                                                    nullptr, nullptr, p.loss, p.lse, true, true);
  });
  CUDA_CHECK_LAUNCH();
}

void cross_entropy_logits_bwd(const CrossEntropyLogitsBwdParams& p, cudaStream_t stream) {
  constexpr const char* op = "cross_entropy_logits_bwd";
  require_range(op, "tokens", p.tokens, 0, kMaxDim);
  require_range(op, "vocab", p.vocab, 1, kMaxDim);
  require_io(op, p.io);
  if (p.tokens == 0) return;
  require(op, p.logits, "logits");
  require(op, p.targets, "targets");
  require(op, p.lse, "lse");
  require(op, p.dloss, "dloss");
  require(op, p.dlogits, "dlogits");
  const Chunk ch{p.tokens, p.vocab, 0, p.vocab, static_cast<int>(p.vocab)};
  dispatch_io(p.io, [&](auto tag) {
    using T = decltype(tag);
    ce_chunk_grad<T, T><<<row_blocks(p.tokens), kThreads, 0, stream>>>(static_cast<const T*>(p.logits), ch, p.targets,
                                                                      p.lse, p.dloss, static_cast<T*>(p.dlogits));
  });
  CUDA_CHECK_LAUNCH();
}

}  // namespace seqscale
