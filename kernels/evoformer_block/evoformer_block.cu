#include "kernels/evoformer_block/evoformer_block.cuh"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "kernels/common/check.h"
#include "kernels/layernorm/layernorm.cuh"
#include "kernels/layernorm/layernorm_cost.h"

namespace seqscale {

namespace {

constexpr int kThreads = 256;

unsigned blocks_for(std::int64_t n) {
  return static_cast<unsigned>(std::min<std::int64_t>((n + kThreads - 1) / kThreads, 1 << 20));
}

__device__ float sigmoidf(float x) { return 1.f / (1.f + __expf(-x)); }

__global__ void bias_add_kernel(float* y, const float* b, std::int64_t rows, std::int64_t cols) {
  const std::int64_t n = rows * cols;
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < n; i += std::int64_t{gridDim.x} * blockDim.x)
    y[i] += b[i % cols];
}

// Column sums: blockIdx.y strides over row chunks, each thread one column; fp32 atomics
// combine the chunks (db is zeroed first).
__global__ void bias_grad_kernel(const float* dy, float* db, std::int64_t rows, std::int64_t cols) {
  const std::int64_t c = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x;
  if (c >= cols) return;
  float acc = 0.f;
  for (std::int64_t r = blockIdx.y; r < rows; r += gridDim.y) acc += dy[r * cols + c];
  atomicAdd(db + c, acc);
}

__global__ void sigmoid_mul_kernel(const float* g, const float* x, float* y, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < n; i += std::int64_t{gridDim.x} * blockDim.x)
    y[i] = sigmoidf(g[i]) * x[i];
}

__global__ void sigmoid_mul_bwd_kernel(const float* dy, const float* g, const float* x, float* dg, float* dx,
                                       std::int64_t n) {
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < n; i += std::int64_t{gridDim.x} * blockDim.x) {
    const float s = sigmoidf(g[i]);
    const float d = dy[i];
    if (dg) dg[i] = d * x[i] * s * (1.f - s);
    if (dx) dx[i] = d * s;
  }
}

__global__ void relu_kernel(const float* x, float* y, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < n; i += std::int64_t{gridDim.x} * blockDim.x)
    y[i] = fmaxf(x[i], 0.f);
}

__global__ void relu_bwd_kernel(const float* dy, const float* y, float* dx, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < n; i += std::int64_t{gridDim.x} * blockDim.x)
    dx[i] = y[i] > 0.f ? dy[i] : 0.f;
}

__global__ void add_kernel(const float* a, const float* b, float* y, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < n; i += std::int64_t{gridDim.x} * blockDim.x)
    y[i] = a[i] + b[i];
}

// y[a][c][b][d] = x[a][b][c][d], one thread per output element.
__global__ void permute_0213_kernel(const float* x, float* y, std::int64_t d0, std::int64_t d1, std::int64_t d2,
                                    std::int64_t d3) {
  const std::int64_t n = d0 * d1 * d2 * d3;
  for (std::int64_t o = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; o < n; o += std::int64_t{gridDim.x} * blockDim.x) {
    const std::int64_t d = o % d3;
    std::int64_t r = o / d3;
    const std::int64_t b = r % d1;
    r /= d1;
    const std::int64_t c = r % d2;
    const std::int64_t a = r / d2;
    y[o] = x[((a * d1 + b) * d2 + c) * d3 + d];
  }
}

// y[b][c] = alpha sum_r x[b][r][c]: one thread per (b, c), rows in order (deterministic).
__global__ void sum_rows_kernel(const float* x, float* y, std::int64_t batch, std::int64_t rows, std::int64_t cols,
                                float alpha) {
  const std::int64_t n = batch * cols;
  for (std::int64_t o = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; o < n; o += std::int64_t{gridDim.x} * blockDim.x) {
    const std::int64_t b = o / cols, c = o % cols;
    float acc = 0.f;
    for (std::int64_t r = 0; r < rows; ++r) acc += x[(b * rows + r) * cols + c];
    y[o] = alpha * acc;
  }
}

__global__ void broadcast_rows_kernel(const float* x, float* y, std::int64_t batch, std::int64_t rows,
                                      std::int64_t cols, float alpha) {
  const std::int64_t n = batch * rows * cols;
  for (std::int64_t o = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; o < n; o += std::int64_t{gridDim.x} * blockDim.x) {
    const std::int64_t c = o % cols, b = o / (rows * cols);
    y[o] = alpha * x[b * cols + c];
  }
}

__device__ float warp_reduce_max(float v) {
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}
__device__ float warp_reduce_sum(float v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// One warp per row (the global attention's rows are N_extra long: a strided warp loop).
__global__ void softmax_rows_kernel(const float* x, float* y, std::int64_t rows, std::int64_t cols) {
  const std::int64_t row = blockIdx.x * std::int64_t{blockDim.x / 32} + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const float* xr = x + row * cols;
  float* yr = y + row * cols;
  float mx = -INFINITY;
  for (std::int64_t c = lane; c < cols; c += 32) mx = fmaxf(mx, xr[c]);
  mx = warp_reduce_max(mx);
  float sum = 0.f;
  for (std::int64_t c = lane; c < cols; c += 32) sum += __expf(xr[c] - mx);
  sum = warp_reduce_sum(sum);
  const float inv = 1.f / sum;
  for (std::int64_t c = lane; c < cols; c += 32) yr[c] = __expf(xr[c] - mx) * inv;
}

__global__ void softmax_rows_bwd_kernel(const float* dy, const float* y, float* dx, std::int64_t rows, std::int64_t cols) {
  const std::int64_t row = blockIdx.x * std::int64_t{blockDim.x / 32} + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const float* dyr = dy + row * cols;
  const float* yr = y + row * cols;
  float dot = 0.f;
  for (std::int64_t c = lane; c < cols; c += 32) dot += dyr[c] * yr[c];
  dot = warp_reduce_sum(dot);
  for (std::int64_t c = lane; c < cols; c += 32) dx[row * cols + c] = yr[c] * (dyr[c] - dot);
}

}  // namespace

using Ops = EvoformerBlockCudaOps;

Ops::EvoformerBlockCudaOps(cudaStream_t stream, bool fused_attention, AllocFn alloc, FreeFn free)
    : stream_(stream), fused_(fused_attention), alloc_(std::move(alloc)), free_(std::move(free)) {}

cublasHandle_t Ops::cublas() {
  if (!cublas_) {
    CUBLAS_CHECK(cublasCreate(&cublas_));
    // fp32 storage is the reference configuration: keep cuBLAS off TF32 so the block's
    // error budget is accumulation order only.
    CUBLAS_CHECK(cublasSetMathMode(cublas_, CUBLAS_PEDANTIC_MATH));
    CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
  }
  return cublas_;
}

void Ops::set_stream(cudaStream_t stream) {
  stream_ = stream;
  if (cublas_) CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
}

Ops::~EvoformerBlockCudaOps() {
  for (void* p : owned_) raw_free(p);
  if (cublas_) cublasDestroy(cublas_);
}

void* Ops::raw_alloc(std::size_t bytes) {
  if (alloc_) return alloc_(bytes);
  void* p = nullptr;
  CUDA_CHECK(cudaMallocAsync(&p, bytes, stream_));
  return p;
}

void Ops::raw_free(void* p) {
  if (free_) {
    free_(p);
  } else {
    cudaFreeAsync(p, stream_);
  }
}

Ops::Tensor Ops::alloc(std::int64_t n, MemoryKind, const char* what) {
  if (n <= 0) throw std::invalid_argument(std::string("evoformer block: empty tensor ") + what);
  Tensor t{static_cast<float*>(raw_alloc(static_cast<std::size_t>(n) * sizeof(float))), n};
  owned_.push_back(t.p);
  return t;
}

void Ops::release(Tensor& t) {
  if (!t.p) return;
  auto it = std::find(owned_.rbegin(), owned_.rend(), static_cast<void*>(t.p));
  if (it == owned_.rend()) throw std::logic_error("evoformer block: release of a tensor the backend does not own");
  owned_.erase(std::next(it).base());
  raw_free(t.p);
  t = Tensor{};
}

void Ops::layernorm_fwd(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, Tensor& mean, Tensor& rstd,
                        std::int64_t rows, std::int64_t cols) {
  LayerNormFwdParams p;
  p.x = x.p;
  p.weight = w.p;
  p.bias = b.p;
  p.y = y.p;
  p.mean = mean.p;
  p.rstd = rstd.p;
  p.rows = rows;
  p.cols = cols;
  p.io = DType::kFp32;
  seqscale::layernorm_fwd(p, stream_);
}

void Ops::layernorm_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                        Tensor& dx, Tensor& dw, Tensor& db, std::int64_t rows, std::int64_t cols) {
  const std::int64_t ws_bytes = layernorm_bwd_cost(rows, cols, DType::kFp32).workspace_bytes;
  Tensor ws{};
  if (ws_bytes > 0) ws = alloc((ws_bytes + 3) / 4, MemoryKind::kWorkspace, "layernorm_bwd_workspace");
  LayerNormBwdParams p;
  p.dy = dy.p;
  p.x = x.p;
  p.weight = w.p;
  p.mean = mean.p;
  p.rstd = rstd.p;
  p.dx = dx.p;
  p.dweight = dw.p;
  p.dbias = db.p;
  p.workspace = ws.p;
  p.rows = rows;
  p.cols = cols;
  p.io = DType::kFp32;
  seqscale::layernorm_bwd(p, stream_);
  release(ws);
}

// Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
void Ops::gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const Tensor& a,
               const Tensor& b, double beta, Tensor& c, std::int64_t batch) {
  const float al = static_cast<float>(alpha), be = static_cast<float>(beta);
  CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      cublas(), tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m),
      static_cast<int>(k), &al, b.p, CUDA_R_32F, static_cast<int>(tb ? k : n), k * n, a.p, CUDA_R_32F,
      static_cast<int>(ta ? m : k), m * k, &be, c.p, CUDA_R_32F, static_cast<int>(n), m * n, static_cast<int>(batch),
      CUBLAS_COMPUTE_32F_PEDANTIC, CUBLAS_GEMM_DEFAULT));
}

void Ops::bias_add(Tensor& y, const Tensor& b, std::int64_t rows, std::int64_t cols) {
  bias_add_kernel<<<blocks_for(rows * cols), kThreads, 0, stream_>>>(y.p, b.p, rows, cols);
  CUDA_CHECK_LAUNCH();
}

void Ops::bias_grad(const Tensor& dy, Tensor& db, std::int64_t rows, std::int64_t cols) {
  CUDA_CHECK(cudaMemsetAsync(db.p, 0, static_cast<std::size_t>(cols) * sizeof(float), stream_));
  const dim3 grid(static_cast<unsigned>((cols + 127) / 128), static_cast<unsigned>(std::min<std::int64_t>(rows, 256)));
  bias_grad_kernel<<<grid, 128, 0, stream_>>>(dy.p, db.p, rows, cols);
  CUDA_CHECK_LAUNCH();
}

void Ops::sigmoid_mul(const Tensor& g, const Tensor& x, Tensor& y, std::int64_t n) {
  sigmoid_mul_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(g.p, x.p, y.p, n);
  CUDA_CHECK_LAUNCH();
}

void Ops::sigmoid_mul_bwd(const Tensor& dy, const Tensor& g, const Tensor& x, Tensor& dg, Tensor& dx, std::int64_t n) {
  sigmoid_mul_bwd_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(dy.p, g.p, x.p, dg.p, dx.p, n);
  CUDA_CHECK_LAUNCH();
}

void Ops::relu(const Tensor& x, Tensor& y, std::int64_t n) {
  relu_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(x.p, y.p, n);
  CUDA_CHECK_LAUNCH();
}

void Ops::relu_bwd(const Tensor& dy, const Tensor& y, Tensor& dx, std::int64_t n) {
  relu_bwd_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(dy.p, y.p, dx.p, n);
  CUDA_CHECK_LAUNCH();
}

void Ops::add(const Tensor& a, const Tensor& b, Tensor& y, std::int64_t n) {
  add_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(a.p, b.p, y.p, n);
  CUDA_CHECK_LAUNCH();
}

void Ops::accumulate(Tensor& y, const Tensor& x, std::int64_t n) {
  add_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(y.p, x.p, y.p, n);
  CUDA_CHECK_LAUNCH();
}

void Ops::permute_0213(const Tensor& x, Tensor& y, std::int64_t d0, std::int64_t d1, std::int64_t d2, std::int64_t d3) {
  if (x.p == y.p) throw std::logic_error("permute_0213 cannot run in place");
  const std::int64_t n = d0 * d1 * d2 * d3;
  if (d1 == 1 || d2 == 1) {  // no reordering: a copy
    CUDA_CHECK(cudaMemcpyAsync(y.p, x.p, static_cast<std::size_t>(n) * sizeof(float), cudaMemcpyDeviceToDevice, stream_));
    return;
  }
  permute_0213_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(x.p, y.p, d0, d1, d2, d3);
  CUDA_CHECK_LAUNCH();
}

void Ops::sum_rows(const Tensor& x, Tensor& y, std::int64_t batch, std::int64_t rows, std::int64_t cols, double alpha) {
  sum_rows_kernel<<<blocks_for(batch * cols), kThreads, 0, stream_>>>(x.p, y.p, batch, rows, cols, static_cast<float>(alpha));
  CUDA_CHECK_LAUNCH();
}

void Ops::broadcast_rows(const Tensor& x, Tensor& y, std::int64_t batch, std::int64_t rows, std::int64_t cols,
                         double alpha) {
  broadcast_rows_kernel<<<blocks_for(batch * rows * cols), kThreads, 0, stream_>>>(x.p, y.p, batch, rows, cols,
                                                                                   static_cast<float>(alpha));
  CUDA_CHECK_LAUNCH();
}

void Ops::softmax_rows(const Tensor& x, Tensor& y, std::int64_t rows, std::int64_t cols) {
  softmax_rows_kernel<<<static_cast<unsigned>((rows + 7) / 8), 256, 0, stream_>>>(x.p, y.p, rows, cols);
  CUDA_CHECK_LAUNCH();
}

void Ops::softmax_rows_bwd(const Tensor& dy, const Tensor& y, Tensor& dx, std::int64_t rows, std::int64_t cols) {
  softmax_rows_bwd_kernel<<<static_cast<unsigned>((rows + 7) / 8), 256, 0, stream_>>>(dy.p, y.p, dx.p, rows, cols);
  CUDA_CHECK_LAUNCH();
}

Ops::Saved Ops::attention_fwd(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* bias, Tensor& o,
                              std::int64_t rows, std::int64_t len, std::int64_t heads, std::int64_t head_dim) {
  Saved s;
  s.fused = fused_;
  s.a.shape = {1, rows, len, heads, head_dim};
  s.a.io = DType::kFp32;
  s.a.q = q.p;
  s.a.k = k.p;
  s.a.v = v.p;
  s.a.pair_bias = bias ? bias->p : nullptr;
  s.a.o = o.p;
  if (fused_) {
    s.lse = alloc(rows * heads * len, MemoryKind::kActivations, "attention_lse").p;
    EvoformerAttnFusedParams fp{s.a, s.lse};
    evoformer_attn_fused_fwd(fp, stream_);
  } else {
    s.a.probs = alloc(s.a.shape.logits_elements(), MemoryKind::kActivations, "attention_probs").p;
    evoformer_attn_naive_fwd(s.a, cublas(), stream_);
  }
  return s;
}

void Ops::attention_bwd(Saved& s, const Tensor& d_o, Tensor& dq, Tensor& dk, Tensor& dv, Tensor* dbias) {
  if (s.fused) {
    Tensor row_dot = alloc(s.a.shape.rows() * s.a.shape.heads * s.a.shape.len, MemoryKind::kWorkspace, "row_dot");
    EvoformerAttnFusedGrads g;
    g.d_o = d_o.p;
    g.dq = dq.p;
    g.dk = dk.p;
    g.dv = dv.p;
    g.row_dot = row_dot.p;
    g.d_pair = dbias ? dbias->p : nullptr;
    evoformer_attn_fused_bwd(EvoformerAttnFusedParams{s.a, s.lse}, g, stream_);
    release(row_dot);
  } else {
    Tensor d_probs = alloc(s.a.shape.logits_elements(), MemoryKind::kWorkspace, "attention_d_probs");
    EvoformerAttnGrads g;
    g.d_o = d_o.p;
    g.dq = dq.p;
    g.dk = dk.p;
    g.dv = dv.p;
    g.d_probs = d_probs.p;
    g.d_pair = dbias ? dbias->p : nullptr;
    evoformer_attn_naive_bwd(s.a, g, cublas(), stream_);
    release(d_probs);
  }
}

void Ops::release_saved(Saved& s) {
  Tensor lse{s.lse, 1}, probs{static_cast<float*>(s.a.probs), 1};
  release(lse);
  release(probs);
  s = Saved{};
}

namespace {

Ops::Tensor upload(Ops& ops, const std::vector<double>& v, const char* what) {
  Ops::Tensor t = ops.alloc(static_cast<std::int64_t>(v.size()), MemoryKind::kActivations, what);
  std::vector<float> f(v.begin(), v.end());
  CUDA_CHECK(cudaMemcpyAsync(t.p, f.data(), f.size() * sizeof(float), cudaMemcpyHostToDevice, ops.stream()));
  CUDA_CHECK(cudaStreamSynchronize(ops.stream()));
  return t;
}

void upload_into(Ops& ops, Ops::Tensor& t, const std::vector<double>& v) {
  std::vector<float> f(v.begin(), v.end());
  CUDA_CHECK(cudaMemcpyAsync(t.p, f.data(), f.size() * sizeof(float), cudaMemcpyHostToDevice, ops.stream()));
  CUDA_CHECK(cudaStreamSynchronize(ops.stream()));
}

std::vector<double> download(Ops& ops, const Ops::Tensor& t) {
  std::vector<float> f(static_cast<std::size_t>(t.n));
  CUDA_CHECK(cudaMemcpyAsync(f.data(), t.p, f.size() * sizeof(float), cudaMemcpyDeviceToHost, ops.stream()));
  CUDA_CHECK(cudaStreamSynchronize(ops.stream()));
  return std::vector<double>(f.begin(), f.end());
}

}  // namespace

EvoformerBlockRefRun run_evoformer_block_cuda(const EvoformerBlockDims& d, const EvoformerBlockInputs& in,
                                              bool fused_attention) {
  cudaStream_t stream = nullptr;
  CUDA_CHECK(cudaStreamCreate(&stream));
  EvoformerBlockRefRun run;
  {
    Ops ops(stream, fused_attention);
    EvoformerBlock<Ops> block(ops, d);
    auto& params = block.params();
    if (params.size() != in.params.size()) throw std::invalid_argument("evoformer block: parameter list mismatch");
    for (std::size_t i = 0; i < params.size(); ++i) upload_into(ops, params[i]->w, in.params[i]);
    Ops::Tensor m0 = upload(ops, in.m0, "m0"), z0 = upload(ops, in.z0, "z0");
    Ops::Tensor dm_out = upload(ops, in.dm_out, "dm_out"), dz_out = upload(ops, in.dz_out, "dz_out");
    Ops::Tensor dm0 = ops.alloc(m0.n, MemoryKind::kActivations, "dm0"), dz0 = ops.alloc(z0.n, MemoryKind::kActivations, "dz0");
    block.forward(m0, z0);
    run.m_out = download(ops, block.m_out);
    run.z_out = download(ops, block.z_out);
    block.backward(dm_out, dz_out, dm0, dz0);
    run.dm0 = download(ops, dm0);
    run.dz0 = download(ops, dz0);
    for (auto* p : params) run.param_grads.push_back(download(ops, p->dw));
  }
  CUDA_CHECK(cudaStreamSynchronize(stream));
  CUDA_CHECK(cudaStreamDestroy(stream));
  return run;
}

}  // namespace seqscale
