// Status: compiles for sm_90; not yet run on a GPU (its tests skip without one).
// The CUDA backend of the GPT layer and stack (transformer_layer_def.h,
// transformer_stack_def.h): bf16 storage for the I/O dtype (fp32 also runs: the strict
// configuration the tests check first), fp32 for what the def marks Elem::kFp32 (norm
// statistics, the log-sum-exp, parameter gradients, master weights and Adam moments);
// fp32 math everywhere. Where each op goes:
//   GEMMs                cuBLAS (cublasGemmStridedBatchedEx, row-major by operand swap, fp32
//                        accumulation; fp32 I/O pedantic, no TF32); weight gradients bf16 x
//                        bf16 -> fp32 directly (Megatron's main_grad)
//   fused GEMMs          gemm_bias, gemm_gelu, gemm_dgelu: one cuBLASLt call each with the
//                        bias, GELU_AUX(_BIAS) or DGELU_BGRAD epilogue (kernels/gemm), as
//                        Transformer Engine's MLP; bf16 only (fp32 runs them apart, so its
//                        error stays accumulation order), and apart whenever cuBLASLt has no
//                        algorithm (an aux leading dimension not a multiple of 8) or
//                        set_gemm_epilogues(false) asks: the GEMM, then kernels/bias_gelu
//   norms                kernels/layernorm, kernels/rmsnorm (eps 1e-5, as the reference)
//   bias + GELU, SwiGLU  kernels/bias_gelu, kernels/swiglu;  rotary  kernels/rotary
//   fused attention      kernels/causal_attention (tensor cores for bf16, SIMT for fp32),
//                        deterministic backward (see below)
//   materialized         head_scores / head_probs_times / head_probs_t_times as strided-
//                        batched cuBLAS GEMMs over the heads, a causal (or mask-tensor)
//                        softmax kernel here, kernels/softmax's backward
//   the rest             small kernels here (adds, bias gradient, embedding, the chunked
//                        loss's online softmax, Adam), collectives as one-rank copies
//
// Memory: every tensor comes from the caller's allocator (the bench's pool), so the pool's
// high-water mark is the layer's peak. Besides the def's tensors the backend allocates only
// the kernels' transient workspaces, one at a time (LayerNorm/RMSNorm weight-gradient
// partials, <= 4 MiB at hidden 8192; the DGELU epilogue's bias gradient in bf16, [ffn], or
// apart a zero bias and kernels/bias_gelu's partials, 12 MiB at ffn 24576; for GQA on the
// fused path, one dK/dV pair per extra query group), so the measured peak is the recorded
// program's plus at most max_workspace_bytes(). cuBLAS and cuBLASLt take their workspaces
// from the device's current pool, not from the caller's allocator. FC1's bias gradient
// passes through bf16 when the DGELU epilogue makes it (cuBLASLt writes it in the output's
// type, as in Transformer Engine) before it is widened into the fp32 gradient.
// The fused backward runs CausalBwdMode::kDeterministic by default: no atomics, bitwise
// repeatable, ~1.4x the backward attention's tensor-core work, and nothing the program does
// not hold. set_attention_bwd(kAtomic) runs FlashAttention-2's and SDPA's default instead;
// its fp32 dQ accumulator [b, kv_heads, s, d] (2x a query group's dQ in bf16) is one more
// transient workspace.
//
// Streams: everything runs on the stream given (set_stream); memory from the allocator is
// used on that stream only. Nothing touches the device before the first op (the cuBLAS
// handle is made on first use).
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "kernels/causal_attention/causal_attention_cost.h"
#include "kernels/gemm/gemm.cuh"
#include "layers/transformer_layer/transformer_layer_cpu.h"
#include "layers/transformer_layer/transformer_stack_def.h"

namespace seqscale {

class TransformerCudaOps {
 public:
  struct Tensor {
    void* p = nullptr;
    std::int64_t n = 0;
    Elem elem = Elem::kIo;
    DType t = DType::kBf16;  // the storage: io for kIo, fp32, bool (uint8) or int32
  };
  using AllocFn = std::function<void*(std::size_t)>;
  using FreeFn = std::function<void(void*)>;

  // `alloc`/`free` default to cudaMallocAsync/cudaFreeAsync on `stream`. io: bf16 or fp32.
  explicit TransformerCudaOps(cudaStream_t stream, DType io = DType::kBf16, AllocFn alloc = {}, FreeFn free = {});
  ~TransformerCudaOps();
  TransformerCudaOps(const TransformerCudaOps&) = delete;
  TransformerCudaOps& operator=(const TransformerCudaOps&) = delete;

  DType io() const { return io_; }
  cudaStream_t stream() const { return stream_; }
  void set_stream(cudaStream_t stream);
  void synchronize();

  Tensor alloc(std::int64_t n, Elem elem, MemoryKind kind, const char* what);
  void release(Tensor& t);
  Tensor view(const Tensor& t, std::int64_t offset, std::int64_t n) const {
    return Tensor{static_cast<char*>(t.p) + offset * dtype_bytes(t.t), n, t.elem, t.t};
  }
  void set_phase(Phase) {}

  void layernorm_fwd(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, Tensor& mean, Tensor& rstd,
                     std::int64_t rows, std::int64_t cols);
  void layernorm_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                     Tensor& dx, Tensor& dw, Tensor& db, std::int64_t rows, std::int64_t cols);
  void rmsnorm_fwd(const Tensor& x, const Tensor& w, Tensor& y, Tensor& rstd, std::int64_t rows, std::int64_t cols);
  void rmsnorm_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, Tensor& dx, Tensor& dw,
                   std::int64_t rows, std::int64_t cols);
  void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const Tensor& a,
            const Tensor& b, double beta, Tensor& c);
  void bias_add(Tensor& y, const Tensor& b, std::int64_t rows, std::int64_t cols);
  void bias_grad(const Tensor& dy, Tensor& db, std::int64_t rows, std::int64_t cols);
  void gemm_bias(std::int64_t m, std::int64_t n, std::int64_t k, const Tensor& a, const Tensor& w, const Tensor& b,
                 Tensor& c);
  void gemm_gelu(std::int64_t m, std::int64_t n, std::int64_t k, const Tensor& a, const Tensor& w, const Tensor* b,
                 Tensor& u, Tensor& out);
  void gemm_dgelu(std::int64_t m, std::int64_t n, std::int64_t k, const Tensor& da, const Tensor& w, const Tensor& u,
                  Tensor& du, Tensor* db);
  // The fused GEMMs' cuBLASLt epilogues (default on; bf16 only), and how many calls ran
  // fused and how many apart (no algorithm, or off) since construction.
  void set_gemm_epilogues(bool on) { epilogues_ = on; }
  // How the fused backward forms dQ on tensor cores (default deterministic; fp32 runs the
  // SIMT kernels, deterministic by construction).
  void set_attention_bwd(CausalBwdMode mode) { attention_bwd_mode_ = mode; }
  std::int64_t fused_gemm_calls() const { return fused_gemms_; }
  std::int64_t unfused_gemm_calls() const { return unfused_gemms_; }
  void swiglu_fwd(const Tensor& gu, Tensor& a, std::int64_t rows, std::int64_t f);
  void swiglu_bwd(const Tensor& da, const Tensor& gu, Tensor& dgu, std::int64_t rows, std::int64_t f);
  void add(const Tensor& a, const Tensor& b, Tensor& y, std::int64_t n);
  void accumulate(Tensor& y, const Tensor& x, std::int64_t n);
  void copy(const Tensor& x, Tensor& y, std::int64_t n);
  void rotary(Tensor& x, std::int64_t batch, std::int64_t seq, std::int64_t heads, std::int64_t head_dim,
              std::int64_t rot_dims, bool inverse);
  void attention_fwd(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& o, Tensor& lse, std::int64_t batch,
                     std::int64_t seq, std::int64_t heads, std::int64_t kv_heads, std::int64_t head_dim);
  void attention_bwd(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Tensor& lse,
                     const Tensor& d_o, Tensor& row_dot, Tensor& dq, Tensor& dk, Tensor& dv, std::int64_t batch,
                     std::int64_t seq, std::int64_t heads, std::int64_t kv_heads, std::int64_t head_dim);
  void head_scores(const Tensor& x, const Tensor& y, Tensor& out, std::int64_t batch, std::int64_t seq,
                   std::int64_t heads, std::int64_t y_heads, std::int64_t head_dim, double alpha);
  void head_probs_times(const Tensor& p, const Tensor& y, Tensor& out, std::int64_t batch, std::int64_t seq,
                        std::int64_t heads, std::int64_t y_heads, std::int64_t head_dim, double alpha);
  void head_probs_t_times(const Tensor& p, const Tensor& x, Tensor& out, std::int64_t batch, std::int64_t seq,
                          std::int64_t heads, std::int64_t out_heads, std::int64_t head_dim, double alpha);
  void masked_softmax(const Tensor& scores, const Tensor* mask, Tensor& probs, std::int64_t batch, std::int64_t heads,
                      std::int64_t seq);
  void softmax_bwd(const Tensor& dp, const Tensor& p, Tensor& ds, std::int64_t rows, std::int64_t cols);
  // One process: the emitted collectives run as one rank's local copies
  // (transformer_layer_def.h); op.bytes is checked against the tensors.
  DType io_dtype() const { return io_; }
  std::int64_t group_rank(GroupKind) const { return 0; }
  void collective(const CommOp& op, const Tensor& send, Tensor& recv, Reduction reduction = Reduction::kSum);
  void transpose_blocks(const Tensor& x, Tensor& y, std::int64_t outer, std::int64_t blocks, std::int64_t inner,
                        bool inverse);
  // The stack's.
  void embedding_fwd(const Tensor& table, const Tensor* pos, const Tensor& tokens, Tensor& x, std::int64_t rows,
                     std::int64_t seq_local, std::int64_t h, std::int64_t vocab_start);
  void embedding_bwd(const Tensor& dx, const Tensor& tokens, Tensor& dtable, Tensor* dpos, std::int64_t rows,
                     std::int64_t seq_local, std::int64_t h, std::int64_t vocab_start);
  void fill_causal_mask(Tensor& mask, std::int64_t seq);
  void ce_chunk_fwd(const Tensor& logits, const Tensor& targets, Tensor& run_max, Tensor& run_sum,
                    Tensor& target_logit, std::int64_t rows, std::int64_t cols, std::int64_t col0, bool first);
  void ce_rescale(const Tensor& local_max, const Tensor& global_max, Tensor& run_sum, std::int64_t rows);
  void ce_finish(const Tensor& run_max, const Tensor& run_sum, const Tensor& target_logit, Tensor& lse, Tensor& loss,
                 std::int64_t rows);
  void ce_chunk_bwd(Tensor& logits, const Tensor& targets, const Tensor& lse, std::int64_t rows, std::int64_t cols,
                    std::int64_t col0, double scale);
  void adam(Tensor& w, const Tensor& dw, Tensor& master, Tensor& m, Tensor& v, std::int64_t n, std::int64_t step);

  // Bytes of the def's tensors (what the recorded program holds) and of everything,
  // the kernels' workspaces included; and the largest workspace allocated at once.
  std::int64_t tensor_peak_bytes() const { return tensor_peak_; }
  std::int64_t peak_bytes() const { return total_peak_; }
  std::int64_t max_workspace_bytes() const { return max_workspace_; }

 private:
  void* raw_alloc(std::size_t bytes);
  void raw_free(void* p);
  cublasHandle_t cublas();
  bool try_fused(const GemmParams& p);  // false: run it apart
  Tensor workspace(std::int64_t bytes, const char* what);
  void release_workspace(Tensor& t);
  // Row-major C = alpha op(A) op(B) + beta C over `batch` matrices with explicit leading
  // dimensions and element strides between the batch's matrices.
  void gemm_strided(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const void* a,
                    DType at, std::int64_t lda, std::int64_t stride_a, const void* b, DType bt, std::int64_t ldb,
                    std::int64_t stride_b, double beta, void* c, DType ct, std::int64_t ldc, std::int64_t stride_c,
                    std::int64_t batch);

  cudaStream_t stream_;
  DType io_;
  AllocFn alloc_;
  FreeFn free_;
  cublasHandle_t cublas_ = nullptr;
  std::unique_ptr<GemmRunner> lt_;
  void* lt_workspace_ = nullptr;
  bool epilogues_ = true;
  CausalBwdMode attention_bwd_mode_ = CausalBwdMode::kDeterministic;
  std::int64_t fused_gemms_ = 0, unfused_gemms_ = 0;
  std::map<void*, std::int64_t> owned_;  // live allocations (bytes), freed by the destructor
  std::int64_t tensor_live_ = 0, tensor_peak_ = 0, total_live_ = 0, total_peak_ = 0, max_workspace_ = 0;
};

// ---- whole runs on the GPU (the GPU tests) ------------------------------------------------

struct TransformerLayerCudaRun {
  TransformerLayerRun out;               // y, dx, parameter gradients, as doubles
  std::int64_t tensor_peak_bytes = 0;    // the def's tensors: the recorded program's peak
  std::int64_t peak_bytes = 0;           // everything the backend allocated
  std::int64_t max_workspace_bytes = 0;  // the kernels' transient workspace, largest
  std::int64_t fused_gemm_calls = 0, unfused_gemm_calls = 0;
};
// One layer forward + backward on the GPU with the weights and inputs of `in` (rounded to
// `io`); the caller's x, mask, dy and dx are allocated as TransformerLayerStep does.
// `gemm_epilogues`, `attention_bwd`: TransformerCudaOps::set_gemm_epilogues, set_attention_bwd.
TransformerLayerCudaRun run_transformer_layer_cuda(const TransformerLayerDims& d, MaskKind mask,
                                                   const TransformerLayerInputs& in, DType io,
                                                   bool gemm_epilogues = true,
                                                   CausalBwdMode attention_bwd = CausalBwdMode::kDeterministic);

struct TransformerStackCudaRun {
  TransformerStackRun out;
  std::int64_t tensor_peak_bytes = 0, peak_bytes = 0, max_workspace_bytes = 0;
};
// One stack step without the update (gradients of the given weights), as the reference's.
TransformerStackCudaRun run_transformer_stack_cuda(const TransformerStackDims& d, const TransformerStackInputs& in,
                                                   DType io);

}  // namespace seqscale
