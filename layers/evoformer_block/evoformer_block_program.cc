#include "layers/evoformer_block/evoformer_block_program.h"

#include <cstring>
#include <initializer_list>
#include <map>
#include <stdexcept>
#include <string>
#include <tuple>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "kernels/evoformer_attn/evoformer_attn_cost.h"
#include "kernels/layernorm/layernorm_cost.h"
#include "workloads/op_kinds.h"

namespace seqscale {

namespace {

// Per-element FLOPs of the bandwidth-bound ops. Only their bytes matter to the roofline;
// the counts keep the FLOP total honest without pretending to precision:
//   bias_add, bias_grad, relu, relu_bwd, add, accumulate   1
//   sigmoid_mul                                            5 (negate, exp, add, divide; multiply)
//   sigmoid_mul_bwd                                        4 for the sigmoid, +1 for dx, +4 for dg
//   permute (and the identity copies the def makes with it) 0
constexpr double kSigmoidFlops = 4.0;

// A backend that runs nothing: it records what each call would cost into a StepProgram and
// checks the def's bookkeeping (no tensor used or released after its release).
class RecordingOps {
 public:
  struct Tensor {
    std::int64_t id = 0;  // 0: null tensor
    std::int64_t numel = 0;
    std::int64_t elem = 0;  // bytes per element
    MemoryKind kind = MemoryKind::kActivations;
    const char* what = "";
    double bytes() const { return static_cast<double>(numel) * static_cast<double>(elem); }
  };
  struct Saved {
    Tensor kept;  // naive: probabilities; fused: log-sum-exp
    EvoformerAttnShape shape;
    bool has_bias = false;
  };

  RecordingOps(StepProgram& prog, DType dtype, bool fused) : prog_(prog), dtype_(dtype), fused_(fused) {}

  void set_phase(Phase p) { phase_ = p; }

  Tensor alloc(std::int64_t n, MemoryKind kind, const char* what) {
    return make(n, evoformer_block_fp32_tensor(what, kind) ? 4 : dtype_bytes(dtype_), kind, what);
  }
  void release(Tensor& t) {
    if (t.id == 0 || live_.erase(t.id) == 0) {
      throw std::logic_error(std::string("evoformer block program: release of a tensor that is not live: ") + t.what);
    }
    prog_.free(t.kind, static_cast<std::int64_t>(t.bytes()), t.what);
    t = Tensor{};
  }
  // Mixed precision: the GEMMs read `dtype` weights and write fp32 gradients.
  Tensor param(std::int64_t n, const char* what) { return make(n, dtype_bytes(dtype_), MemoryKind::kParameters, what); }
  Tensor param_grad(std::int64_t n, const char* what) { return make(n, 4, MemoryKind::kGradients, what); }

  void layernorm_fwd(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, Tensor& mean, Tensor& rstd,
                     std::int64_t rows, std::int64_t cols) {
    check({&x, &w, &b, &y, &mean, &rstd});
    record(op_kind::kLayernormFwd, {rows, cols}, layernorm_fwd_cost(rows, cols, dtype_));
  }
  void layernorm_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                     Tensor& dx, Tensor& dw, Tensor& db, std::int64_t rows, std::int64_t cols) {
    check({&dy, &x, &w, &mean, &rstd, &dx, &dw, &db});
    const KernelCost c = layernorm_bwd_cost(rows, cols, dtype_);
    // The per-chunk fp32 partials of dweight/dbias live only during the call.
    transient(c.workspace_bytes, "layernorm_bwd_partials", [&] { record(op_kind::kLayernormBwd, {rows, cols}, c); });
  }
  void gemm(bool /*ta*/, bool /*tb*/, std::int64_t m, std::int64_t n, std::int64_t k, double /*alpha*/,
            const Tensor& a, const Tensor& b, double beta, Tensor& c, std::int64_t batch) {
    check({&a, &b, &c});
    const double mm = static_cast<double>(m), nn = static_cast<double>(n), kk = static_cast<double>(k);
    const double bt = static_cast<double>(batch);
    KernelCost cost;
    cost.flops = 2.0 * mm * nn * kk * bt;
    // Each operand at its own element size (a dW output is fp32); C is read too when beta != 0.
    cost.bytes = bt * (mm * kk * static_cast<double>(a.elem) + kk * nn * static_cast<double>(b.elem) +
                       mm * nn * static_cast<double>(c.elem) * (beta != 0.0 ? 2.0 : 1.0));
    record(op_kind::kGemm, {batch, m, n, k}, cost);
  }
  void bias_add(Tensor& y, const Tensor& b, std::int64_t rows, std::int64_t cols) {
    check({&y, &b});
    const double n = static_cast<double>(rows) * static_cast<double>(cols);
    elementwise({rows, cols}, n, 2.0 * n * y.elem + static_cast<double>(cols) * b.elem);
  }
  void bias_grad(const Tensor& dy, Tensor& db, std::int64_t rows, std::int64_t cols) {
    check({&dy, &db});
    const double n = static_cast<double>(rows) * static_cast<double>(cols);
    elementwise({rows, cols}, n, n * dy.elem + static_cast<double>(cols) * db.elem);
  }
  void sigmoid_mul(const Tensor& g, const Tensor& x, Tensor& y, std::int64_t n) {
    check({&g, &x, &y});
    const double e = static_cast<double>(n);
    elementwise({n}, (kSigmoidFlops + 1.0) * e, e * static_cast<double>(g.elem + x.elem + y.elem));
  }
  void sigmoid_mul_bwd(const Tensor& dy, const Tensor& g, const Tensor& x, Tensor& dg, Tensor& dx, std::int64_t n) {
    check({&dy, &g, &x});
    const double e = static_cast<double>(n);
    double flops = kSigmoidFlops * e, bytes = e * static_cast<double>(dy.elem + g.elem);
    if (dx.id != 0) {
      check({&dx});
      flops += e;
      bytes += e * static_cast<double>(dx.elem);
    }
    if (dg.id != 0) {  // dg = dy x s (1 - s) also reads x
      check({&dg});
      flops += 4.0 * e;
      bytes += e * static_cast<double>(x.elem + dg.elem);
    }
    elementwise({n}, flops, bytes);
  }
  void relu(const Tensor& x, Tensor& y, std::int64_t n) {
    check({&x, &y});
    elementwise({n}, static_cast<double>(n), static_cast<double>(n) * static_cast<double>(x.elem + y.elem));
  }
  void relu_bwd(const Tensor& dy, const Tensor& y, Tensor& dx, std::int64_t n) {
    check({&dy, &y, &dx});
    elementwise({n}, static_cast<double>(n), static_cast<double>(n) * static_cast<double>(dy.elem + y.elem + dx.elem));
  }
  void add(const Tensor& a, const Tensor& b, Tensor& y, std::int64_t n) {
    check({&a, &b, &y});
    elementwise({n}, static_cast<double>(n), static_cast<double>(n) * static_cast<double>(a.elem + b.elem + y.elem));
  }
  void accumulate(Tensor& y, const Tensor& x, std::int64_t n) {
    check({&y, &x});
    elementwise({n}, static_cast<double>(n), static_cast<double>(n) * static_cast<double>(2 * y.elem + x.elem));
  }
  // Global column attention (extra-MSA blocks): the row reductions and the small softmax.
  void sum_rows(const Tensor& x, Tensor& y, std::int64_t batch, std::int64_t rows, std::int64_t cols, double) {
    check({&x, &y});
    const double n = static_cast<double>(batch * rows * cols);
    elementwise({batch, rows, cols}, n, n * static_cast<double>(x.elem) + static_cast<double>(batch * cols * y.elem));
  }
  void broadcast_rows(const Tensor& x, Tensor& y, std::int64_t batch, std::int64_t rows, std::int64_t cols, double) {
    check({&x, &y});
    const double n = static_cast<double>(batch * rows * cols);
    elementwise({batch, rows, cols}, n, n * static_cast<double>(y.elem) + static_cast<double>(batch * cols * x.elem));
  }
  void softmax_rows(const Tensor& x, Tensor& y, std::int64_t rows, std::int64_t cols) {
    check({&x, &y});
    const double n = static_cast<double>(rows * cols);
    elementwise({rows, cols}, 5.0 * n, n * static_cast<double>(x.elem + y.elem));  // max, sub, exp, sum, div
  }
  void softmax_rows_bwd(const Tensor& dy, const Tensor& y, Tensor& dx, std::int64_t rows, std::int64_t cols) {
    check({&dy, &y, &dx});
    const double n = static_cast<double>(rows * cols);
    elementwise({rows, cols}, 4.0 * n, n * static_cast<double>(dy.elem + y.elem + dx.elem));
  }
  void permute_0213(const Tensor& x, Tensor& y, std::int64_t d0, std::int64_t d1, std::int64_t d2, std::int64_t d3) {
    check({&x, &y});
    const double n = static_cast<double>(d0 * d1 * d2 * d3);
    record(op_kind::kPermute, {d0, d1, d2, d3}, KernelCost{0.0, n * static_cast<double>(x.elem + y.elem), 0});
  }

  Saved attention_fwd(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* bias, Tensor& o,
                      std::int64_t rows, std::int64_t len, std::int64_t heads, std::int64_t head_dim) {
    check({&q, &k, &v, &o});
    if (bias) check({bias});
    Saved s;
    s.shape = EvoformerAttnShape{1, rows, len, heads, head_dim};
    s.has_bias = bias != nullptr;
    s.kept = fused_ ? make(rows * heads * len, 4, MemoryKind::kActivations, "attention_lse")
                    : make(s.shape.logits_elements(), dtype_bytes(dtype_), MemoryKind::kActivations,
                           "attention_probabilities");
    record(fused_ ? op_kind::kAttentionFusedFwd : op_kind::kAttentionNaiveFwd, {rows, len, heads, head_dim},
           evoformer_attn_fwd_cost(s.shape, dtype_, s.has_bias, fused_));
    return s;
  }
  // The fused backward also reads O (row_dot = dO . O), which the def has already released
  // by now; it is not checked here so that the program can still be built.
  void attention_bwd(Saved& s, const Tensor& d_o, Tensor& dq, Tensor& dk, Tensor& dv, Tensor* dbias) {
    check({&s.kept, &d_o, &dq, &dk, &dv});
    if (dbias) check({dbias});
    const EvoformerAttnShape& sh = s.shape;
    const std::int64_t ws = fused_ ? sh.rows() * sh.heads * sh.len * 4 : sh.logits_elements() * dtype_bytes(dtype_);
    transient(ws, fused_ ? "attention_row_dot" : "attention_d_probabilities", [&] {
      record(fused_ ? op_kind::kAttentionFusedBwd : op_kind::kAttentionNaiveBwd, {sh.n, sh.len, sh.heads, sh.head_dim},
             evoformer_attn_bwd_cost(sh, dtype_, s.has_bias, fused_));
    });
  }
  void release_saved(Saved& s) { release(s.kept); }

  std::size_t live_tensors() const { return live_.size(); }

 private:
  Tensor make(std::int64_t n, std::int64_t elem, MemoryKind kind, const char* what) {
    Tensor t{++next_id_, n, elem, kind, what};
    live_.insert(t.id);
    prog_.alloc(kind, static_cast<std::int64_t>(t.bytes()), what);
    return t;
  }
  void check(std::initializer_list<const Tensor*> ts) const {
    for (const Tensor* t : ts) {
      if (t->id == 0 || live_.count(t->id) == 0) {
        throw std::logic_error(std::string("evoformer block program: use of a tensor that is not live: ") + t->what);
      }
    }
  }
  void record(const char* kernel, std::vector<std::int64_t> shape, const KernelCost& cost) {
    prog_.add(ComputeOp{kernel, std::move(shape), dtype_, cost, phase_, 0});
  }
  void elementwise(std::vector<std::int64_t> shape, double flops, double bytes) {
    record(op_kind::kElementwise, std::move(shape), KernelCost{flops, bytes, 0});
  }
  template <class F>
  void transient(std::int64_t bytes, const char* what, F&& op) {
    if (bytes > 0) prog_.alloc(MemoryKind::kWorkspace, bytes, what);
    op();
    if (bytes > 0) prog_.free(MemoryKind::kWorkspace, bytes, what);
  }

  StepProgram& prog_;
  DType dtype_;
  bool fused_;
  Phase phase_ = Phase::kForward;
  std::int64_t next_id_ = 0;
  std::unordered_set<std::int64_t> live_;
};

}  // namespace

StepProgram build_evoformer_block_program(const EvoformerBlockDims& d, DType dtype, bool fused_attention) {
  StepProgram prog;
  RecordingOps ops(prog, dtype, fused_attention);
  EvoformerBlock<RecordingOps> block(ops, d);
  const std::int64_t nm = d.n_seq * d.n_res * d.c_m, nz = d.n_res * d.n_res * d.c_z;
  RecordingOps::Tensor m0 = ops.alloc(nm, MemoryKind::kActivations, "m0");
  RecordingOps::Tensor z0 = ops.alloc(nz, MemoryKind::kActivations, "z0");
  RecordingOps::Tensor dm_out = ops.alloc(nm, MemoryKind::kActivations, "dm_out");
  RecordingOps::Tensor dz_out = ops.alloc(nz, MemoryKind::kActivations, "dz_out");
  RecordingOps::Tensor dm0 = ops.alloc(nm, MemoryKind::kActivations, "dm0");
  RecordingOps::Tensor dz0 = ops.alloc(nz, MemoryKind::kActivations, "dz0");
  ops.set_phase(Phase::kForward);
  block.forward(m0, z0);
  ops.set_phase(Phase::kBackward);
  block.backward(dm_out, dz_out, dm0, dz0);
  ops.release(m0);
  ops.release(z0);
  ops.release(dm_out);
  ops.release(dz_out);
  // Every weight and gradient (2 per param), dm0 and dz0: anything more is a leak in the def.
  const std::size_t expected_live = 2 * block.params().size() + 2;
  if (ops.live_tensors() != expected_live) {
    throw std::logic_error("evoformer block program: " + std::to_string(ops.live_tensors()) +
                           " tensors live after backward, expected " + std::to_string(expected_live));
  }
  return prog;
}

EvoformerBlockTotals evoformer_block_totals(const EvoformerBlockDims& d, DType dtype, bool fused_attention) {
  const StepProgram prog = build_evoformer_block_program(d, dtype, fused_attention);
  EvoformerBlockTotals t;
  std::int64_t param_bytes = 0;
  for (const StepOp& op : prog.ops) {
    if (const auto* c = std::get_if<ComputeOp>(&op)) {
      (c->phase == Phase::kForward ? t.fwd_flops : t.bwd_flops) += c->cost.flops;
    } else if (const auto* e = std::get_if<MemoryEvent>(&op); e && e->kind == MemoryKind::kParameters) {
      param_bytes += e->bytes;
    }
  }
  t.param_count = param_bytes / dtype_bytes(dtype);
  t.peak_bytes = prog.replay_memory().peak_device_bytes;
  return t;
}

const StepProgram& evoformer_block_program_cached(const EvoformerBlockDims& d, DType dtype, bool fused_attention) {
  using Key = std::tuple<std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t,
                         std::int64_t, std::int64_t, std::int64_t, std::int64_t, bool, int, bool>;
  thread_local std::map<Key, StepProgram> cache;
  const Key key{d.n_seq, d.n_res, d.c_m, d.c_z, d.msa_heads, d.msa_head_dim, d.tri_heads, d.tri_head_dim, d.c_opm,
                d.c_tri_mul, d.transition, d.global_column, static_cast<int>(dtype), fused_attention};
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(key, build_evoformer_block_program(d, dtype, fused_attention)).first;
  return it->second;
}

}  // namespace seqscale
