#include "layers/evoformer_block/evoformer_block.cuh"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <stdexcept>
#include <string>

#include "common/check_cublas.h"
#include "common/check_cuda.h"
#include "kernels/common/convert.cuh"
#include "kernels/common/elementwise.cuh"
#include "common/half.h"
#include "kernels/layernorm/layernorm.cuh"
#include "kernels/layernorm/layernorm_cost.h"

namespace seqscale {

namespace {

__device__ float sigmoidf(float x) { return 1.f / (1.f + __expf(-x)); }

template <typename T>
__global__ void sigmoid_mul_kernel(const T* g, const T* x, T* y, std::int64_t n) {
  SEQSCALE_GRID_STRIDE(i, n) store_f32(y, i, sigmoidf(load_f32(g, i)) * load_f32(x, i));
}

template <typename T>
__global__ void sigmoid_mul_bwd_kernel(const T* dy, const T* g, const T* x, T* dg, T* dx, std::int64_t n) {
  SEQSCALE_GRID_STRIDE(i, n) {
    const float s = sigmoidf(load_f32(g, i));
    const float d = load_f32(dy, i);
    if (dg) store_f32(dg, i, d * load_f32(x, i) * s * (1.f - s));
    if (dx) store_f32(dx, i, d * s);
  }
}

template <typename T>
__global__ void relu_kernel(const T* x, T* y, std::int64_t n) {
  SEQSCALE_GRID_STRIDE(i, n) store_f32(y, i, fmaxf(load_f32(x, i), 0.f));
}

template <typename T>
__global__ void relu_bwd_kernel(const T* dy, const T* y, T* dx, std::int64_t n) {
  SEQSCALE_GRID_STRIDE(i, n) store_f32(dx, i, load_f32(y, i) > 0.f ? load_f32(dy, i) : 0.f);
}

// y[a][c][b][d] = x[a][b][c][d], one thread per output element (converting the dtype).
template <typename Tin, typename Tout>
__global__ void permute_0213_kernel(const Tin* x, Tout* y, std::int64_t d0, std::int64_t d1, std::int64_t d2,
                                    std::int64_t d3) {
  SEQSCALE_GRID_STRIDE(o, d0 * d1 * d2 * d3) {
    const std::int64_t d = o % d3;
    std::int64_t r = o / d3;
    const std::int64_t b = r % d1;
    r /= d1;
    const std::int64_t c = r % d2;
    const std::int64_t a = r / d2;
    store_f32(y, o, load_f32(x, ((a * d1 + b) * d2 + c) * d3 + d));
  }
}

// y[b][c] = alpha sum_r x[b][r][c]: one thread per (b, c), rows in order (deterministic).
template <typename T>
__global__ void sum_rows_kernel(const T* x, T* y, std::int64_t batch, std::int64_t rows, std::int64_t cols,
                                float alpha) {
  SEQSCALE_GRID_STRIDE(o, batch * cols) {
    const std::int64_t b = o / cols, c = o % cols;
    float acc = 0.f;
    for (std::int64_t r = 0; r < rows; ++r) acc += load_f32(x, (b * rows + r) * cols + c);
    store_f32(y, o, alpha * acc);
  }
}

template <typename T>
__global__ void broadcast_rows_kernel(const T* x, T* y, std::int64_t batch, std::int64_t rows, std::int64_t cols,
                                      float alpha) {
  SEQSCALE_GRID_STRIDE(o, batch * rows * cols) {
    const std::int64_t c = o % cols, b = o / (rows * cols);
    store_f32(y, o, alpha * load_f32(x, b * cols + c));
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
template <typename T>
__global__ void softmax_rows_kernel(const T* x, T* y, std::int64_t rows, std::int64_t cols) {
  const std::int64_t row = blockIdx.x * std::int64_t{blockDim.x / 32} + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const std::int64_t base = row * cols;
  float mx = -INFINITY;
  for (std::int64_t c = lane; c < cols; c += 32) mx = fmaxf(mx, load_f32(x, base + c));
  mx = warp_reduce_max(mx);
  float sum = 0.f;
  for (std::int64_t c = lane; c < cols; c += 32) sum += __expf(load_f32(x, base + c) - mx);
  sum = warp_reduce_sum(sum);
  const float inv = 1.f / sum;
  for (std::int64_t c = lane; c < cols; c += 32) store_f32(y, base + c, __expf(load_f32(x, base + c) - mx) * inv);
}

template <typename T>
__global__ void softmax_rows_bwd_kernel(const T* dy, const T* y, T* dx, std::int64_t rows, std::int64_t cols) {
  const std::int64_t row = blockIdx.x * std::int64_t{blockDim.x / 32} + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const std::int64_t base = row * cols;
  float dot = 0.f;
  for (std::int64_t c = lane; c < cols; c += 32) dot += load_f32(dy, base + c) * load_f32(y, base + c);
  dot = warp_reduce_sum(dot);
  for (std::int64_t c = lane; c < cols; c += 32) {
    store_f32(dx, base + c, load_f32(y, base + c) * (load_f32(dy, base + c) - dot));
  }
}

#undef SEQSCALE_GRID_STRIDE

// Runs fn(T{}) for the tensor's storage type.
template <typename Fn>
void by_type(DType t, Fn&& fn) {
  switch (t) {
    case DType::kFp32: return fn(float{});
    case DType::kBf16: return fn(__nv_bfloat16{});
    default: throw std::invalid_argument("evoformer block: tensors are fp32 or bf16");
  }
}

template <typename T> T* as(const EvoformerBlockCudaOps::Tensor& t) { return static_cast<T*>(t.p); }

// Every non-null, allocated tensor of an op in one dtype (the first one's).
void same_type(std::initializer_list<const EvoformerBlockCudaOps::Tensor*> ts, const char* op) {
  const DType t0 = (*ts.begin())->t;
  for (const auto* t : ts) {
    if (t && t->p && t->t != t0) throw std::logic_error(std::string("evoformer block: ") + op + " mixes dtypes");
  }
}

}  // namespace

using Ops = EvoformerBlockCudaOps;

Ops::EvoformerBlockCudaOps(cudaStream_t stream, bool fused_attention, DType io, AllocFn alloc, FreeFn free)
    : stream_(stream), fused_(fused_attention), io_(io), alloc_(std::move(alloc)), free_(std::move(free)) {
  if (io != DType::kFp32 && io != DType::kBf16) throw std::invalid_argument("evoformer block: io dtype must be fp32 or bf16");
}

cublasHandle_t Ops::cublas() {
  if (!cublas_) {
    CUBLAS_CHECK(cublasCreate(&cublas_));
    // fp32 storage is the reference configuration: keep cuBLAS off TF32 (as PyTorch's
    // default) so its error budget is accumulation order only.
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

// Runs while a CUDA_CHECK exception unwinds the body (an illegal address, an oom), so
// nothing may escape: a throw here would be std::terminate and the point would read
// "crashed" instead of carrying the CUDA error string. The harness's release does not
// throw; the catch covers any other free function. Teardown results are not checked (after
// a sticky error every call returns it again).
Ops::~EvoformerBlockCudaOps() {
  for (void* p : owned_) {
    try {
      raw_free(p);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "seqscale: evoformer block: free failed during teardown: %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "seqscale: evoformer block: free failed during teardown\n");
    }
  }
  if (cublas_) (void)cublasDestroy(cublas_);
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

Ops::Tensor Ops::make(std::int64_t n, DType t, const char* what) {
  if (n <= 0) throw std::invalid_argument(std::string("evoformer block: empty tensor ") + what);
  Tensor x{raw_alloc(static_cast<std::size_t>(n * dtype_bytes(t))), n, t};
  owned_.push_back(x.p);
  return x;
}

Ops::Tensor Ops::alloc(std::int64_t n, MemoryKind kind, const char* what) {
  return make(n, evoformer_block_fp32_tensor(what, kind) ? DType::kFp32 : io_, what);
}

void Ops::release(Tensor& t) {
  if (!t.p) return;
  auto it = std::find(owned_.rbegin(), owned_.rend(), t.p);
  if (it == owned_.rend()) throw std::logic_error("evoformer block: release of a tensor the backend does not own");
  owned_.erase(std::next(it).base());
  raw_free(t.p);
  t = Tensor{};
}

void Ops::layernorm_fwd(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, Tensor& mean, Tensor& rstd,
                        std::int64_t rows, std::int64_t cols) {
  same_type({&x, &w, &b, &y}, "layernorm_fwd");
  LayerNormFwdParams p;
  p.x = x.p;
  p.weight = w.p;
  p.bias = b.p;
  p.y = y.p;
  p.mean = static_cast<float*>(mean.p);
  p.rstd = static_cast<float*>(rstd.p);
  p.rows = rows;
  p.cols = cols;
  p.io = io_;
  seqscale::layernorm_fwd(p, stream_);
}

void Ops::layernorm_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                        Tensor& dx, Tensor& dw, Tensor& db, std::int64_t rows, std::int64_t cols) {
  const std::int64_t ws_bytes = layernorm_bwd_cost(rows, cols, io_).workspace_bytes;
  Tensor ws{};
  if (ws_bytes > 0) ws = make((ws_bytes + 3) / 4, DType::kFp32, "layernorm_bwd_workspace");
  LayerNormBwdParams p;
  p.dy = dy.p;
  p.x = x.p;
  p.weight = w.p;
  p.mean = static_cast<const float*>(mean.p);
  p.rstd = static_cast<const float*>(rstd.p);
  p.dx = dx.p;
  p.dweight = static_cast<float*>(dw.p);
  p.dbias = static_cast<float*>(db.p);
  p.workspace = static_cast<float*>(ws.p);
  p.rows = rows;
  p.cols = cols;
  p.io = io_;
  seqscale::layernorm_bwd(p, stream_);
  release(ws);
}

// Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
void Ops::gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const Tensor& a,
               const Tensor& b, double beta, Tensor& c, std::int64_t batch) {
  if (a.t != b.t) throw std::logic_error("evoformer block: gemm operands of different dtypes");
  const float al = static_cast<float>(alpha), be = static_cast<float>(beta);
  // Inputs in the I/O dtype; C in it too, or fp32 for a weight gradient.
  CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      cublas(), tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m),
      static_cast<int>(k), &al, b.p, cuda_data_type(b.t), static_cast<int>(tb ? k : n), k * n, a.p, cuda_data_type(a.t),
      static_cast<int>(ta ? m : k), m * k, &be, c.p, cuda_data_type(c.t), static_cast<int>(n), m * n,
      static_cast<int>(batch), a.t == DType::kFp32 ? CUBLAS_COMPUTE_32F_PEDANTIC : CUBLAS_COMPUTE_32F,
      CUBLAS_GEMM_DEFAULT));
}

void Ops::bias_add(Tensor& y, const Tensor& b, std::int64_t rows, std::int64_t cols) {
  same_type({&y, &b}, "bias_add");
  by_type(y.t, [&](auto tag) {
    using T = decltype(tag);
    bias_add_kernel<T><<<elementwise_blocks(rows * cols), kElementwiseThreads, 0, stream_>>>(as<T>(y), as<T>(b), rows, cols);
  });
  CUDA_CHECK_LAUNCH();
}

void Ops::bias_grad(const Tensor& dy, Tensor& db, std::int64_t rows, std::int64_t cols) {
  if (db.t != DType::kFp32) throw std::logic_error("evoformer block: bias gradients are fp32");
  CUDA_CHECK(cudaMemsetAsync(db.p, 0, static_cast<std::size_t>(cols) * sizeof(float), stream_));
  const dim3 grid(static_cast<unsigned>((cols + 127) / 128), static_cast<unsigned>(std::min<std::int64_t>(rows, 256)));
  by_type(dy.t, [&](auto tag) {
    using T = decltype(tag);
    bias_grad_kernel<T><<<grid, 128, 0, stream_>>>(as<T>(dy), as<float>(db), rows, cols);
  });
  CUDA_CHECK_LAUNCH();
}

void Ops::sigmoid_mul(const Tensor& g, const Tensor& x, Tensor& y, std::int64_t n) {
  same_type({&g, &x, &y}, "sigmoid_mul");
  by_type(g.t, [&](auto tag) {
    using T = decltype(tag);
    sigmoid_mul_kernel<T><<<elementwise_blocks(n), kElementwiseThreads, 0, stream_>>>(as<T>(g), as<T>(x), as<T>(y), n);
  });
  CUDA_CHECK_LAUNCH();
}

void Ops::sigmoid_mul_bwd(const Tensor& dy, const Tensor& g, const Tensor& x, Tensor& dg, Tensor& dx, std::int64_t n) {
  same_type({&dy, &g, &x, &dg, &dx}, "sigmoid_mul_bwd");
  by_type(dy.t, [&](auto tag) {
    using T = decltype(tag);
    sigmoid_mul_bwd_kernel<T><<<elementwise_blocks(n), kElementwiseThreads, 0, stream_>>>(as<T>(dy), as<T>(g), as<T>(x), as<T>(dg),
                                                                      as<T>(dx), n);
  });
  CUDA_CHECK_LAUNCH();
}

void Ops::relu(const Tensor& x, Tensor& y, std::int64_t n) {
  same_type({&x, &y}, "relu");
  by_type(x.t, [&](auto tag) {
    using T = decltype(tag);
    relu_kernel<T><<<elementwise_blocks(n), kElementwiseThreads, 0, stream_>>>(as<T>(x), as<T>(y), n);
  });
  CUDA_CHECK_LAUNCH();
}

void Ops::relu_bwd(const Tensor& dy, const Tensor& y, Tensor& dx, std::int64_t n) {
  same_type({&dy, &y, &dx}, "relu_bwd");
  by_type(dy.t, [&](auto tag) {
    using T = decltype(tag);
    relu_bwd_kernel<T><<<elementwise_blocks(n), kElementwiseThreads, 0, stream_>>>(as<T>(dy), as<T>(y), as<T>(dx), n);
  });
  CUDA_CHECK_LAUNCH();
}

void Ops::add(const Tensor& a, const Tensor& b, Tensor& y, std::int64_t n) {
  same_type({&a, &b, &y}, "add");
  by_type(a.t, [&](auto tag) {
    using T = decltype(tag);
    add_kernel<T><<<elementwise_blocks(n), kElementwiseThreads, 0, stream_>>>(as<T>(a), as<T>(b), as<T>(y), n);
  });
  CUDA_CHECK_LAUNCH();
}

void Ops::accumulate(Tensor& y, const Tensor& x, std::int64_t n) { add(y, x, y, n); }

void Ops::permute_0213(const Tensor& x, Tensor& y, std::int64_t d0, std::int64_t d1, std::int64_t d2, std::int64_t d3) {
  if (x.p == y.p) throw std::logic_error("permute_0213 cannot run in place");
  const std::int64_t n = d0 * d1 * d2 * d3;
  if ((d1 == 1 || d2 == 1) && x.t == y.t) {  // no reordering, no conversion: a copy
    CUDA_CHECK(cudaMemcpyAsync(y.p, x.p, static_cast<std::size_t>(n * dtype_bytes(x.t)), cudaMemcpyDeviceToDevice, stream_));
    return;
  }
  by_type(x.t, [&](auto tin) {
    by_type(y.t, [&](auto tout) {
      using Tin = decltype(tin);
      using Tout = decltype(tout);
      permute_0213_kernel<Tin, Tout><<<elementwise_blocks(n), kElementwiseThreads, 0, stream_>>>(as<Tin>(x), as<Tout>(y), d0, d1, d2, d3);
    });
  });
  CUDA_CHECK_LAUNCH();
}

void Ops::sum_rows(const Tensor& x, Tensor& y, std::int64_t batch, std::int64_t rows, std::int64_t cols, double alpha) {
  same_type({&x, &y}, "sum_rows");
  by_type(x.t, [&](auto tag) {
    using T = decltype(tag);
    sum_rows_kernel<T><<<elementwise_blocks(batch * cols), kElementwiseThreads, 0, stream_>>>(as<T>(x), as<T>(y), batch, rows, cols,
                                                                           static_cast<float>(alpha));
  });
  CUDA_CHECK_LAUNCH();
}

void Ops::broadcast_rows(const Tensor& x, Tensor& y, std::int64_t batch, std::int64_t rows, std::int64_t cols,
                         double alpha) {
  same_type({&x, &y}, "broadcast_rows");
  by_type(x.t, [&](auto tag) {
    using T = decltype(tag);
    broadcast_rows_kernel<T><<<elementwise_blocks(batch * rows * cols), kElementwiseThreads, 0, stream_>>>(as<T>(x), as<T>(y), batch,
                                                                                         rows, cols,
                                                                                         static_cast<float>(alpha));
  });
  CUDA_CHECK_LAUNCH();
}

void Ops::softmax_rows(const Tensor& x, Tensor& y, std::int64_t rows, std::int64_t cols) {
  same_type({&x, &y}, "softmax_rows");
  by_type(x.t, [&](auto tag) {
    using T = decltype(tag);
    softmax_rows_kernel<T><<<static_cast<unsigned>((rows + 7) / 8), 256, 0, stream_>>>(as<T>(x), as<T>(y), rows, cols);
  });
  CUDA_CHECK_LAUNCH();
}

void Ops::softmax_rows_bwd(const Tensor& dy, const Tensor& y, Tensor& dx, std::int64_t rows, std::int64_t cols) {
  same_type({&dy, &y, &dx}, "softmax_rows_bwd");
  by_type(dy.t, [&](auto tag) {
    using T = decltype(tag);
    softmax_rows_bwd_kernel<T><<<static_cast<unsigned>((rows + 7) / 8), 256, 0, stream_>>>(as<T>(dy), as<T>(y),
                                                                                           as<T>(dx), rows, cols);
  });
  CUDA_CHECK_LAUNCH();
}

Ops::Saved Ops::attention_fwd(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* bias, Tensor& o,
                              std::int64_t rows, std::int64_t len, std::int64_t heads, std::int64_t head_dim) {
  same_type({&q, &k, &v, &o, bias}, "attention");
  Saved s;
  s.fused = fused_;
  s.a.shape = {1, rows, len, heads, head_dim};
  s.a.io = q.t;
  s.a.q = q.p;
  s.a.k = k.p;
  s.a.v = v.p;
  s.a.pair_bias = bias ? bias->p : nullptr;
  s.a.o = o.p;
  if (fused_) {
    s.lse = static_cast<float*>(make(rows * heads * len, DType::kFp32, "attention_lse").p);
    EvoformerAttnFusedParams fp{s.a, s.lse};
    evoformer_attn_fused_fwd(fp, stream_);
  } else {
    s.a.probs = make(s.a.shape.logits_elements(), q.t, "attention_probs").p;
    evoformer_attn_naive_fwd(s.a, cublas(), stream_);
  }
  return s;
}

void Ops::attention_bwd(Saved& s, const Tensor& d_o, Tensor& dq, Tensor& dk, Tensor& dv, Tensor* dbias) {
  if (dbias && dbias->t != DType::kFp32) throw std::logic_error("evoformer block: d(pair bias) is fp32");
  if (s.fused) {
    Tensor row_dot = make(s.a.shape.rows() * s.a.shape.heads * s.a.shape.len, DType::kFp32, "row_dot");
    EvoformerAttnFusedGrads g;
    g.d_o = d_o.p;
    g.dq = dq.p;
    g.dk = dk.p;
    g.dv = dv.p;
    g.row_dot = static_cast<float*>(row_dot.p);
    g.d_pair = dbias ? static_cast<float*>(dbias->p) : nullptr;
    evoformer_attn_fused_bwd(EvoformerAttnFusedParams{s.a, s.lse}, g, stream_);
    release(row_dot);
  } else {
    Tensor d_probs = make(s.a.shape.logits_elements(), s.a.io, "attention_d_probs");
    EvoformerAttnGrads g;
    g.d_o = d_o.p;
    g.dq = dq.p;
    g.dk = dk.p;
    g.dv = dv.p;
    g.d_probs = d_probs.p;
    g.d_pair = dbias ? static_cast<float*>(dbias->p) : nullptr;
    evoformer_attn_naive_bwd(s.a, g, cublas(), stream_);
    release(d_probs);
  }
}

void Ops::release_saved(Saved& s) {
  Tensor lse{s.lse, 1, DType::kFp32}, probs{s.a.probs, 1, s.a.io};
  release(lse);
  release(probs);
  s = Saved{};
}

namespace {

void upload_into(Ops& ops, Ops::Tensor& t, const std::vector<double>& v) {
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(t.n * dtype_bytes(t.t)));
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (t.t == DType::kFp32) {
      const float f = static_cast<float>(v[i]);
      std::memcpy(&bytes[i * 4], &f, 4);
    } else {
      const std::uint16_t h = float_to_bf16(static_cast<float>(v[i]));
      std::memcpy(&bytes[i * 2], &h, 2);
    }
  }
  CUDA_CHECK(cudaMemcpyAsync(t.p, bytes.data(), bytes.size(), cudaMemcpyHostToDevice, ops.stream()));
  CUDA_CHECK(cudaStreamSynchronize(ops.stream()));
}

Ops::Tensor upload(Ops& ops, const std::vector<double>& v, const char* what) {
  Ops::Tensor t = ops.alloc(static_cast<std::int64_t>(v.size()), MemoryKind::kActivations, what);
  upload_into(ops, t, v);
  return t;
}

std::vector<double> download(Ops& ops, const Ops::Tensor& t) {
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(t.n * dtype_bytes(t.t)));
  CUDA_CHECK(cudaMemcpyAsync(bytes.data(), t.p, bytes.size(), cudaMemcpyDeviceToHost, ops.stream()));
  CUDA_CHECK(cudaStreamSynchronize(ops.stream()));
  std::vector<double> out(static_cast<std::size_t>(t.n));
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (t.t == DType::kFp32) {
      float f;
      std::memcpy(&f, &bytes[i * 4], 4);
      out[i] = f;
    } else {
      std::uint16_t h;
      std::memcpy(&h, &bytes[i * 2], 2);
      out[i] = bf16_to_float(h);
    }
  }
  return out;
}

}  // namespace

EvoformerBlockRefRun run_evoformer_block_cuda(const EvoformerBlockDims& d, const EvoformerBlockInputs& in,
                                              bool fused_attention, DType io) {
  cudaStream_t stream = nullptr;
  CUDA_CHECK(cudaStreamCreate(&stream));
  EvoformerBlockRefRun run;
  {
    Ops ops(stream, fused_attention, io);
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
