// The CPU backends of the Evoformer block (evoformer_block_def.h). The reference: every
// tensor in double, every reduction accumulated in double, attention with pair bias computed
// directly from its definition (softmax(q k^T / sqrt(D) + b) v, gradients by the chain
// rule); it is what the CUDA backend is compared with, and its own gradients are checked
// against central differences (tests/kernels/evoformer_block_test.cpp).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <vector>

#include "common/check_result.h"
#include "layers/evoformer_block/evoformer_block_def.h"

namespace seqscale {

// Tolerance of a block backend against the reference (tests and bench checks), relative to
// each output tensor's largest magnitude: fp32 2e-4 (accumulation order only); bf16 6e-2
// (8 mantissa bits at every stored tensor of ~30 dependent ops, inputs and weights rounded too).
inline CheckTolerance evoformer_block_tolerance(DType t) {
  const double rel = t == DType::kBf16 ? 6e-2 : 2e-4;
  return {rel * 1e-3, 0, rel};
}

// S = double: the reference (every tensor and reduction in double). S = float: an fp32 CPU
// executor whose allocations are exactly the memory model's declarations for an fp32 block
// (attention keeps P naive or the log-sum-exp fused, backward workspaces as on the GPU),
// the block's memory self-consistency check (tests/model/evoformer_block_program_test.cpp).
template <typename S>
class EvoformerBlockCpuOpsT {
 public:
  struct Tensor {
    S* p = nullptr;
    std::int64_t n = 0;
  };
  struct Saved {
    Tensor q, k, v, bias, o;  // views of the caller's tensors (alive until backward)
    Tensor kept;              // naive: probabilities [rows, heads, len, len]; fused: lse [rows, heads, len]
    std::int64_t rows = 0, len = 0, heads = 0, head_dim = 0;
    bool has_bias = false;
  };
  using AllocFn = std::function<void*(std::size_t)>;
  using FreeFn = std::function<void(void*)>;

  explicit EvoformerBlockCpuOpsT(bool fused_attention = false, AllocFn alloc = {}, FreeFn free = {});
  ~EvoformerBlockCpuOpsT();
  EvoformerBlockCpuOpsT(const EvoformerBlockCpuOpsT&) = delete;
  EvoformerBlockCpuOpsT& operator=(const EvoformerBlockCpuOpsT&) = delete;

  Tensor alloc(std::int64_t n, MemoryKind kind, const char* what);
  void release(Tensor& t);
  Tensor param(std::int64_t n, const char* what) { return alloc(n, MemoryKind::kParameters, what); }
  Tensor param_grad(std::int64_t n, const char* what) { return alloc(n, MemoryKind::kGradients, what); }

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

  std::int64_t live_bytes() const { return live_bytes_; }
  std::int64_t peak_bytes() const { return peak_bytes_; }
  std::int64_t allocated_bytes() const { return allocated_bytes_; }  // every allocation, summed
  std::int64_t live_tensors() const { return static_cast<std::int64_t>(sizes_.size()); }

 private:
  double logit(const Saved& s, std::int64_t r, std::int64_t h, std::int64_t i, std::int64_t j) const;

  bool fused_;
  AllocFn alloc_;
  FreeFn free_;
  std::map<S*, std::int64_t> sizes_;  // live allocations, elements
  std::int64_t live_bytes_ = 0, peak_bytes_ = 0, allocated_bytes_ = 0;
};

extern template class EvoformerBlockCpuOpsT<double>;
extern template class EvoformerBlockCpuOpsT<float>;
using EvoformerBlockCpuOps = EvoformerBlockCpuOpsT<double>;     // the reference
using EvoformerBlockCpuExecOps = EvoformerBlockCpuOpsT<float>;  // the fp32 executor

// Convenience for tests and benchmarks: one block on CPU with weights, inputs and upstream
// gradients drawn from `seed` (weights scaled so activations stay O(1)).
struct EvoformerBlockRefRun {
  std::vector<double> m_out, z_out, dm0, dz0;
  std::vector<std::vector<double>> param_grads;  // in params() order
  std::int64_t peak_bytes = 0;
};
struct EvoformerBlockInputs {
  std::vector<double> m0, z0, dm_out, dz_out;
  std::vector<std::vector<double>> params;  // in params() order
};
EvoformerBlockInputs make_evoformer_block_inputs(const EvoformerBlockDims& d, unsigned seed);
EvoformerBlockRefRun run_evoformer_block_ref(const EvoformerBlockDims& d, const EvoformerBlockInputs& in);
// The scalar the gradients are of: <dm_out, m_out> + <dz_out, z_out> (for finite differences).
double evoformer_block_ref_loss(const EvoformerBlockDims& d, const EvoformerBlockInputs& in);

}  // namespace seqscale
