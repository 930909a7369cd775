#include "layers/transformer_layer/transformer_layer_program.h"

#include <initializer_list>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "workloads/op_kinds.h"

namespace seqscale {

namespace {

double f(std::int64_t x) { return static_cast<double>(x); }

// Per-element FLOPs of the bandwidth-bound ops (only their bytes matter to the roofline;
// the counts keep the FLOP total honest): add/accumulate/bias 1, SwiGLU 6 / 10, rotary 3
// per rotated element, norms 8 forward / 12 backward, softmax 5 / 4, the loss's online
// softmax 4 per logit forward and 3 backward, Adam 12.
class RecordingOps {
 public:
  struct Tensor {
    std::int64_t id = 0;  // 0: null
    std::int64_t n = 0;
    std::int64_t elem = 0;  // bytes per element
    MemoryKind kind = MemoryKind::kActivations;
    const char* what = "";
    double bytes() const { return f(n) * f(elem); }
  };

  RecordingOps(StepProgram& prog, DType dtype) : prog_(prog), dtype_(dtype) {}

  void set_phase(Phase p) { phase_ = p; }

  Tensor alloc(std::int64_t n, Elem e, MemoryKind kind, const char* what) {
    if (n <= 0) throw std::logic_error(std::string("transformer program: empty tensor ") + what);
    const std::int64_t elem = e == Elem::kIo ? dtype_bytes(dtype_) : e == Elem::kBool ? 1 : 4;
    Tensor t{++next_id_, n, elem, kind, what};
    live_.insert(t.id);
    prog_.alloc(kind, static_cast<std::int64_t>(t.bytes()), what);
    return t;
  }
  void release(Tensor& t) {
    if (t.id == 0 || live_.erase(t.id) == 0) {
      throw std::logic_error(std::string("transformer program: release of a tensor that is not live: ") + t.what);
    }
    prog_.free(t.kind, static_cast<std::int64_t>(t.bytes()), t.what);
    t = Tensor{};
  }
  Tensor view(const Tensor& t, std::int64_t, std::int64_t n) const {
    check({&t});
    Tensor v = t;
    v.n = n;
    return v;
  }

  void layernorm_fwd(const Tensor& x, const Tensor& w, const Tensor&, Tensor& y, Tensor& mean, Tensor& rstd,
                     std::int64_t rows, std::int64_t cols) {
    check({&x, &w, &y, &mean, &rstd});
    norm(rows, cols, 8.0, x.elem + y.elem, 2.0 * mean.elem);
  }
  void layernorm_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                     Tensor& dx, Tensor& dw, Tensor& db, std::int64_t rows, std::int64_t cols) {
    check({&dy, &x, &w, &mean, &rstd, &dx, &dw, &db});
    norm(rows, cols, 12.0, dy.elem + x.elem + dx.elem, 2.0 * mean.elem);
  }
  void rmsnorm_fwd(const Tensor& x, const Tensor& w, Tensor& y, Tensor& rstd, std::int64_t rows, std::int64_t cols) {
    check({&x, &w, &y, &rstd});
    norm(rows, cols, 6.0, x.elem + y.elem, rstd.elem);
  }
  void rmsnorm_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, Tensor& dx, Tensor& dw,
                   std::int64_t rows, std::int64_t cols) {
    check({&dy, &x, &w, &rstd, &dx, &dw});
    norm(rows, cols, 9.0, dy.elem + x.elem + dx.elem, rstd.elem);
  }
  void gemm(bool, bool, std::int64_t m, std::int64_t n, std::int64_t k, double, const Tensor& a, const Tensor& b,
            double beta, Tensor& c) {
    check({&a, &b, &c});
    KernelCost cost;
    cost.flops = 2.0 * f(m) * f(n) * f(k);
    cost.bytes = f(m) * f(k) * f(a.elem) + f(k) * f(n) * f(b.elem) + f(m) * f(n) * f(c.elem) * (beta != 0.0 ? 2.0 : 1.0);
    record(op_kind::kGemm, {m, n, k}, cost);
  }
  void bias_add(Tensor& y, const Tensor& b, std::int64_t rows, std::int64_t cols) {
    check({&y, &b});
    elementwise({rows, cols}, f(rows * cols), 2.0 * f(rows * cols) * f(y.elem) + f(cols) * f(b.elem));
  }
  void bias_grad(const Tensor& dy, Tensor& db, std::int64_t rows, std::int64_t cols) {
    check({&dy, &db});
    elementwise({rows, cols}, f(rows * cols), f(rows * cols) * f(dy.elem) + f(cols) * f(db.elem));
  }
  // The fused GEMMs are one kernel each (cuBLASLt epilogues): a GEMM op whose bytes carry
  // the epilogue's extra reads and writes. Its FLOPs are the products only (MFU's
  // convention); the epilogue's 1-14 per output element are not counted.
  void gemm_bias(std::int64_t m, std::int64_t n, std::int64_t k, const Tensor& a, const Tensor& w, const Tensor& b,
                 Tensor& c) {
    check({&a, &w, &b, &c});
    fused_gemm(m, n, k, f(m * k) * f(a.elem) + f(k * n) * f(w.elem) + f(m * n) * f(c.elem) + b.bytes());
  }
  void gemm_gelu(std::int64_t m, std::int64_t n, std::int64_t k, const Tensor& a, const Tensor& w, const Tensor* b,
                 Tensor& u, Tensor& out) {
    check({&a, &w, &u, &out});
    if (b) check({b});
    fused_gemm(m, n, k,
               f(m * k) * f(a.elem) + f(k * n) * f(w.elem) + f(m * n) * f(u.elem + out.elem) + (b ? b->bytes() : 0.0));
  }
  void gemm_dgelu(std::int64_t m, std::int64_t n, std::int64_t k, const Tensor& da, const Tensor& w, const Tensor& u,
                  Tensor& du, Tensor* db) {
    check({&da, &w, &u, &du});
    if (db) check({db});
    fused_gemm(m, n, k,
               f(m * k) * f(da.elem) + f(n * k) * f(w.elem) + f(m * n) * f(u.elem + du.elem) + (db ? db->bytes() : 0.0));
  }
  void swiglu_fwd(const Tensor& gu, Tensor& a, std::int64_t rows, std::int64_t ff) {
    check({&gu, &a});
    elementwise({rows, ff}, 6.0 * f(rows * ff), f(rows * ff) * f(2 * gu.elem + a.elem));
  }
  void swiglu_bwd(const Tensor& da, const Tensor& gu, Tensor& dgu, std::int64_t rows, std::int64_t ff) {
    check({&da, &gu, &dgu});
    elementwise({rows, ff}, 10.0 * f(rows * ff), f(rows * ff) * f(da.elem + 2 * gu.elem + 2 * dgu.elem));
  }
  void add(const Tensor& a, const Tensor& b, Tensor& y, std::int64_t n) {
    check({&a, &b, &y});
    elementwise({n}, f(n), f(n) * f(a.elem + b.elem + y.elem));
  }
  void accumulate(Tensor& y, const Tensor& x, std::int64_t n) {
    check({&y, &x});
    elementwise({n}, f(n), f(n) * f(2 * y.elem + x.elem));
  }
  void copy(const Tensor& x, Tensor& y, std::int64_t n) {
    check({&x, &y});
    elementwise({n}, 0.0, f(n) * f(x.elem + y.elem));
  }
  void rotary(Tensor& x, std::int64_t batch, std::int64_t seq, std::int64_t heads, std::int64_t head_dim,
              std::int64_t rot_dims, bool) {
    check({&x});
    const double rotated = f(batch * seq * heads * rot_dims);
    elementwise({batch, seq, heads, head_dim, rot_dims}, 3.0 * rotated, 2.0 * rotated * f(x.elem));
  }
  // FlashAttention's convention (kernels/causal_attention/causal_attention_cost.h): the
  // causal forward 2 b H s^2 d, the backward 2.5x that.
  void attention_fwd(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& o, Tensor& lse, std::int64_t batch,
                     std::int64_t seq, std::int64_t heads, std::int64_t kv_heads, std::int64_t d) {
    check({&q, &k, &v, &o, &lse});
    KernelCost c;
    c.flops = 2.0 * f(batch * heads * d) * f(seq) * f(seq);
    c.bytes = f(batch * seq * d) * (f(heads) * f(q.elem + o.elem) + f(kv_heads) * f(k.elem + v.elem)) + lse.bytes();
    record(op_kind::kCausalAttentionFwd, {batch, seq, heads, kv_heads, d}, c);
  }
  void attention_bwd(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Tensor& lse,
                     const Tensor& d_o, Tensor& row_dot, Tensor& dq, Tensor& dk, Tensor& dv, std::int64_t batch,
                     std::int64_t seq, std::int64_t heads, std::int64_t kv_heads, std::int64_t d) {
    check({&q, &k, &v, &o, &lse, &d_o, &row_dot, &dq, &dk, &dv});
    KernelCost c;
    c.flops = 5.0 * f(batch * heads * d) * f(seq) * f(seq);
    c.bytes = f(batch * seq * d) * (f(heads) * f(q.elem + o.elem + d_o.elem + dq.elem) +
                                    f(kv_heads) * f(k.elem + v.elem + dk.elem + dv.elem)) +
              lse.bytes() + 2.0 * row_dot.bytes();
    record(op_kind::kCausalAttentionBwd, {batch, seq, heads, kv_heads, d}, c);
  }
  void head_scores(const Tensor& x, const Tensor& y, Tensor& out, std::int64_t batch, std::int64_t seq,
                   std::int64_t heads, std::int64_t y_heads, std::int64_t d, double) {
    check({&x, &y, &out});
    naive(batch, seq, heads, y_heads, d, x.bytes() + y.bytes() + out.bytes());
  }
  void head_probs_times(const Tensor& p, const Tensor& y, Tensor& out, std::int64_t batch, std::int64_t seq,
                        std::int64_t heads, std::int64_t y_heads, std::int64_t d, double) {
    check({&p, &y, &out});
    naive(batch, seq, heads, y_heads, d, p.bytes() + y.bytes() + out.bytes());
  }
  void head_probs_t_times(const Tensor& p, const Tensor& x, Tensor& out, std::int64_t batch, std::int64_t seq,
                          std::int64_t heads, std::int64_t out_heads, std::int64_t d, double) {
    check({&p, &x, &out});
    naive(batch, seq, heads, out_heads, d, p.bytes() + x.bytes() + out.bytes());
  }
  void masked_softmax(const Tensor& scores, const Tensor* mask, Tensor& probs, std::int64_t batch, std::int64_t heads,
                      std::int64_t seq) {
    check({&scores, &probs});
    if (mask) check({mask});
    const double n = f(batch * heads * seq * seq);
    record(op_kind::kSoftmax, {batch * heads * seq, seq},
           KernelCost{5.0 * n, n * f(scores.elem + probs.elem) + (mask ? mask->bytes() : 0.0), 0});
  }
  void softmax_bwd(const Tensor& dp, const Tensor& p, Tensor& ds, std::int64_t rows, std::int64_t cols) {
    check({&dp, &p, &ds});
    const double n = f(rows * cols);
    record(op_kind::kSoftmax, {rows, cols}, KernelCost{4.0 * n, n * f(dp.elem + p.elem + ds.elem), 0});
  }

  // ---- collectives ---------------------------------------------------------------------
  // The op as the definition took it from the emitter (workloads/parallel/), overlap and
  // all: the program carries exactly what model/comm_volume.cc prices. Checked against the
  // tensors it moves, as the executor checks it.
  DType io_dtype() const { return dtype_; }
  int group_rank(GroupKind g) const { return g == GroupKind::kTensor ? tp_rank_ : 0; }
  void collective(const CommOp& op, const Tensor& send, Tensor& recv, Reduction) {
    check({&send, &recv});
    const Tensor& moved = op.collective == Collective::kAllGather ? recv : send;
    if (static_cast<std::int64_t>(moved.bytes()) != op.bytes) {
      throw std::logic_error("transformer program: " + std::string(collective_name(op.collective)) + " of " +
                             std::to_string(op.bytes) + " B moves a tensor of " +
                             std::to_string(static_cast<std::int64_t>(moved.bytes())) + " B (" + moved.what + ")");
    }
    prog_.add(op);
  }
  // The all-to-alls' packing: a strided copy.
  void transpose_blocks(const Tensor& x, Tensor& y, std::int64_t outer, std::int64_t blocks, std::int64_t inner, bool) {
    check({&x, &y});
    elementwise({outer, blocks, inner}, 0.0, f(outer * blocks * inner) * f(x.elem + y.elem));
  }

  // ---- the stack's ---------------------------------------------------------------------
  void embedding_fwd(const Tensor& table, const Tensor* pos, const Tensor& tokens, Tensor& x, std::int64_t rows,
                     std::int64_t, std::int64_t h, std::int64_t) {
    check({&table, &tokens, &x});
    if (pos) check({pos});
    elementwise({rows, h}, pos ? f(rows * h) : 0.0, f(rows * h) * f(x.elem) * (pos ? 3.0 : 2.0) + tokens.bytes());
  }
  void embedding_bwd(const Tensor& dx, const Tensor& tokens, Tensor& dtable, Tensor* dpos, std::int64_t rows,
                     std::int64_t, std::int64_t h, std::int64_t) {
    check({&dx, &tokens, &dtable});
    if (dpos) check({dpos});
    elementwise({rows, h}, f(rows * h) * (dpos ? 2.0 : 1.0),
                f(rows * h) * (f(dx.elem) + 2.0 * f(dtable.elem) * (dpos ? 2.0 : 1.0)) + tokens.bytes());
  }
  void fill_causal_mask(Tensor& mask, std::int64_t) {
    check({&mask});
    elementwise({mask.n}, 0.0, mask.bytes());
  }
  void ce_chunk_fwd(const Tensor& logits, const Tensor& targets, Tensor& run_max, Tensor& run_sum, Tensor& target_logit,
                    std::int64_t rows, std::int64_t cols, std::int64_t, bool) {
    check({&logits, &targets, &run_max, &run_sum, &target_logit});
    record(op_kind::kCrossEntropy, {rows, cols},
           KernelCost{4.0 * f(rows * cols), logits.bytes() + 2.0 * (run_max.bytes() + run_sum.bytes()) + targets.bytes(), 0});
  }
  void ce_rescale(const Tensor& local_max, const Tensor& global_max, Tensor& run_sum, std::int64_t rows) {
    check({&local_max, &global_max, &run_sum});
    record(op_kind::kCrossEntropy, {rows},
           KernelCost{3.0 * f(rows), local_max.bytes() + global_max.bytes() + 2.0 * run_sum.bytes(), 0});
  }
  void ce_finish(const Tensor& run_max, const Tensor& run_sum, const Tensor& target_logit, Tensor& lse, Tensor& loss,
                 std::int64_t rows) {
    check({&run_max, &run_sum, &target_logit, &lse, &loss});
    record(op_kind::kCrossEntropy, {rows},
           KernelCost{3.0 * f(rows), run_max.bytes() + run_sum.bytes() + target_logit.bytes() + lse.bytes(), 0});
  }
  void ce_chunk_bwd(Tensor& logits, const Tensor& targets, const Tensor& lse, std::int64_t rows, std::int64_t cols,
                    std::int64_t, double) {
    check({&logits, &targets, &lse});
    record(op_kind::kCrossEntropy, {rows, cols},
           KernelCost{3.0 * f(rows * cols), 2.0 * logits.bytes() + lse.bytes() + targets.bytes(), 0});
  }
  void adam(Tensor& w, const Tensor& dw, Tensor& master, Tensor& m, Tensor& v, std::int64_t n, std::int64_t) {
    check({&w, &dw, &master, &m, &v});
    record(op_kind::kOptimizer, {n},
           KernelCost{12.0 * f(n), f(n) * f(w.elem + dw.elem + 2 * (master.elem + m.elem + v.elem)), 0});
  }

  void set_tp_rank(int r) { tp_rank_ = r; }
  std::size_t live_tensors() const { return live_.size(); }

 private:
  void check(std::initializer_list<const Tensor*> ts) const {
    for (const Tensor* t : ts) {
      if (t->id == 0 || live_.count(t->id) == 0) {
        throw std::logic_error(std::string("transformer program: use of a tensor that is not live: ") + t->what);
      }
    }
  }
  void record(const char* kernel, std::vector<std::int64_t> shape, const KernelCost& cost) {
    prog_.add(ComputeOp{kernel, std::move(shape), dtype_, cost, phase_, -1});
  }
  void fused_gemm(std::int64_t m, std::int64_t n, std::int64_t k, double bytes) {
    record(op_kind::kGemm, {m, n, k}, KernelCost{2.0 * f(m) * f(n) * f(k), bytes, 0});
  }
  void elementwise(std::vector<std::int64_t> shape, double flops, double bytes) {
    record(op_kind::kElementwise, std::move(shape), KernelCost{flops, bytes, 0});
  }
  void norm(std::int64_t rows, std::int64_t cols, double flops_per_elem, std::int64_t bytes_per_elem, double stat_bytes) {
    record(op_kind::kLayernorm, {rows, cols},
           KernelCost{flops_per_elem * f(rows * cols), f(rows * cols) * f(bytes_per_elem) + f(rows) * stat_bytes, 0});
  }
  // One product of the materialized path: b H s^2 d multiply-adds, the masked half too.
  void naive(std::int64_t batch, std::int64_t seq, std::int64_t heads, std::int64_t kv_heads, std::int64_t d, double bytes) {
    record(op_kind::kAttentionNaive, {batch, seq, heads, kv_heads, d},
           KernelCost{2.0 * f(batch * heads * d) * f(seq) * f(seq), bytes, 0});
  }

  StepProgram& prog_;
  DType dtype_;
  Phase phase_ = Phase::kForward;
  int tp_rank_ = 0;
  std::int64_t next_id_ = 0;
  std::unordered_set<std::int64_t> live_;
};

}  // namespace

StepProgram build_transformer_layer_program(const TransformerLayerDims& d, MaskKind mask, DType dtype, int tp_rank) {
  StepProgram prog;
  RecordingOps ops(prog, dtype);
  ops.set_tp_rank(tp_rank);
  TransformerLayerStep<RecordingOps> step(ops, d, mask);
  step.run();
  // Weights and gradients (2 a param), x, dy, dx and the mask: anything more is a leak.
  const std::size_t expected = 2 * step.layer.params().size() + 3 + (mask != MaskKind::kNone ? 1 : 0);
  if (ops.live_tensors() != expected) {
    throw std::logic_error("transformer layer program: " + std::to_string(ops.live_tensors()) +
                           " tensors live after backward, expected " + std::to_string(expected));
  }
  return prog;
}

StepProgram build_transformer_stack_program(const TransformerStackDims& d, DType dtype, int tp_rank) {
  StepProgram prog;
  RecordingOps ops(prog, dtype);
  ops.set_tp_rank(tp_rank);
  TransformerStackStep<RecordingOps> step(ops, d);
  step.run();
  // Weights, gradients and three optimizer states a param, tokens, targets and the loss.
  const std::size_t expected = 5 * step.stack.params().size() + 3;
  if (ops.live_tensors() != expected) {
    throw std::logic_error("transformer stack program: " + std::to_string(ops.live_tensors()) +
                           " tensors live after the step, expected " + std::to_string(expected));
  }
  return prog;
}

}  // namespace seqscale
