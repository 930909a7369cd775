// CudaStrategyMath (see strategy_math_cuda.h). Row-major GEMMs go to column-major cuBLAS
// as C^T = op(B)^T op(A)^T: B is passed first and each transpose flag carries over, so
// nothing is copied or transposed. Attention operands with a row stride ld > d (heads
// interleaved in one row, LSS's [k | v] rows) are gathered into dense [rows, d] device
// buffers with 2D copies, and only those d columns are written back: the other columns
// of the host buffer (other heads, the other half of k|v) stay untouched, as on the host.
#include "comm/strategies/cuda/strategy_math_cuda.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>

#include "common/check_cublas.h"
#include "common/check_cuda.h"

namespace seqscale::comm {
namespace {

// ---- kernels --------------------------------------------------------------
// Softmax rows: one warp per row (the strategies' rows are 4..64 keys long).
constexpr int kWarp = 32, kRowsPerBlock = 4;

__device__ float warp_sum(float x) {
  for (int o = kWarp / 2; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}
__device__ float warp_max(float x) {
  for (int o = kWarp / 2; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}

// In place: each row of s [rows, cols] becomes softmax(row) (max-subtracted, as the host).
__global__ void softmax_rows(float* s, int rows, int cols) {
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  if (row >= rows) return;  // whole warps leave together: the shuffles below see full warps
  float* r = s + static_cast<std::size_t>(row) * cols;
  float mx = -INFINITY;
  for (int j = lane; j < cols; j += kWarp) mx = fmaxf(mx, r[j]);
  mx = warp_max(mx);
  float sum = 0.f;
  for (int j = lane; j < cols; j += kWarp) {
    const float e = expf(r[j] - mx);
    r[j] = e;
    sum += e;
  }
  sum = warp_sum(sum);
  for (int j = lane; j < cols; j += kWarp) r[j] /= sum;
}

// Softmax backward in place over dp: dS = P (dP - rowsum(P dP)). rowsum(P dP) equals
// rowsum(dO O) (O = P V) and needs no O; 1/sqrt(D) is left to the GEMMs' alpha.
__global__ void softmax_bwd_rows(const float* p, float* dp, int rows, int cols) {
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  if (row >= rows) return;
  const float* pr = p + static_cast<std::size_t>(row) * cols;
  float* dr = dp + static_cast<std::size_t>(row) * cols;
  float dot = 0.f;
  for (int j = lane; j < cols; j += kWarp) dot += pr[j] * dr[j];
  dot = warp_sum(dot);
  for (int j = lane; j < cols; j += kWarp) dr[j] = pr[j] * (dr[j] - dot);
}

// Adam, the host adam_step's formula in fp32; inv_bc1/2 = 1 / (1 - beta^step).
__global__ void adam(float* param, const float* grad, float* m, float* v, std::int64_t n, float lr, float beta1,
                     float beta2, float eps, float inv_bc1, float inv_bc2) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float g = grad[i];
    const float mi = beta1 * m[i] + (1.f - beta1) * g, vi = beta2 * v[i] + (1.f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] -= lr * (mi * inv_bc1) / (sqrtf(vi * inv_bc2) + eps);
  }
}

// ---- CudaStrategyMath -----------------------------------------------------
class CudaStrategyMath final : public StrategyMath {
 public:
  explicit CudaStrategyMath(void* stream) {
    CUBLAS_CHECK(cublasCreate(&blas_));
    if (stream) {
      stream_ = static_cast<cudaStream_t>(stream);
    } else {
      CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
      own_stream_ = true;
    }
    CUBLAS_CHECK(cublasSetStream(blas_, stream_));
  }
  // Destructors must not throw: teardown results are not checked (as GemmRunner's).
  ~CudaStrategyMath() override {
    if (scratch_) (void)cudaFree(scratch_);
    (void)cublasDestroy(blas_);
    if (own_stream_) (void)cudaStreamDestroy(stream_);
  }
  CudaStrategyMath(const CudaStrategyMath&) = delete;
  CudaStrategyMath& operator=(const CudaStrategyMath&) = delete;

  void matmul(const float* a, const float* b, float* c, int m, int k, int n, bool acc) override {
    gemm_host(false, false, m, n, k, a, b, c, acc);  // C[m,n] = A[m,k] B[k,n]
  }
  void matmul_tn(const float* a, const float* b, float* c, int m, int k, int n, bool acc) override {
    gemm_host(true, false, k, n, m, a, b, c, acc);  // C[k,n] = A[m,k]^T B[m,n]
  }
  void matmul_nt(const float* a, const float* b, float* c, int m, int n, int k, bool acc) override {
    gemm_host(false, true, m, k, n, a, b, c, acc);  // C[m,k] = A[m,n] B[k,n]^T
  }

  void attention_fwd(const float* q, const float* k, const float* v, float* o, int lq, int lk, int d,
                     int ld) override {
    if (lq <= 0 || lk <= 0 || d <= 0) return;
    const std::size_t nq = rows_of(lq, d), nk = rows_of(lk, d);
    auto [dev_q, dev_k, dev_v, p, dev_o] = carve<5>({nq, nk, nk, rows_of(lq, lk), nq});
    upload_rows(dev_q, q, lq, d, ld);
    upload_rows(dev_k, k, lk, d, ld);
    upload_rows(dev_v, v, lk, d, ld);
    probs(dev_q, dev_k, p, lq, lk, d);
    gemm(false, false, lq, d, lk, 1.f, p, lk, dev_v, d, 0.f, dev_o, d);  // O = P V
    download_rows(o, dev_o, lq, d, ld);
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  void attention_bwd(const float* q, const float* k, const float* v, const float* dout, float* dq, float* dk,
                     float* dv, int lq, int lk, int d, int ld) override {
    if (lq <= 0 || lk <= 0 || d <= 0) return;
    const std::size_t nq = rows_of(lq, d), nk = rows_of(lk, d), ns = rows_of(lq, lk);
    auto [dev_q, dev_k, dev_v, dev_do, dev_dq, dev_dk, dev_dv, p, ds] =
        carve<9>({nq, nk, nk, nq, nq, nk, nk, ns, ns});
    upload_rows(dev_q, q, lq, d, ld);
    upload_rows(dev_k, k, lk, d, ld);
    upload_rows(dev_v, v, lk, d, ld);
    upload_rows(dev_do, dout, lq, d, ld);
    upload_rows(dev_dq, dq, lq, d, ld);  // the gradients accumulate (beta = 1), as on the host
    upload_rows(dev_dk, dk, lk, d, ld);
    upload_rows(dev_dv, dv, lk, d, ld);
    probs(dev_q, dev_k, p, lq, lk, d);
    gemm(false, true, lq, lk, d, 1.f, dev_do, d, dev_v, d, 0.f, ds, lk);  // dP = dO V^T
    softmax_bwd_rows<<<row_blocks(lq), kWarp * kRowsPerBlock, 0, stream_>>>(p, ds, lq, lk);
    CUDA_CHECK_LAUNCH();
    const float scale = inv_sqrt(d);
    gemm(false, false, lq, d, lk, scale, ds, lk, dev_k, d, 1.f, dev_dq, d);  // dQ += dS K / sqrt(D)
    gemm(true, false, lk, d, lq, scale, ds, lk, dev_q, d, 1.f, dev_dk, d);   // dK += dS^T Q / sqrt(D)
    gemm(true, false, lk, d, lq, 1.f, p, lk, dev_do, d, 1.f, dev_dv, d);     // dV += P^T dO
    download_rows(dq, dev_dq, lq, d, ld);
    download_rows(dk, dev_dk, lk, d, ld);
    download_rows(dv, dev_dv, lk, d, ld);
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  void adam_step(float* param, const float* grad, float* m, float* v, std::int64_t n, int step,
                 const AdamConfig& c) override {
    if (n <= 0) return;
    const auto sn = static_cast<std::size_t>(n);
    auto [dev_p, dev_g, dev_m, dev_v] = carve<4>({sn, sn, sn, sn});
    upload(dev_p, param, sn);
    upload(dev_g, grad, sn);
    upload(dev_m, m, sn);
    upload(dev_v, v, sn);
    const double bc1 = 1.0 - std::pow(c.beta1, step), bc2 = 1.0 - std::pow(c.beta2, step);
    const int threads = 256;
    const auto blocks = static_cast<unsigned>(std::min<std::int64_t>((n + threads - 1) / threads, 65535));
    adam<<<blocks, threads, 0, stream_>>>(dev_p, dev_g, dev_m, dev_v, n, c.lr, c.beta1, c.beta2, c.eps,
                                          static_cast<float>(1.0 / bc1), static_cast<float>(1.0 / bc2));
    CUDA_CHECK_LAUNCH();
    download(param, dev_p, sn);
    download(m, dev_m, sn);
    download(v, dev_v, sn);
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

 private:
  static std::size_t rows_of(int rows, int cols) { return static_cast<std::size_t>(rows) * cols; }
  static float inv_sqrt(int d) { return static_cast<float>(1.0 / std::sqrt(static_cast<double>(d))); }
  static unsigned row_blocks(int rows) { return static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock); }

  // Consecutive device buffers of these sizes (floats) from the grow-only scratch; each
  // starts on a 256-byte boundary. Valid until the next call.
  template <std::size_t N>
  std::array<float*, N> carve(const std::array<std::size_t, N>& sizes) {
    constexpr std::size_t kAlign = 64;  // floats
    std::array<std::size_t, N> offset{};
    std::size_t total = 0;
    for (std::size_t i = 0; i < N; ++i) {
      offset[i] = total;
      total += (sizes[i] + kAlign - 1) / kAlign * kAlign;
    }
    if (total > capacity_) {
      CUDA_CHECK(cudaStreamSynchronize(stream_));
      if (scratch_) CUDA_CHECK(cudaFree(scratch_));
      scratch_ = nullptr;
      capacity_ = 0;
      CUDA_CHECK(cudaMalloc(&scratch_, total * sizeof(float)));
      capacity_ = total;
    }
    std::array<float*, N> out{};
    for (std::size_t i = 0; i < N; ++i) out[i] = scratch_ + offset[i];
    return out;
  }

  void upload(float* dst, const float* src, std::size_t n) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyHostToDevice, stream_));
  }
  void download(float* dst, const float* src, std::size_t n) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  }
  // rows x d floats, `ld` apart on the host, dense on the device.
  void upload_rows(float* dst, const float* src, int rows, int d, int ld) {
    CUDA_CHECK(cudaMemcpy2DAsync(dst, d * sizeof(float), src, ld * sizeof(float), d * sizeof(float), rows,
                                 cudaMemcpyHostToDevice, stream_));
  }
  void download_rows(float* dst, const float* src, int rows, int d, int ld) {
    CUDA_CHECK(cudaMemcpy2DAsync(dst, ld * sizeof(float), src, d * sizeof(float), d * sizeof(float), rows,
                                 cudaMemcpyDeviceToHost, stream_));
  }

  // Row-major C[M,N] = alpha op(A) op(B) + beta C on device, op(A) M x K, lda/ldb/ldc the
  // row strides of A, B, C as stored. beta == 0: C is not read.
  void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* a, int lda, const float* b, int ldb,
            float beta, float* c, int ldc) {
    CUBLAS_CHECK(cublasGemmEx(blas_, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha,
                              b, CUDA_R_32F, ldb, a, CUDA_R_32F, lda, &beta, c, CUDA_R_32F, ldc,
                              CUBLAS_COMPUTE_32F_PEDANTIC, CUBLAS_GEMM_DEFAULT));
  }
  // The same on host operands, stored densely (A is [M,K] or, transposed, [K,M]).
  void gemm_host(bool ta, bool tb, int M, int N, int K, const float* a, const float* b, float* c, bool acc) {
    if (M <= 0 || N <= 0) return;
    const std::size_t nc = rows_of(M, N);
    if (K <= 0) {  // an empty sum: C = 0, or unchanged when accumulating
      if (!acc) std::fill_n(c, nc, 0.f);
      return;
    }
    auto [da, db, dc] = carve<3>({rows_of(M, K), rows_of(K, N), nc});
    upload(da, a, rows_of(M, K));
    upload(db, b, rows_of(K, N));
    if (acc) upload(dc, c, nc);
    gemm(ta, tb, M, N, K, 1.f, da, ta ? M : K, db, tb ? K : N, acc ? 1.f : 0.f, dc, N);
    download(c, dc, nc);
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  // P = softmax(Q K^T / sqrt(D)) into p [lq, lk]; q, k dense [rows, d].
  void probs(const float* q, const float* k, float* p, int lq, int lk, int d) {
    gemm(false, true, lq, lk, d, inv_sqrt(d), q, d, k, d, 0.f, p, lk);
    softmax_rows<<<row_blocks(lq), kWarp * kRowsPerBlock, 0, stream_>>>(p, lq, lk);
    CUDA_CHECK_LAUNCH();
  }

  cublasHandle_t blas_ = nullptr;
  cudaStream_t stream_ = nullptr;
  bool own_stream_ = false;
  float* scratch_ = nullptr;
  std::size_t capacity_ = 0;  // floats
};

}  // namespace

std::unique_ptr<StrategyMath> make_cuda_strategy_math(void* cuda_stream) {
  return std::make_unique<CudaStrategyMath>(cuda_stream);
}

}  // namespace seqscale::comm
