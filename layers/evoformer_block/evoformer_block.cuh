// Status: compiles for sm_80/sm_90; not yet run on a GPU (its test skips without one).
// The CUDA backend of the Evoformer block (evoformer_block_def.h): fp32 or bf16 storage
// (evoformer_block_fp32_tensor says which tensors stay fp32), fp32 math and accumulation;
// GEMMs through cuBLAS (strided-batched, row-major by operand swap),
// LayerNorm through kernels/layernorm, attention through kernels/evoformer_attn (the naive
// cuBLAS + softmax path that materialises the probabilities, or the fused kernel that keeps
// only the log-sum-exp), and small elementwise kernels. Memory comes from the caller's
// allocator so the harness's pool high-water mark sees every byte.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "kernels/evoformer_attn/evoformer_attn.cuh"
#include "layers/evoformer_block/evoformer_block_def.h"
#include "layers/evoformer_block/evoformer_block_ref.h"

namespace seqscale {

class EvoformerBlockCudaOps {
 public:
  struct Tensor {
    void* p = nullptr;
    std::int64_t n = 0;
    DType t = DType::kFp32;
  };
  struct Saved {
    EvoformerAttnParams a;  // shape, q k v, bias, o (and probs on the naive path)
    float* lse = nullptr;   // fused path
    bool fused = false;
  };
  using AllocFn = std::function<void*(std::size_t)>;
  using FreeFn = std::function<void(void*)>;

  // `alloc`/`free` default to cudaMallocAsync/cudaFreeAsync on `stream`. Nothing touches
  // the device before the first kernel (the cuBLAS handle is made on first use), so a
  // benchmark can build the block in its setup and run it inside exec.
  EvoformerBlockCudaOps(cudaStream_t stream, bool fused_attention, DType io = DType::kFp32, AllocFn alloc = {},
                        FreeFn free = {});
  ~EvoformerBlockCudaOps();
  EvoformerBlockCudaOps(const EvoformerBlockCudaOps&) = delete;
  EvoformerBlockCudaOps& operator=(const EvoformerBlockCudaOps&) = delete;

  Tensor alloc(std::int64_t n, MemoryKind kind, const char* what);
  void release(Tensor& t);
  Tensor param(std::int64_t n, const char* what) { return alloc(n, MemoryKind::kParameters, what); }
  Tensor param_grad(std::int64_t n, const char* what) { return alloc(n, MemoryKind::kGradients, what); }
  DType io() const { return io_; }

  void layernorm_fwd(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, Tensor& mean, Tensor& rstd,
                     std::int64_t rows, std::int64_t cols);
  void layernorm_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                     Tensor& dx, Tensor& dw, Tensor& db, std::int64_t rows, std::int64_t cols);
  void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const Tensor& a,
            const Tensor& b, double beta, Tensor& c, std::int64_t batch);
  void bias_add(Tensor& y, const Tensor& b, std::int64_t rows, std::int64_t cols);
  void bias_grad(const Tensor& dy, Tensor& db, std::int64_t rows, std::int64_t cols);
  void sigmoid_mul(const Tensor& g, const Tensor& x, Tensor& y, std::int64_t n);
  void sigmoid_mul_bwd(const Tensor& dy, const Tensor& g, const Tensor& x, Tensor& dg, Tensor& dx, std::int64_t n);
  void relu(const Tensor& x, Tensor& y, std::int64_t n);
  void relu_bwd(const Tensor& dy, const Tensor& y, Tensor& dx, std::int64_t n);
  void add(const Tensor& a, const Tensor& b, Tensor& y, std::int64_t n);
  void accumulate(Tensor& y, const Tensor& x, std::int64_t n);
  void permute_0213(const Tensor& x, Tensor& y, std::int64_t d0, std::int64_t d1, std::int64_t d2, std::int64_t d3);
  void sum_rows(const Tensor& x, Tensor& y, std::int64_t batch, std::int64_t rows, std::int64_t cols, double alpha);
  void broadcast_rows(const Tensor& x, Tensor& y, std::int64_t batch, std::int64_t rows, std::int64_t cols,
                      double alpha);
  void softmax_rows(const Tensor& x, Tensor& y, std::int64_t rows, std::int64_t cols);
  void softmax_rows_bwd(const Tensor& dy, const Tensor& y, Tensor& dx, std::int64_t rows, std::int64_t cols);
  Saved attention_fwd(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* bias, Tensor& o,
                      std::int64_t rows, std::int64_t len, std::int64_t heads, std::int64_t head_dim);
  void attention_bwd(Saved& s, const Tensor& d_o, Tensor& dq, Tensor& dk, Tensor& dv, Tensor* dbias);
  void release_saved(Saved& s);

  cudaStream_t stream() const { return stream_; }
  void set_stream(cudaStream_t stream);

 private:
  void* raw_alloc(std::size_t bytes);
  void raw_free(void* p);
  cublasHandle_t cublas();

  Tensor make(std::int64_t n, DType t, const char* what);

  cudaStream_t stream_;
  bool fused_;
  DType io_;
  AllocFn alloc_;
  FreeFn free_;
  cublasHandle_t cublas_ = nullptr;
  std::vector<void*> owned_;  // everything still allocated, freed by the destructor
};

// One block forward + backward on the GPU with the weights, inputs and upstream gradients
// of `in` (rounded to `io`), results copied back as double (the GPU test compares them
// with run_evoformer_block_ref).
EvoformerBlockRefRun run_evoformer_block_cuda(const EvoformerBlockDims& d, const EvoformerBlockInputs& in,
                                              bool fused_attention, DType io = DType::kFp32);

}  // namespace seqscale
