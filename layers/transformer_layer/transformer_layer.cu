// The CUDA backend of the GPT layer and stack (transformer_layer.cuh says what runs where).
// Small kernels first (grid-stride elementwise, one block per row for the softmaxes), then
// the Ops methods in the contract's order, then the whole runs the GPU tests call.
#include "layers/transformer_layer/transformer_layer.cuh"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

#include "common/check_cublas.h"
#include "common/check_cuda.h"
#include "common/half.h"
#include "kernels/bias_gelu/bias_gelu.cuh"
#include "kernels/bias_gelu/bias_gelu_cost.h"
#include "kernels/causal_attention/causal_attention.cuh"
#include "kernels/common/convert.cuh"
#include "kernels/common/elementwise.cuh"
#include "kernels/common/launch.cuh"
#include "kernels/gemm/gemm.cuh"
#include "kernels/layernorm/layernorm.cuh"
#include "kernels/layernorm/layernorm_cost.h"
#include "kernels/rmsnorm/rmsnorm.cuh"
#include "kernels/rmsnorm/rmsnorm_cost.h"
#include "kernels/rotary/rotary.cuh"
#include "kernels/softmax/softmax.cuh"
#include "kernels/swiglu/swiglu.cuh"

namespace seqscale {

namespace {

constexpr float kNormEps = 1e-5f;        // the reference's (transformer_layer_cpu.cpp), LayerNorm and RMSNorm
constexpr double kRotaryBase = 10000.0;  // GPT-NeoX rotary_emb_base
constexpr std::size_t kLtWorkspaceBytes = std::size_t{32} << 20;  // cuBLASLt's on Hopper (kernels/gemm/gemm_cost.h)

// ---- kernels ---------------------------------------------------------------------------------

template <typename T>
__global__ void to_fp32_kernel(const T* x, float* y, std::int64_t n) {
  SEQSCALE_GRID_STRIDE(i, n) y[i] = load_f32(x, i);
}

__device__ float block_reduce_sum(float v, float* scratch) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  float total = 0.f;
  for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) total += scratch[w];
  __syncthreads();  // scratch reused by the next call
  return total;
}
__device__ float block_reduce_max(float v, float* scratch) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  float m = -INFINITY;
  for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) m = fmaxf(m, scratch[w]);
  __syncthreads();
  return m;
}

// One block per row (b, h, i) of [b, H, s, s]: the kept entries are j <= i without a mask
// tensor, else mask[i][j] (bool != 0, fp32 > 0.5). Masked entries are written as zeros.
// Three passes over the row (max, sum, write); a row is at most 64 KiB in bf16 at s = 32K,
// so the second and third passes read L2.
template <typename T, typename M>
__global__ void masked_softmax_kernel(const T* x, const M* mask, T* y, std::int64_t seq) {
  __shared__ float scratch[kElementwiseThreads / 32];
  const std::int64_t row = blockIdx.x;
  const std::int64_t i = row % seq;
  const T* xr = x + row * seq;
  T* yr = y + row * seq;
  const auto keep = [&](std::int64_t j) {
    if (mask == nullptr) return j <= i;
    return static_cast<float>(mask[i * seq + j]) > 0.5f;
  };
  float mx = -INFINITY;
  for (std::int64_t j = threadIdx.x; j < seq; j += blockDim.x)
    if (keep(j)) mx = fmaxf(mx, load_f32(xr, j));
  mx = block_reduce_max(mx, scratch);
  float sum = 0.f;
  for (std::int64_t j = threadIdx.x; j < seq; j += blockDim.x)
    if (keep(j)) sum += __expf(load_f32(xr, j) - mx);
  sum = block_reduce_sum(sum, scratch);
  const float inv = sum > 0.f ? 1.f / sum : 0.f;
  for (std::int64_t j = threadIdx.x; j < seq; j += blockDim.x)
    store_f32(yr, j, keep(j) ? __expf(load_f32(xr, j) - mx) * inv : 0.f);
}

// y [blocks, outer, inner] = x [outer, blocks, inner], or back (inverse), elements moved as
// raw words of their size.
template <typename W>
__global__ void transpose_blocks_kernel(const W* x, W* y, std::int64_t outer, std::int64_t blocks, std::int64_t inner,
                                        bool inverse) {
  SEQSCALE_GRID_STRIDE(e, outer * blocks * inner) {
    const std::int64_t c = e % inner, rest = e / inner;
    // e indexes the [outer, blocks, inner] side: (o, b, c).
    const std::int64_t b = rest % blocks, o = rest / blocks;
    const std::int64_t t = (b * outer + o) * inner + c;  // the [blocks, outer, inner] side
    if (inverse) y[e] = x[t];
    else y[t] = x[e];
  }
}

template <typename M>
__global__ void causal_mask_kernel(M* mask, std::int64_t seq) {
  SEQSCALE_GRID_STRIDE(e, seq * seq) mask[e] = static_cast<M>(e % seq <= e / seq ? 1 : 0);
}

// x[r] = E[tok[r] - vocab_start] (a zero row for an id in another rank's slice) + P[r % s].
template <typename T>
__global__ void embedding_fwd_kernel(const T* table, const T* pos, const std::int32_t* tokens, T* x, std::int64_t rows,
                                     std::int64_t seq_local, std::int64_t h, std::int64_t vocab_start,
                                     std::int64_t table_rows) {
  SEQSCALE_GRID_STRIDE(e, rows * h) {
    const std::int64_t r = e / h, c = e % h;
    const std::int64_t id = static_cast<std::int64_t>(tokens[r]) - vocab_start;
    float v = id >= 0 && id < table_rows ? load_f32(table, id * h + c) : 0.f;
    if (pos) v += load_f32(pos, (r % seq_local) * h + c);
    store_f32(x, e, v);
  }
}

// dE[tok[r] - vocab_start] += dx[r] for ids in this slice (rows sharing a token add up:
// fp32 atomics); dP[r % s] += dx[r] (dP zeroed first).
template <typename T>
__global__ void embedding_bwd_kernel(const T* dx, const std::int32_t* tokens, float* dtable, float* dpos,
                                     std::int64_t rows, std::int64_t seq_local, std::int64_t h, std::int64_t vocab_start,
                                     std::int64_t table_rows) {
  SEQSCALE_GRID_STRIDE(e, rows * h) {
    const std::int64_t r = e / h, c = e % h;
    const float g = load_f32(dx, e);
    const std::int64_t id = static_cast<std::int64_t>(tokens[r]) - vocab_start;
    if (id >= 0 && id < table_rows) atomicAdd(dtable + id * h + c, g);
    if (dpos) atomicAdd(dpos + (r % seq_local) * h + c, g);
  }
}

// The online softmax's step for one chunk of columns [col0, col0 + cols): one block a row.
template <typename T>
__global__ void ce_chunk_fwd_kernel(const T* logits, const std::int32_t* targets, float* run_max, float* run_sum,
                                    float* target_logit, std::int64_t cols, std::int64_t col0, bool first) {
  __shared__ float scratch[kElementwiseThreads / 32];
  const std::int64_t r = blockIdx.x;
  const T* z = logits + r * cols;
  float cmax = -INFINITY;
  for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) cmax = fmaxf(cmax, load_f32(z, c));
  cmax = block_reduce_max(cmax, scratch);
  const float old_max = first ? -INFINITY : run_max[r];
  const float mx = fmaxf(old_max, cmax);
  float sum = 0.f;
  for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) sum += __expf(load_f32(z, c) - mx);
  sum = block_reduce_sum(sum, scratch);
  if (threadIdx.x == 0) {
    // Rescale what was summed under the old maximum (exp(-inf) = 0 on the first chunk).
    const float old_sum = first ? 0.f : run_sum[r] * __expf(old_max - mx);
    run_max[r] = mx;
    run_sum[r] = old_sum + sum;
    // Zero unless the target is in this rank's columns: the vocab-parallel loss sums the
    // target logit over the slices (the first chunk clears what the others keep).
    const std::int64_t t = static_cast<std::int64_t>(targets[r]) - col0;
    if (t >= 0 && t < cols) target_logit[r] = load_f32(z, t);
    else if (first) target_logit[r] = 0.f;
  }
}

__global__ void ce_rescale_kernel(const float* local_max, const float* global_max, float* run_sum, std::int64_t rows) {
  SEQSCALE_GRID_STRIDE(r, rows) run_sum[r] *= __expf(local_max[r] - global_max[r]);
}

// lse = max + log(sum) per row and the mean loss, in one block (rows in a fixed order per
// thread, then the block sum: deterministic), accumulated in double.
__global__ void ce_finish_kernel(const float* run_max, const float* run_sum, const float* target_logit, float* lse,
                                 float* loss, std::int64_t rows) {
  __shared__ double partial[kElementwiseThreads];
  double acc = 0;
  for (std::int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
    const float l = run_max[r] + logf(run_sum[r]);
    lse[r] = l;
    acc += static_cast<double>(l) - static_cast<double>(target_logit[r]);
  }
  partial[threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0;
    for (int t = 0; t < static_cast<int>(blockDim.x); ++t) total += partial[t];
    loss[0] = static_cast<float>(total / static_cast<double>(rows));
  }
}

template <typename T>
__global__ void ce_chunk_bwd_kernel(T* logits, const std::int32_t* targets, const float* lse, std::int64_t rows,
                                    std::int64_t cols, std::int64_t col0, float scale) {
  SEQSCALE_GRID_STRIDE(e, rows * cols) {
    const std::int64_t r = e / cols, c = e % cols;
    const float onehot = static_cast<std::int64_t>(targets[r]) - col0 == c ? 1.f : 0.f;
    store_f32(logits, e, scale * (__expf(load_f32(logits, e) - lse[r]) - onehot));
  }
}

// Adam with bias correction on fp32 master weights; w (the I/O dtype) = the new master.
template <typename T>
__global__ void adam_kernel(T* w, const float* dw, float* master, float* m, float* v, std::int64_t n, float lr,
                            float beta1, float beta2, float eps, float c1, float c2) {
  SEQSCALE_GRID_STRIDE(i, n) {
    const float g = dw[i];
    const float mi = beta1 * m[i] + (1.f - beta1) * g;
    const float vi = beta2 * v[i] + (1.f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float p = master[i] - lr * (mi / c1) / (sqrtf(vi / c2) + eps);
    master[i] = p;
    store_f32(w, i, p);
  }
}

#undef SEQSCALE_GRID_STRIDE

using Ops = TransformerCudaOps;

// fn(T{}) for a tensor stored in the I/O dtype (fp32 or bf16).
template <typename Fn>
void by_io(DType t, Fn&& fn) {
  switch (t) {
    case DType::kFp32: fn(float{}); return;
    case DType::kBf16: fn(__nv_bfloat16{}); return;
    default: throw std::invalid_argument("transformer layer (cuda): io tensors are fp32 or bf16, got " + std::string(dtype_name(t)));
  }
}

template <typename T> T* as(const Ops::Tensor& t) { return static_cast<T*>(t.p); }

void expect(bool ok, const char* op, const std::string& what) {
  if (!ok) throw std::logic_error(std::string("transformer layer (cuda): ") + op + ": " + what);
}

}  // namespace

// ---- allocation ------------------------------------------------------------------------------

Ops::TransformerCudaOps(cudaStream_t stream, DType io, AllocFn alloc, FreeFn free)
    : stream_(stream), io_(io), alloc_(std::move(alloc)), free_(std::move(free)) {
  if (io != DType::kFp32 && io != DType::kBf16) {
    throw std::invalid_argument("dtype: the CUDA transformer layer runs bf16 or fp32, got '" + std::string(dtype_name(io)) + "'");
  }
}

// Runs while a CUDA_CHECK exception unwinds (an illegal address, an oom): nothing may
// escape, or the point reads "crashed" instead of carrying the CUDA error. Teardown results
// are not checked (after a sticky error every call returns it again).
Ops::~TransformerCudaOps() {
  // After a sticky error every free fails alike: the first says why, then a count.
  std::int64_t failed = 0;
  for (const auto& [p, bytes] : owned_) {
    try {
      raw_free(p);
    } catch (const std::exception& e) {
      if (failed++ == 0) std::fprintf(stderr, "seqscale: transformer layer: free failed during teardown: %s\n", e.what());
    } catch (...) {
      if (failed++ == 0) std::fprintf(stderr, "seqscale: transformer layer: free failed during teardown\n");
    }
  }
  if (failed > 1) std::fprintf(stderr, "seqscale: transformer layer: %lld frees failed in all\n", static_cast<long long>(failed));
  lt_.reset();
  if (lt_workspace_) (void)cudaFreeAsync(lt_workspace_, stream_);
  if (cublas_) (void)cublasDestroy(cublas_);
}

cublasHandle_t Ops::cublas() {
  if (!cublas_) {
    CUBLAS_CHECK(cublasCreate(&cublas_));
    // fp32 I/O is the strict configuration: no TF32 (as PyTorch's default), so the error
    // against the reference is accumulation order only.
    if (io_ == DType::kFp32) CUBLAS_CHECK(cublasSetMathMode(cublas_, CUBLAS_PEDANTIC_MATH));
    CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
  }
  return cublas_;
}

// The bench hands its stream to every timed call: the same stream is a no-op
// (cublasSetStream would reset cuBLAS's workspace each time). A new stream waits for the
// old one: memory allocated and freed stream-ordered there must be ready before it is used.
void Ops::set_stream(cudaStream_t stream) {
  if (stream == stream_) return;
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  stream_ = stream;
  if (cublas_) CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
}

void Ops::synchronize() { CUDA_CHECK(cudaStreamSynchronize(stream_)); }

void* Ops::raw_alloc(std::size_t bytes) {
  if (alloc_) return alloc_(bytes);
  void* p = nullptr;
  CUDA_CHECK(cudaMallocAsync(&p, bytes, stream_));
  return p;
}

void Ops::raw_free(void* p) {
  if (free_) free_(p);
  else CUDA_CHECK(cudaFreeAsync(p, stream_));
}

Ops::Tensor Ops::alloc(std::int64_t n, Elem elem, MemoryKind kind, const char* what) {
  if (n <= 0) throw std::invalid_argument(std::string("transformer layer: empty tensor ") + what);
  const DType t = elem == Elem::kIo ? io_ : elem == Elem::kFp32 ? DType::kFp32 : elem == Elem::kBool ? DType::kBool : DType::kInt32;
  const std::int64_t bytes = n * dtype_bytes(t);
  Tensor x{raw_alloc(static_cast<std::size_t>(bytes)), n, elem, t};
  owned_[x.p] = bytes;
  tensor_live_ += bytes;
  total_live_ += bytes;
  tensor_peak_ = std::max(tensor_peak_, tensor_live_);
  total_peak_ = std::max(total_peak_, total_live_);
  // Adam's moments start at zero (the def: "the backends zero-fill"). Nothing else is read
  // before it is written, so activations are not cleared: a memset per tensor would be
  // timed inside every step.
  if (kind == MemoryKind::kOptimizerStates) CUDA_CHECK(cudaMemsetAsync(x.p, 0, static_cast<std::size_t>(bytes), stream_));
  return x;
}

void Ops::release(Tensor& t) {
  auto it = owned_.find(t.p);
  if (it == owned_.end()) throw std::logic_error("transformer layer: release of a tensor the backend does not own");
  tensor_live_ -= it->second;
  total_live_ -= it->second;
  owned_.erase(it);
  raw_free(t.p);
  t = Tensor{};
}

Ops::Tensor Ops::workspace(std::int64_t bytes, const char* what) {
  if (bytes <= 0) return Tensor{};
  Tensor x{raw_alloc(static_cast<std::size_t>(bytes)), (bytes + 3) / 4, Elem::kFp32, DType::kFp32};
  (void)what;
  owned_[x.p] = bytes;
  total_live_ += bytes;
  total_peak_ = std::max(total_peak_, total_live_);
  max_workspace_ = std::max(max_workspace_, bytes);
  return x;
}

void Ops::release_workspace(Tensor& t) {
  if (!t.p) return;
  auto it = owned_.find(t.p);
  if (it == owned_.end()) throw std::logic_error("transformer layer: release of a workspace the backend does not own");
  total_live_ -= it->second;
  owned_.erase(it);
  raw_free(t.p);
  t = Tensor{};
}

// ---- norms -----------------------------------------------------------------------------------

void Ops::layernorm_fwd(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, Tensor& mean, Tensor& rstd,
                        std::int64_t rows, std::int64_t cols) {
  LayerNormFwdParams p;
  p.x = x.p;
  p.weight = w.p;
  p.bias = b.p;
  p.y = y.p;
  p.mean = as<float>(mean);
  p.rstd = as<float>(rstd);
  p.rows = rows;
  p.cols = cols;
  p.eps = kNormEps;
  p.io = io_;
  seqscale::layernorm_fwd(p, stream_);
}

void Ops::layernorm_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                        Tensor& dx, Tensor& dw, Tensor& db, std::int64_t rows, std::int64_t cols) {
  Tensor ws = workspace(layernorm_bwd_cost(rows, cols, io_).workspace_bytes, "layernorm_bwd_partials");
  LayerNormBwdParams p;
  p.dy = dy.p;
  p.x = x.p;
  p.weight = w.p;
  p.mean = as<float>(mean);
  p.rstd = as<float>(rstd);
  p.dx = dx.p;
  p.dweight = as<float>(dw);
  p.dbias = as<float>(db);
  p.workspace = as<float>(ws);
  p.rows = rows;
  p.cols = cols;
  p.io = io_;
  seqscale::layernorm_bwd(p, stream_);
  release_workspace(ws);
}

void Ops::rmsnorm_fwd(const Tensor& x, const Tensor& w, Tensor& y, Tensor& rstd, std::int64_t rows, std::int64_t cols) {
  RmsNormFwdParams p;
  p.x = x.p;
  p.weight = w.p;
  p.y = y.p;
  p.rstd = as<float>(rstd);
  p.rows = rows;
  p.cols = cols;
  p.eps = kNormEps;
  p.io = io_;
  seqscale::rmsnorm_fwd(p, stream_);
}

void Ops::rmsnorm_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, Tensor& dx, Tensor& dw,
                      std::int64_t rows, std::int64_t cols) {
  Tensor ws = workspace(rmsnorm_bwd_cost(rows, cols, io_).workspace_bytes, "rmsnorm_bwd_partials");
  RmsNormBwdParams p;
  p.dy = dy.p;
  p.x = x.p;
  p.weight = w.p;
  p.rstd = as<float>(rstd);
  p.dx = dx.p;
  p.dweight = as<float>(dw);
  p.workspace = as<float>(ws);
  p.rows = rows;
  p.cols = cols;
  p.io = io_;
  seqscale::rmsnorm_bwd(p, stream_);
  release_workspace(ws);
}

// ---- GEMMs -----------------------------------------------------------------------------------

// Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
void Ops::gemm_strided(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const void* a,
                       DType at, std::int64_t lda, std::int64_t stride_a, const void* b, DType bt, std::int64_t ldb,
                       std::int64_t stride_b, double beta, void* c, DType ct, std::int64_t ldc, std::int64_t stride_c,
                       std::int64_t batch) {
  expect(at == bt, "gemm", "operands of different dtypes");
  constexpr std::int64_t kIntMax = 2147483647;
  for (const auto& [name, v] : {std::pair{"m", m}, {"n", n}, {"k", k}, {"lda", lda}, {"ldb", ldb}, {"ldc", ldc},
                                {"batch", batch}}) {
    if (v > kIntMax) expect(false, "gemm", std::string(name) + " = " + std::to_string(v) + " exceeds cuBLAS's int");
  }
  const float al = static_cast<float>(alpha), be = static_cast<float>(beta);
  CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      cublas(), tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m),
      static_cast<int>(k), &al, b, cuda_data_type(bt), static_cast<int>(ldb), stride_b, a, cuda_data_type(at),
      static_cast<int>(lda), stride_a, &be, c, cuda_data_type(ct), static_cast<int>(ldc), stride_c,
      static_cast<int>(batch), at == DType::kFp32 ? CUBLAS_COMPUTE_32F_PEDANTIC : CUBLAS_COMPUTE_32F,
      CUBLAS_GEMM_DEFAULT));
}

// C in the I/O dtype, or fp32 for a weight gradient (bf16 x bf16 -> fp32: Megatron's main_grad).
void Ops::gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const Tensor& a,
               const Tensor& b, double beta, Tensor& c) {
  gemm_strided(ta, tb, m, n, k, alpha, a.p, a.t, ta ? m : k, 0, b.p, b.t, tb ? k : n, 0, beta, c.p, c.t, n, 0, 1);
}

// ---- elementwise -----------------------------------------------------------------------------

void Ops::bias_add(Tensor& y, const Tensor& b, std::int64_t rows, std::int64_t cols) {
  by_io(y.t, [&](auto tag) {
    using T = decltype(tag);
    bias_add_kernel<T><<<elementwise_blocks(rows * cols), kElementwiseThreads, 0, stream_>>>(as<T>(y), as<T>(b), rows, cols);
  });
  CUDA_CHECK_LAUNCH();
}

void Ops::bias_grad(const Tensor& dy, Tensor& db, std::int64_t rows, std::int64_t cols) {
  expect(db.t == DType::kFp32, "bias_grad", "bias gradients are fp32");
  CUDA_CHECK(cudaMemsetAsync(db.p, 0, static_cast<std::size_t>(cols) * sizeof(float), stream_));
  const dim3 grid(static_cast<unsigned>((cols + 127) / 128), static_cast<unsigned>(std::min<std::int64_t>(rows, 256)));
  by_io(dy.t, [&](auto tag) {
    using T = decltype(tag);
    bias_grad_kernel<T><<<grid, 128, 0, stream_>>>(as<T>(dy), as<float>(db), rows, cols);
  });
  CUDA_CHECK_LAUNCH();
}

// ---- fused GEMMs: cuBLASLt epilogues, or the GEMM and the elementwise kernels apart ----------

// 16-bit I/O only: fp32 is the strict configuration whose error against the reference is
// accumulation order only, and cuBLASLt's GELU is its own evaluation. The runner's 32 MiB
// workspace comes from the device's current pool, like cuBLAS's own (the harness reports
// it as library_pool_peak_bytes, apart from the def's tensors).
bool Ops::try_fused(const GemmParams& p) {
  if (!epilogues_ || io_ == DType::kFp32) return false;
  if (!lt_) {
    CUDA_CHECK(cudaMallocAsync(&lt_workspace_, kLtWorkspaceBytes, stream_));
    lt_ = std::make_unique<GemmRunner>(lt_workspace_, kLtWorkspaceBytes);
  }
  const bool ran = lt_->try_run(p, stream_);
  ++(ran ? fused_gemms_ : unfused_gemms_);
  return ran;
}

void Ops::gemm_bias(std::int64_t m, std::int64_t n, std::int64_t k, const Tensor& a, const Tensor& w, const Tensor& b,
                    Tensor& c) {
  GemmParams p{a.p, w.p, c.p, m, n, k, io_};
  p.epilogue = GemmEpilogue::kBias;
  p.bias = b.p;
  if (try_fused(p)) return;
  gemm(false, false, m, n, k, 1.0, a, w, 0.0, c);
  bias_add(c, b, m, n);
}

void Ops::gemm_gelu(std::int64_t m, std::int64_t n, std::int64_t k, const Tensor& a, const Tensor& w, const Tensor* b,
                    Tensor& u, Tensor& out) {
  GemmParams p{a.p, w.p, out.p, m, n, k, io_};
  p.epilogue = GemmEpilogue::kGeluAux;
  p.bias = b ? b->p : nullptr;
  p.aux = u.p;
  if (try_fused(p)) return;
  // Apart: u = A W, out = gelu(u + b) (kernels/bias_gelu; a zero bias when there is
  // none), then u += b.
  gemm(false, false, m, n, k, 1.0, a, w, 0.0, u);
  Tensor zero = b ? Tensor{} : workspace(n * dtype_bytes(io_), "gelu_zero_bias");
  if (!b) CUDA_CHECK(cudaMemsetAsync(zero.p, 0, static_cast<std::size_t>(n * dtype_bytes(io_)), stream_));
  BiasGeluFwdParams g;
  g.x = u.p;
  g.bias = b ? b->p : zero.p;
  g.y = out.p;
  g.rows = m;
  g.cols = n;
  g.io = io_;
  seqscale::bias_gelu_fwd(g, stream_);
  if (b) bias_add(u, *b, m, n);
  release_workspace(zero);
}

void Ops::gemm_dgelu(std::int64_t m, std::int64_t n, std::int64_t k, const Tensor& da, const Tensor& w, const Tensor& u,
                     Tensor& du, Tensor* db) {
  expect(!db || db->t == DType::kFp32, "gemm_dgelu", "bias gradients are fp32");
  GemmParams p{da.p, w.p, du.p, m, n, k, io_};
  p.trans_b = true;
  p.epilogue = GemmEpilogue::kDGeluBgrad;
  p.aux = u.p;
  // cuBLASLt writes the bias gradient in the output's dtype: a transient [n], widened to
  // the fp32 gradient after (only where the epilogue may run).
  const bool may_fuse = epilogues_ && io_ != DType::kFp32;
  Tensor db_io = db && may_fuse ? workspace(n * dtype_bytes(io_), "dgelu_bias_grad") : Tensor{};
  p.bias_grad = db_io.p;
  if (try_fused(p)) {
    if (db) {
      by_io(io_, [&](auto tag) {
        using T = decltype(tag);
        to_fp32_kernel<T><<<elementwise_blocks(n), kElementwiseThreads, 0, stream_>>>(static_cast<const T*>(db_io.p),
                                                                                      as<float>(*db), n);
      });
      CUDA_CHECK_LAUNCH();
    }
    release_workspace(db_io);
    return;
  }
  release_workspace(db_io);
  // Apart: du = dA W^T, then du *= gelu'(u) in place (kernels/bias_gelu with a zero bias:
  // u already holds it) with the fp32 column sums into db.
  gemm(false, true, m, n, k, 1.0, da, w, 0.0, du);
  // One workspace: the zero bias, then (with db) the kernel's fp32 partials, 256-aligned.
  const std::int64_t zero_bytes = (n * dtype_bytes(io_) + 255) / 256 * 256;
  const std::int64_t partial_bytes = db ? bias_gelu_bwd_cost(m, n, io_).workspace_bytes : 0;
  Tensor ws = workspace(zero_bytes + partial_bytes, "dgelu_apart");
  CUDA_CHECK(cudaMemsetAsync(ws.p, 0, static_cast<std::size_t>(zero_bytes), stream_));
  BiasGeluBwdParams g;
  g.dy = du.p;
  g.x = u.p;
  g.bias = ws.p;
  g.dx = du.p;
  g.dbias = db ? as<float>(*db) : nullptr;
  g.workspace = db ? reinterpret_cast<float*>(static_cast<char*>(ws.p) + zero_bytes) : nullptr;
  g.rows = m;
  g.cols = n;
  g.io = io_;
  seqscale::bias_gelu_bwd(g, stream_);
  release_workspace(ws);
}

void Ops::swiglu_fwd(const Tensor& gu, Tensor& a, std::int64_t rows, std::int64_t f) {
  SwiGluFwdParams p;
  p.x = gu.p;
  p.y = a.p;
  p.rows = rows;
  p.ffn = f;
  p.io = io_;
  seqscale::swiglu_fwd(p, stream_);
}

void Ops::swiglu_bwd(const Tensor& da, const Tensor& gu, Tensor& dgu, std::int64_t rows, std::int64_t f) {
  SwiGluBwdParams p;
  p.dy = da.p;
  p.x = gu.p;
  p.dx = dgu.p;
  p.rows = rows;
  p.ffn = f;
  p.io = io_;
  seqscale::swiglu_bwd(p, stream_);
}

void Ops::add(const Tensor& a, const Tensor& b, Tensor& y, std::int64_t n) {
  expect(a.t == b.t && b.t == y.t, "add", "operands of different dtypes");
  by_io(y.t, [&](auto tag) {
    using T = decltype(tag);
    add_kernel<T><<<elementwise_blocks(n), kElementwiseThreads, 0, stream_>>>(as<T>(a), as<T>(b), as<T>(y), n);
  });
  CUDA_CHECK_LAUNCH();
}

void Ops::accumulate(Tensor& y, const Tensor& x, std::int64_t n) { add(y, x, y, n); }

void Ops::copy(const Tensor& x, Tensor& y, std::int64_t n) {
  if (x.t == y.t) {
    CUDA_CHECK(cudaMemcpyAsync(y.p, x.p, static_cast<std::size_t>(n * dtype_bytes(x.t)), cudaMemcpyDeviceToDevice, stream_));
    return;
  }
  // Weights (I/O dtype) into fp32 master weights: the one converting copy (sync_master).
  expect(y.t == DType::kFp32, "copy", "only a copy into fp32 converts");
  by_io(x.t, [&](auto tag) {
    using T = decltype(tag);
    to_fp32_kernel<T><<<elementwise_blocks(n), kElementwiseThreads, 0, stream_>>>(as<T>(x), as<float>(y), n);
  });
  CUDA_CHECK_LAUNCH();
}

void Ops::rotary(Tensor& x, std::int64_t batch, std::int64_t seq, std::int64_t heads, std::int64_t head_dim,
                 std::int64_t rot_dims, bool inverse) {
  RotaryParams p;
  p.in = x.p;
  p.out = x.p;
  p.shape.batch = batch;
  p.shape.seq = seq;
  p.shape.heads = heads;
  p.shape.head_dim = head_dim;
  p.shape.rotary_dims = rot_dims;
  p.shape.position_offset = 0;
  p.shape.base = kRotaryBase;
  p.io = io_;
  if (inverse) seqscale::rotary_bwd(p, stream_);
  else seqscale::rotary_fwd(p, stream_);
}

// ---- attention -------------------------------------------------------------------------------
// [b, s, heads, d] layout; query head h reads key/value head h / g, g = heads / kv_heads.
// The fused kernel has no GQA, so a call runs per query group j < g: query heads
// {kh g + j} (a view with head stride g d, offset j d) against every kv head kh; group
// j's log-sum-exp is the [b, kv_heads, s] block j of lse (the def only needs b H s of it).

void Ops::attention_fwd(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& o, Tensor& lse, std::int64_t batch,
                        std::int64_t seq, std::int64_t heads, std::int64_t kv_heads, std::int64_t d) {
  const std::int64_t g = heads / kv_heads;
  const std::int64_t es = dtype_bytes(io_);
  for (std::int64_t j = 0; j < g; ++j) {
    CausalAttentionParams p;
    p.shape = {batch, seq, kv_heads, d};
    p.io = io_;
    p.q = static_cast<const char*>(q.p) + j * d * es;
    p.o = static_cast<char*>(o.p) + j * d * es;
    p.k = k.p;
    p.v = v.p;
    p.q_strides = p.o_strides = {seq * heads * d, heads * d, g * d};
    p.k_strides = p.v_strides = {seq * kv_heads * d, kv_heads * d, d};
    p.lse = as<float>(lse) + j * batch * kv_heads * seq;
    causal_attention_fwd(p, stream_);
  }
}

void Ops::attention_bwd(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Tensor& lse,
                        const Tensor& d_o, Tensor& row_dot, Tensor& dq, Tensor& dk, Tensor& dv, std::int64_t batch,
                        std::int64_t seq, std::int64_t heads, std::int64_t kv_heads, std::int64_t d) {
  const std::int64_t g = heads / kv_heads;
  const std::int64_t es = dtype_bytes(io_);
  const std::int64_t nkv = batch * seq * kv_heads * d;
  // The kernel overwrites dK and dV; groups after the first write into a scratch pair that
  // is added in. The atomic dQ mode's fp32 accumulator [B, kv_heads, S, D] is reused by
  // every group's call. Both lie in one transient workspace (max_workspace_bytes): the
  // accumulator first, then the pair.
  const bool atomic = attention_bwd_mode_ == CausalBwdMode::kAtomic && io_ != DType::kFp32;
  const std::int64_t accum_bytes = atomic ? 4 * nkv : 0, pair_bytes = g > 1 ? 2 * nkv * es : 0;
  Tensor ws = workspace(accum_bytes + pair_bytes, "causal_bwd_workspace");
  float* dq_accum = atomic ? as<float>(ws) : nullptr;
  void* dk_g = g > 1 ? static_cast<char*>(ws.p) + accum_bytes : nullptr;
  void* dv_g = g > 1 ? static_cast<char*>(dk_g) + nkv * es : nullptr;
  for (std::int64_t j = 0; j < g; ++j) {
    CausalAttentionParams p;
    p.shape = {batch, seq, kv_heads, d};
    p.io = io_;
    p.q = static_cast<const char*>(q.p) + j * d * es;
    p.o = const_cast<char*>(static_cast<const char*>(o.p)) + j * d * es;
    p.k = k.p;
    p.v = v.p;
    p.q_strides = p.o_strides = {seq * heads * d, heads * d, g * d};
    p.k_strides = p.v_strides = {seq * kv_heads * d, kv_heads * d, d};
    p.lse = const_cast<float*>(static_cast<const float*>(lse.p)) + j * batch * kv_heads * seq;
    CausalAttentionGrads gr;
    gr.d_o = static_cast<const char*>(d_o.p) + j * d * es;
    gr.dq = static_cast<char*>(dq.p) + j * d * es;
    gr.d_o_strides = gr.dq_strides = {seq * heads * d, heads * d, g * d};
    gr.dk = j == 0 ? dk.p : dk_g;
    gr.dv = j == 0 ? dv.p : dv_g;
    gr.dk_strides = gr.dv_strides = {seq * kv_heads * d, kv_heads * d, d};
    gr.row_dot = as<float>(row_dot) + j * batch * kv_heads * seq;
    gr.mode = atomic ? CausalBwdMode::kAtomic : CausalBwdMode::kDeterministic;
    gr.dq_accum = dq_accum;
    causal_attention_bwd(p, gr, stream_);
    if (j > 0) {
      accumulate(dk, Tensor{dk_g, nkv, Elem::kIo, io_}, nkv);
      accumulate(dv, Tensor{dv_g, nkv, Elem::kIo, io_}, nkv);
    }
  }
  release_workspace(ws);
}

// out[b, h, i, j] = alpha x[b, i, h] . y[b, j, h / g]: per batch and query group j, one
// strided-batched GEMM over the kv heads (S = X Y^T, X rows of stride H d).
void Ops::head_scores(const Tensor& x, const Tensor& y, Tensor& out, std::int64_t batch, std::int64_t seq,
                      std::int64_t heads, std::int64_t y_heads, std::int64_t d, double alpha) {
  const std::int64_t g = heads / y_heads, es = dtype_bytes(io_);
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t j = 0; j < g; ++j) {
      const char* xb = static_cast<const char*>(x.p) + ((b * seq) * heads + j) * d * es;
      const char* yb = static_cast<const char*>(y.p) + (b * seq * y_heads) * d * es;
      char* ob = static_cast<char*>(out.p) + (b * heads + j) * seq * seq * es;
      gemm_strided(false, true, seq, seq, d, alpha, xb, x.t, heads * d, g * d, yb, y.t, y_heads * d, d, 0.0, ob, out.t,
                   seq, g * seq * seq, y_heads);
    }
}

// out[b, i, h] = alpha sum_j p[b, h, i, j] y[b, j, h / g]  (O = P Y per head).
void Ops::head_probs_times(const Tensor& p, const Tensor& y, Tensor& out, std::int64_t batch, std::int64_t seq,
                           std::int64_t heads, std::int64_t y_heads, std::int64_t d, double alpha) {
  const std::int64_t g = heads / y_heads, es = dtype_bytes(io_);
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t j = 0; j < g; ++j) {
      const char* pb = static_cast<const char*>(p.p) + (b * heads + j) * seq * seq * es;
      const char* yb = static_cast<const char*>(y.p) + (b * seq * y_heads) * d * es;
      char* ob = static_cast<char*>(out.p) + ((b * seq) * heads + j) * d * es;
      gemm_strided(false, false, seq, d, seq, alpha, pb, p.t, seq, g * seq * seq, yb, y.t, y_heads * d, d, 0.0, ob,
                   out.t, heads * d, g * d, y_heads);
    }
}

// out[b, j, k] = alpha sum_{h / g == k} sum_i p[b, h, i, j] x[b, i, h]  (P^T X summed over
// the group: the first group writes, the others add with beta = 1).
void Ops::head_probs_t_times(const Tensor& p, const Tensor& x, Tensor& out, std::int64_t batch, std::int64_t seq,
                             std::int64_t heads, std::int64_t out_heads, std::int64_t d, double alpha) {
  const std::int64_t g = heads / out_heads, es = dtype_bytes(io_);
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t j = 0; j < g; ++j) {
      const char* pb = static_cast<const char*>(p.p) + (b * heads + j) * seq * seq * es;
      const char* xb = static_cast<const char*>(x.p) + ((b * seq) * heads + j) * d * es;
      char* ob = static_cast<char*>(out.p) + (b * seq * out_heads) * d * es;
      gemm_strided(true, false, seq, d, seq, alpha, pb, p.t, seq, g * seq * seq, xb, x.t, heads * d, g * d,
                   j == 0 ? 0.0 : 1.0, ob, out.t, out_heads * d, d, out_heads);
    }
}

void Ops::masked_softmax(const Tensor& scores, const Tensor* mask, Tensor& probs, std::int64_t batch,
                         std::int64_t heads, std::int64_t seq) {
  const std::int64_t rows = batch * heads * seq;
  expect(rows <= 2147483647, "masked_softmax", "more rows than a 1-D grid holds");
  by_io(scores.t, [&](auto tag) {
    using T = decltype(tag);
    const auto grid = static_cast<unsigned>(rows);
    if (mask == nullptr) {
      masked_softmax_kernel<T, float><<<grid, kElementwiseThreads, 0, stream_>>>(as<T>(scores), nullptr, as<T>(probs), seq);
    } else if (mask->t == DType::kBool) {
      masked_softmax_kernel<T, std::uint8_t><<<grid, kElementwiseThreads, 0, stream_>>>(as<T>(scores), as<std::uint8_t>(*mask),
                                                                           as<T>(probs), seq);
    } else {
      expect(mask->t == DType::kFp32, "masked_softmax", "the mask is bool or fp32");
      masked_softmax_kernel<T, float><<<grid, kElementwiseThreads, 0, stream_>>>(as<T>(scores), as<float>(*mask), as<T>(probs), seq);
    }
  });
  CUDA_CHECK_LAUNCH();
}

// dS = P (dP - rowsum(dP P)): kernels/softmax's backward with scale 1 over [rows, cols].
void Ops::softmax_bwd(const Tensor& dp, const Tensor& p, Tensor& ds, std::int64_t rows, std::int64_t cols) {
  SoftmaxBwdParams sp;
  sp.y = p.p;
  sp.dy = dp.p;
  sp.dx = ds.p;
  sp.shape.rows = rows;
  sp.shape.cols = cols;
  sp.scale = 1.f;
  sp.io = io_;
  seqscale::softmax_bwd(sp, stream_);
}

// ---- collectives: one process runs one rank's shard ---------------------------------------------
// What the rank would hold after the call if every rank held what it holds: sums (and
// maxima) over one rank, its own block in every slot of a gather. op.bytes (nccl-tests
// convention: an all-gather its gathered output, the others what the rank sends) must be
// what the tensors hold, in their own element size (the loss's fp32 vectors are priced at
// 4 B): the definition took the op from the emitter the model prices.
void Ops::collective(const CommOp& op, const Tensor& send, Tensor& recv, Reduction) {
  const std::int64_t es = dtype_bytes(send.t), g = op.group_size;
  expect(send.t == recv.t, "collective", "send and recv of different dtypes");
  const std::int64_t moved = op.collective == Collective::kAllGather ? recv.n : send.n;
  const std::int64_t expected_recv = op.collective == Collective::kAllGather       ? send.n * g
                                     : op.collective == Collective::kReduceScatter ? send.n / g
                                                                                   : send.n;
  // Only reduce-scatter and all-to-all split send into group_size equal blocks (as the CPU
  // executor checks): an all-reduce of the loss's per-token vectors may be any length.
  const bool blocks = op.collective == Collective::kReduceScatter || op.collective == Collective::kAllToAll;
  if (g < 1 || moved * es != op.bytes || recv.n != expected_recv || (blocks && send.n % g != 0)) {
    throw std::logic_error("transformer layer (cuda): " + std::string(collective_name(op.collective)) + " of " +
                           std::to_string(op.bytes) + " B on " + std::to_string(g) + " ranks does not fit tensors of " +
                           std::to_string(send.n) + " -> " + std::to_string(recv.n) + " elements");
  }
  const auto bytes_of = [&](std::int64_t n) { return static_cast<std::size_t>(n * es); };
  switch (op.collective) {
    case Collective::kAllReduce:
    case Collective::kAllToAll:
      if (send.p != recv.p) CUDA_CHECK(cudaMemcpyAsync(recv.p, send.p, bytes_of(send.n), cudaMemcpyDeviceToDevice, stream_));
      return;
    case Collective::kAllGather:
      for (std::int64_t r = 0; r < g; ++r) {
        CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(recv.p) + r * bytes_of(send.n), send.p, bytes_of(send.n),
                                   cudaMemcpyDeviceToDevice, stream_));
      }
      return;
    case Collective::kReduceScatter:
      CUDA_CHECK(cudaMemcpyAsync(recv.p, send.p, bytes_of(recv.n), cudaMemcpyDeviceToDevice, stream_));
      return;
    default:
      throw std::logic_error("transformer layer (cuda): no one-rank form of " + std::string(collective_name(op.collective)));
  }
}

void Ops::transpose_blocks(const Tensor& x, Tensor& y, std::int64_t outer, std::int64_t blocks, std::int64_t inner,
                           bool inverse) {
  const std::int64_t n = outer * blocks * inner;
  expect(x.t == y.t && x.n >= n && y.n >= n, "transpose_blocks", "tensors of different dtypes or too small");
  switch (dtype_bytes(x.t)) {
    case 2:
      transpose_blocks_kernel<std::uint16_t><<<elementwise_blocks(n), kElementwiseThreads, 0, stream_>>>(
          as<std::uint16_t>(x), as<std::uint16_t>(y), outer, blocks, inner, inverse);
      break;
    case 4:
      transpose_blocks_kernel<std::uint32_t><<<elementwise_blocks(n), kElementwiseThreads, 0, stream_>>>(
          as<std::uint32_t>(x), as<std::uint32_t>(y), outer, blocks, inner, inverse);
      break;
    default: expect(false, "transpose_blocks", "elements of 2 or 4 bytes");
  }
  CUDA_CHECK_LAUNCH();
}

// ---- the stack's -------------------------------------------------------------------------------

void Ops::embedding_fwd(const Tensor& table, const Tensor* pos, const Tensor& tokens, Tensor& x, std::int64_t rows,
                        std::int64_t seq_local, std::int64_t h, std::int64_t vocab_start) {
  by_io(x.t, [&](auto tag) {
    using T = decltype(tag);
    embedding_fwd_kernel<T><<<elementwise_blocks(rows * h), kElementwiseThreads, 0, stream_>>>(
        as<T>(table), pos ? as<T>(*pos) : nullptr, as<std::int32_t>(tokens), as<T>(x), rows, seq_local, h, vocab_start,
        table.n / h);
  });
  CUDA_CHECK_LAUNCH();
}

void Ops::embedding_bwd(const Tensor& dx, const Tensor& tokens, Tensor& dtable, Tensor* dpos, std::int64_t rows,
                        std::int64_t seq_local, std::int64_t h, std::int64_t vocab_start) {
  expect(dtable.t == DType::kFp32 && (!dpos || dpos->t == DType::kFp32), "embedding_bwd", "gradients are fp32");
  if (dpos) CUDA_CHECK(cudaMemsetAsync(dpos->p, 0, static_cast<std::size_t>(dpos->n) * sizeof(float), stream_));
  by_io(dx.t, [&](auto tag) {
    using T = decltype(tag);
    embedding_bwd_kernel<T><<<elementwise_blocks(rows * h), kElementwiseThreads, 0, stream_>>>(
        as<T>(dx), as<std::int32_t>(tokens), as<float>(dtable), dpos ? as<float>(*dpos) : nullptr, rows, seq_local, h,
        vocab_start, dtable.n / h);
  });
  CUDA_CHECK_LAUNCH();
}

void Ops::fill_causal_mask(Tensor& mask, std::int64_t seq) {
  if (mask.t == DType::kBool) {
    causal_mask_kernel<std::uint8_t><<<elementwise_blocks(seq * seq), kElementwiseThreads, 0, stream_>>>(as<std::uint8_t>(mask), seq);
  } else {
    expect(mask.t == DType::kFp32, "fill_causal_mask", "the mask is bool or fp32");
    causal_mask_kernel<float><<<elementwise_blocks(seq * seq), kElementwiseThreads, 0, stream_>>>(as<float>(mask), seq);
  }
  CUDA_CHECK_LAUNCH();
}

void Ops::ce_chunk_fwd(const Tensor& logits, const Tensor& targets, Tensor& run_max, Tensor& run_sum,
                       Tensor& target_logit, std::int64_t rows, std::int64_t cols, std::int64_t col0, bool first) {
  expect(rows <= 2147483647, "ce_chunk_fwd", "more rows than a 1-D grid holds");
  by_io(logits.t, [&](auto tag) {
    using T = decltype(tag);
    ce_chunk_fwd_kernel<T><<<static_cast<unsigned>(rows), kElementwiseThreads, 0, stream_>>>(
        as<T>(logits), as<std::int32_t>(targets), as<float>(run_max), as<float>(run_sum), as<float>(target_logit), cols,
        col0, first);
  });
  CUDA_CHECK_LAUNCH();
}

void Ops::ce_rescale(const Tensor& local_max, const Tensor& global_max, Tensor& run_sum, std::int64_t rows) {
  ce_rescale_kernel<<<elementwise_blocks(rows), kElementwiseThreads, 0, stream_>>>(as<float>(local_max), as<float>(global_max),
                                                                  as<float>(run_sum), rows);
  CUDA_CHECK_LAUNCH();
}

void Ops::ce_finish(const Tensor& run_max, const Tensor& run_sum, const Tensor& target_logit, Tensor& lse, Tensor& loss,
                    std::int64_t rows) {
  ce_finish_kernel<<<1, kElementwiseThreads, 0, stream_>>>(as<float>(run_max), as<float>(run_sum), as<float>(target_logit),
                                                as<float>(lse), as<float>(loss), rows);
  CUDA_CHECK_LAUNCH();
}

void Ops::ce_chunk_bwd(Tensor& logits, const Tensor& targets, const Tensor& lse, std::int64_t rows, std::int64_t cols,
                       std::int64_t col0, double scale) {
  by_io(logits.t, [&](auto tag) {
    using T = decltype(tag);
    ce_chunk_bwd_kernel<T><<<elementwise_blocks(rows * cols), kElementwiseThreads, 0, stream_>>>(
        as<T>(logits), as<std::int32_t>(targets), as<float>(lse), rows, cols, col0, static_cast<float>(scale));
  });
  CUDA_CHECK_LAUNCH();
}

void Ops::adam(Tensor& w, const Tensor& dw, Tensor& master, Tensor& m, Tensor& v, std::int64_t n, std::int64_t step) {
  const double c1 = 1.0 - std::pow(kAdamBeta1, static_cast<double>(step));
  const double c2 = 1.0 - std::pow(kAdamBeta2, static_cast<double>(step));
  by_io(w.t, [&](auto tag) {
    using T = decltype(tag);
    adam_kernel<T><<<elementwise_blocks(n), kElementwiseThreads, 0, stream_>>>(
        as<T>(w), as<float>(dw), as<float>(master), as<float>(m), as<float>(v), n, static_cast<float>(kAdamLr),
        static_cast<float>(kAdamBeta1), static_cast<float>(kAdamBeta2), static_cast<float>(kAdamEps),
        static_cast<float>(c1), static_cast<float>(c2));
  });
  CUDA_CHECK_LAUNCH();
}

// ---- whole runs (the GPU tests) ------------------------------------------------------------------

namespace {

void upload(Ops& ops, const Ops::Tensor& t, const std::vector<double>& v) {
  if (static_cast<std::int64_t>(v.size()) != t.n) throw std::invalid_argument("transformer layer (cuda): upload size mismatch");
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(t.n * dtype_bytes(t.t)));
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (t.t == DType::kFp32) {
      const float f = static_cast<float>(v[i]);
      std::memcpy(&bytes[i * 4], &f, 4);
    } else if (t.t == DType::kBf16) {
      const std::uint16_t h = float_to_bf16(static_cast<float>(v[i]));
      std::memcpy(&bytes[i * 2], &h, 2);
    } else if (t.t == DType::kInt32) {
      const auto k = static_cast<std::int32_t>(v[i]);
      std::memcpy(&bytes[i * 4], &k, 4);
    } else {
      throw std::invalid_argument("transformer layer (cuda): upload of a bool tensor");
    }
  }
  CUDA_CHECK(cudaMemcpyAsync(t.p, bytes.data(), bytes.size(), cudaMemcpyHostToDevice, ops.stream()));
  ops.synchronize();  // `bytes` dies here
}

std::vector<double> download(Ops& ops, const Ops::Tensor& t) {
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(t.n * dtype_bytes(t.t)));
  CUDA_CHECK(cudaMemcpyAsync(bytes.data(), t.p, bytes.size(), cudaMemcpyDeviceToHost, ops.stream()));
  ops.synchronize();
  std::vector<double> out(static_cast<std::size_t>(t.n));
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (t.t == DType::kFp32) {
      float f;
      std::memcpy(&f, &bytes[i * 4], 4);
      out[i] = f;
    } else if (t.t == DType::kBf16) {
      std::uint16_t h;
      std::memcpy(&h, &bytes[i * 2], 2);
      out[i] = bf16_to_float(h);
    } else if (t.t == DType::kInt32) {
      std::int32_t k;
      std::memcpy(&k, &bytes[i * 4], 4);
      out[i] = k;
    } else {
      out[i] = bytes[i];
    }
  }
  return out;
}

// A stream of its own for a whole run, destroyed after the ops (and their frees) are gone.
struct OwnStream {
  cudaStream_t s = nullptr;
  OwnStream() { CUDA_CHECK(cudaStreamCreate(&s)); }
  ~OwnStream() {
    (void)cudaStreamSynchronize(s);
    (void)cudaStreamDestroy(s);
  }
  OwnStream(const OwnStream&) = delete;
  OwnStream& operator=(const OwnStream&) = delete;
};

}  // namespace

TransformerLayerCudaRun run_transformer_layer_cuda(const TransformerLayerDims& d, MaskKind mask,
                                                   const TransformerLayerInputs& in, DType io, bool gemm_epilogues,
                                                   CausalBwdMode attention_bwd) {
  OwnStream stream;
  TransformerLayerCudaRun run;
  {
    Ops ops(stream.s, io);
    ops.set_gemm_epilogues(gemm_epilogues);
    ops.set_attention_bwd(attention_bwd);
    // The allocation order of TransformerLayerStep (weights, x, mask, dy, dx), so the peak
    // is comparable with the recorded program's.
    TransformerLayerStep<Ops> step(ops, d, mask);
    auto& params = step.layer.params();
    if (params.size() != in.params.size()) throw std::invalid_argument("transformer layer (cuda): parameter list mismatch");
    for (std::size_t i = 0; i < params.size(); ++i) upload(ops, params[i]->w, in.params[i]);
    upload(ops, step.x, in.x);
    upload(ops, step.dy, in.dy);
    // step.run() with the output read before it is released.
    ops.set_phase(Phase::kForward);
    Ops::Tensor y = step.layer.forward(step.x, step.mask.n > 0 ? &step.mask : nullptr);
    run.out.y = download(ops, y);
    ops.release(y);
    ops.set_phase(Phase::kBackward);
    step.layer.backward(step.dy, step.dx);
    run.out.dx = download(ops, step.dx);
    for (auto* p : params) run.out.param_grads.push_back(download(ops, p->dw));
    run.tensor_peak_bytes = ops.tensor_peak_bytes();
    run.peak_bytes = ops.peak_bytes();
    run.max_workspace_bytes = ops.max_workspace_bytes();
    run.fused_gemm_calls = ops.fused_gemm_calls();
    run.unfused_gemm_calls = ops.unfused_gemm_calls();
  }
  return run;
}

TransformerStackCudaRun run_transformer_stack_cuda(const TransformerStackDims& d, const TransformerStackInputs& in,
                                                   DType io) {
  OwnStream stream;
  TransformerStackCudaRun run;
  {
    Ops ops(stream.s, io);
    TransformerStackStep<Ops> step(ops, d);
    auto& params = step.stack.params();
    if (params.size() != in.params.size()) throw std::invalid_argument("transformer stack (cuda): parameter list mismatch");
    for (std::size_t i = 0; i < params.size(); ++i) upload(ops, params[i]->w, in.params[i]);
    step.stack.sync_master();
    upload(ops, step.tokens, std::vector<double>(in.tokens.begin(), in.tokens.end()));
    upload(ops, step.targets, std::vector<double>(in.targets.begin(), in.targets.end()));
    step.run(/*update=*/false);
    run.out.loss = download(ops, step.loss)[0];
    for (auto* p : params) run.out.param_grads.push_back(download(ops, p->dw));
    run.tensor_peak_bytes = ops.tensor_peak_bytes();
    run.peak_bytes = ops.peak_bytes();
    run.max_workspace_bytes = ops.max_workspace_bytes();
  }
  return run;
}

}  // namespace seqscale
