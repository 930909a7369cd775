// The CPU backends of the GPT layer and stack (layers/transformer_layer/*_def.h):
//   TransformerCpuOpsT<double>  the reference: every tensor and every reduction in double,
//                               attention from its definition; its gradients are checked
//                               against central differences (tests/layers/)
//   TransformerCpuOpsT<float>   the fp32 executor: every tensor from the allocator it is
//                               given (the bench's tracking allocator), real math, so its
//                               peak is a measurement; it equals the recorder's replay byte
//                               for byte because both run the same definition
// Collectives: given HostCollectives (a comm::Communicator bound to this interface by the
// caller, e.g. the MPI one under mpirun; layers/ does not include comm/, cmake/Layers.cmake)
// whose groups match the plan, the fp32 executor runs each emitted CommOp on it, so the
// Communicator records (record_into) what the layer moved; the phase follows set_phase.
// Without one, a single process runs one rank's shard with the collectives as local
// copies: its memory is the shard's at any tp, its numbers are a layer's only at tp = 1
// and sp = none. The double reference runs on one process only.
//
// Untracked memory: per-row scratch of O(seq) scalars inside attention and the loss (what
// a GPU kernel holds in registers or shared memory), never a tensor the model prices.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <vector>

#include "common/check_result.h"
#include "layers/transformer_layer/transformer_stack_def.h"

namespace seqscale {

// Tolerance of an fp32 layer or stack against the double reference, relative to each
// output tensor's largest magnitude: 2e-4 (fp32 accumulation order over up to a few
// thousand terms, ~30 dependent ops; the Evoformer block's fp32 bound).
inline CheckTolerance transformer_layer_tolerance(DType t) {
  const double rel = t == DType::kBf16 ? 6e-2 : 2e-4;
  return {rel * 1e-3, 0, rel};
}

// Each gradient relative to its own largest value, except one that is zero up to rounding:
// the key bias's (softmax is invariant to a shift of a row's logits, and q . b_k shifts
// every logit of a row alike), judged against the largest gradient of the step instead.
CheckResult compare_transformer_grads(const std::vector<std::vector<double>>& got,
                                      const std::vector<std::vector<double>>& want, const CheckTolerance& tol);

// One emitted collective on fp32 host buffers, and the groups it runs on: what the
// executor needs of a communicator. The caller's adapter runs op.collective on op.group
// (all_reduce: send_count elements, send may be recv; all_gather: send_count in;
// reduce_scatter: recv_count out; all_to_all: send_count / op.group_size per peer).
class HostCollectives {
 public:
  virtual ~HostCollectives() = default;
  virtual int group_rank(GroupKind g) const = 0;
  virtual int group_size(GroupKind g) const = 0;
  virtual void set_phase(Phase p) = 0;
  virtual void run(const CommOp& op, const float* send, float* recv, std::int64_t send_count, std::int64_t recv_count,
                   Reduction reduction) = 0;
};

template <typename S>
class TransformerCpuOpsT {
 public:
  struct Tensor {
    S* p = nullptr;           // kIo / kFp32 elements (S); views point into their owner
    void* raw = nullptr;      // the allocation (kBool: uint8, kInt32: int32)
    std::int64_t n = 0;
    Elem elem = Elem::kIo;
    std::uint8_t* u8() const { return static_cast<std::uint8_t*>(raw); }
    std::int32_t* i32() const { return static_cast<std::int32_t*>(raw); }
  };
  using AllocFn = std::function<void*(std::size_t)>;
  using FreeFn = std::function<void(void*)>;

  // `comm`: not owned; null runs the collectives as one process's copies (see above).
  explicit TransformerCpuOpsT(AllocFn alloc = {}, FreeFn free = {}, HostCollectives* comm = nullptr);
  ~TransformerCpuOpsT();
  TransformerCpuOpsT(const TransformerCpuOpsT&) = delete;
  TransformerCpuOpsT& operator=(const TransformerCpuOpsT&) = delete;

  static std::int64_t elem_bytes(Elem e) {
    return e == Elem::kBool ? 1 : e == Elem::kInt32 ? 4 : static_cast<std::int64_t>(sizeof(S));
  }
  Tensor alloc(std::int64_t n, Elem elem, MemoryKind kind, const char* what);
  void release(Tensor& t);
  Tensor view(const Tensor& t, std::int64_t offset, std::int64_t n) const {
    return Tensor{t.p + offset, t.p + offset, n, t.elem};
  }
  void set_phase(Phase p) {
    if (comm_) comm_->set_phase(p);
  }
  // The executor prices its activations as fp32; the double reference stands in for it
  // (it runs on one process, where no collective moves a byte).
  DType io_dtype() const { return DType::kFp32; }
  int group_rank(GroupKind g) const { return comm_ ? comm_->group_rank(g) : 0; }

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
  // One emitted op on the Communicator, or as a local copy without one. Throws
  // std::logic_error when op.bytes is not what the tensors hold or the Communicator's
  // group is not op.group_size ranks.
  void collective(const CommOp& op, const Tensor& send, Tensor& recv, Reduction reduction);
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

  std::int64_t live_bytes() const { return live_bytes_; }
  std::int64_t peak_bytes() const { return peak_bytes_; }
  std::int64_t live_tensors() const { return static_cast<std::int64_t>(sizes_.size()); }

 private:
  AllocFn alloc_;
  FreeFn free_;
  HostCollectives* comm_ = nullptr;
  std::map<void*, std::int64_t> sizes_;  // live allocations, bytes
  std::int64_t live_bytes_ = 0, peak_bytes_ = 0;
};

extern template class TransformerCpuOpsT<double>;
extern template class TransformerCpuOpsT<float>;
using TransformerRefOps = TransformerCpuOpsT<double>;   // the reference
using TransformerExecOps = TransformerCpuOpsT<float>;   // the fp32 executor

// ---- whole runs on the reference (tests, the benches' checks) ------------------------------

// One layer: x and the upstream gradient dy drawn in [-1, 1), weights in [-w, w).
struct TransformerLayerInputs {
  std::vector<double> x, dy;
  std::vector<std::vector<double>> params;  // in params() order
};
struct TransformerLayerRun {
  std::vector<double> y, dx;
  std::vector<std::vector<double>> param_grads;
};
// Weights small enough that every activation stays O(1) at the test sizes.
inline constexpr double kTransformerWeightRange = 0.3;
TransformerLayerInputs make_transformer_layer_inputs(const TransformerLayerDims& d, std::uint64_t seed);
// `mask`: the plan's mask kind (a [s, s] tensor the materialized softmax reads).
TransformerLayerRun run_transformer_layer_ref(const TransformerLayerDims& d, MaskKind mask,
                                              const TransformerLayerInputs& in);
double transformer_layer_ref_loss(const TransformerLayerDims& d, MaskKind mask, const TransformerLayerInputs& in);  // <dy, y>

// One stack step: tokens and targets in [0, vocab), weights as the layer's.
struct TransformerStackInputs {
  std::vector<std::int32_t> tokens, targets;
  std::vector<std::vector<double>> params;  // in TransformerStack::params() order
};
struct TransformerStackRun {
  double loss = 0;
  std::vector<std::vector<double>> param_grads;
};
TransformerStackInputs make_transformer_stack_inputs(const TransformerStackDims& d, std::uint64_t seed);
TransformerStackRun run_transformer_stack_ref(const TransformerStackDims& d, const TransformerStackInputs& in);

}  // namespace seqscale
