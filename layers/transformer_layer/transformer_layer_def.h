// One GPT layer (GPT-NeoX / Megatron GPT / Llama), forward and backward, written once over a
// backend `Ops`, as layers/evoformer_block/evoformer_block_def.h is for the Evoformer:
//   sequential (Megatron GPT)   h1 = x + Attn(N1(x));   y = h1 + Mlp(N2(h1))
//   parallel   (GPT-NeoX)       y  = x + Attn(N1(x)) + Mlp(N2(x))
// N is LayerNorm or RMSNorm; Attn is QKV projection (kv_heads < heads: GQA), rotary on the
// first rotary_dims of each head (none with learned positions: the table is added at the
// embedding, transformer_stack_def.h), causal attention and the output projection; Mlp is
// bias + GELU (GPT families, with biases on every linear) or SwiGLU (Llama, no biases).
// Activations are [b, s, h] row-major; heads [b, s, heads, d]. No dropout (GPT-NeoX and
// Llama train without it; it changes neither FLOPs nor, beyond its masks, memory).
//
// Causal attention, either
//   fused         Ops::attention_fwd keeps only the fp32 log-sum-exp [b, H, s]; the backward
//                 recomputes P (FlashAttention-2) with an fp32 row_dot workspace [b, H, s];
//   materialized  scores [b, H, s, s] = Q K^T / sqrt(d) in the I/O dtype, a causal masked
//                 softmax into P (same size; scores released), context = P V; P kept for
//                 backward, which holds dP and dS [b, H, s, s] at once: the s^2 baseline.
// The plan's mask (none | bool | fp32) is a step-level [s, s] tensor the stack allocates and
// passes in; the materialized softmax reads it, the fused kernel is causal by construction
// and ignores it (as Megatron-DeepSpeed with FlashAttention kept building it).
//
// Activation checkpointing: none; selective (the attention core's P or lse released after
// forward and recomputed in backward, Korthikanti et al. 2022 s5); full (everything but the
// layer input released after forward, the layer recomputed at the start of its backward).
//
// Tensor / sequence parallel shard: the layer computes its 1/tp of the heads and of the
// FFN (column-parallel QKV and FC1, row-parallel output and FC2, Megatron-LM). The
// collectives are Ops calls at Megatron's f/g points; one rank runs them as copies, the
// recorder records them as CommOps:
//   tp only       tp_all_reduce of the row-parallel output (forward) and of the column-
//                 parallel input gradient (backward)
//   sp=megatron   the norm output [s/tp] all-gathered before the column-parallel GEMMs (and
//                 again in backward, for the weight gradients), the row-parallel output
//                 reduce-scattered; backward gathers dY and reduce-scatters dX
//   sp=ulysses    the sequence split over P ranks everywhere but the attention core, which
//                 all-to-alls q, k, v to [s, H/P] and the context back (DeepSpeed-Ulysses)
//
// Backend contract (every tensor a contiguous array of `n` elements of an Elem type):
//   Tensor alloc(n, elem, kind, what) / release(t) / view(t, offset, n) (no ownership)
//   set_phase(phase)                                      forward / backward / recompute
//   layernorm_fwd(x, w, b, y, mean, rstd, rows, cols) / layernorm_bwd(dy, x, w, mean, rstd, dx, dw, db, rows, cols)
//   rmsnorm_fwd(x, w, y, rstd, rows, cols) / rmsnorm_bwd(dy, x, w, rstd, dx, dw, rows, cols)
//   gemm(ta, tb, m, n, k, alpha, A, B, beta, C)  row-major C = a op(A) op(B) + b C (as the block's)
//   bias_add(y, b, rows, cols) / bias_grad(dy, db, rows, cols)      (db written)
//   bias_gelu_fwd(u, b_or_null, a, rows, cols)  a = gelu(u + b)   (tanh GELU, GPT-2/NeoX)
//   bias_gelu_bwd(da, u, b_or_null, du, rows, cols)
//   swiglu_fwd(gu, a, rows, f) a = silu(gu[:, :f]) * gu[:, f:] / swiglu_bwd(da, gu, dgu, rows, f)
//   add(a, b, y, n) / accumulate(y, x, n) / copy(x, y, n)
//   rotary(x, batch, seq, heads, head_dim, rot_dims, inverse)   in place, GPT-NeoX rotate_half
//   attention_fwd(q, k, v, o, lse, batch, seq, heads, kv_heads, head_dim)       fused, causal
//   attention_bwd(q, k, v, o, lse, d_o, row_dot, dq, dk, dv, batch, seq, heads, kv_heads, head_dim)
//   head_scores(x, y, out, batch, seq, heads, y_heads, head_dim, alpha)
//       out[b, h, i, j] = alpha x[b, i, h] . y[b, j, h / (heads / y_heads)]
//   head_probs_times(p, y, out, batch, seq, heads, y_heads, head_dim, alpha)
//       out[b, i, h] = alpha sum_j p[b, h, i, j] y[b, j, h / g]
//   head_probs_t_times(p, x, out, batch, seq, heads, out_heads, head_dim, alpha)
//       out[b, j, k] = alpha sum_{h / g == k} sum_i p[b, h, i, j] x[b, i, h]   (written)
//   masked_softmax(scores, mask_or_null, probs, batch, heads, seq)   causal; a given mask
//       [s, s] (bool or fp32 1/0) says which entries are kept
//   softmax_bwd(dp, p, ds, rows, cols)
//   tp_all_reduce(t, n)                   in place over the tensor-parallel group
//   sp_all_gather(shard, full, n_shard, ranks) / sp_reduce_scatter(full, shard, n_shard, ranks)
//   ulysses_all_to_all(in, out, n, ranks)
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "workloads/config_error.h"
#include "workloads/plan.h"
#include "workloads/specs.h"
#include "workloads/step_program.h"

namespace seqscale {

// What a tensor's elements are. kIo: the model's dtype (activations, weights); kFp32 always
// fp32 whatever the I/O dtype (norm statistics, the log-sum-exp, parameter gradients, master
// weights and Adam moments, the loss's running max/sum); kBool the bool mask; kInt32 tokens.
enum class Elem : std::uint8_t { kIo, kFp32, kBool, kInt32 };

// Head sizes the CUDA fused causal kernel is instantiated for (kernels/causal_attention);
// the CPU executor and the reference take any.
inline bool fused_head_dim_supported_on_gpu(std::int64_t d) { return d == 64 || d == 96 || d == 128; }

struct TransformerLayerDims {
  std::int64_t batch = 1, seq = 0;                    // the full sequence
  std::int64_t hidden = 0, heads = 0, kv_heads = 0, head_dim = 0, ffn = 0;
  std::int64_t rotary_dims = 0;                       // 0: no rotary (learned positions)
  MlpKind mlp = MlpKind::kGelu;
  NormKind norm = NormKind::kLayerNorm;
  bool parallel_residual = false;
  AttentionImpl attn = AttentionImpl::kFused;
  Recompute recompute = Recompute::kNone;
  std::int64_t tp = 1;
  SeqParallel sp = SeqParallel::kNone;                // none | megatron | ulysses
  std::int64_t sp_degree = 1;                         // Ulysses ranks

  bool bias() const { return mlp == MlpKind::kGelu; }
  std::int64_t ulysses() const { return sp == SeqParallel::kUlysses ? sp_degree : 1; }
  bool megatron_sp() const { return sp == SeqParallel::kMegatron && tp > 1; }
  // Rows of the residual stream on this rank, and rows the column-parallel GEMMs see.
  std::int64_t rows_out() const { return batch * seq / ulysses() / (megatron_sp() ? tp : 1); }
  std::int64_t rows_in() const { return batch * seq / ulysses(); }
  std::int64_t heads_local() const { return heads / tp; }   // after QKV (before Ulysses' all-to-all)
  std::int64_t kv_local() const { return kv_heads / tp; }
  std::int64_t ffn_local() const { return ffn / tp; }

  // The model's layer with the plan's choices. One-line ConfigError naming the field on
  // input no backend can run; `cuda` adds the fused kernel's head sizes.
  static TransformerLayerDims from(const TransformerSpec& t, const Plan& p, std::int64_t seq, std::int64_t batch,
                                   bool cuda = false) {
    TransformerLayerDims d;
    d.batch = batch;
    d.seq = seq;
    d.hidden = t.hidden;
    d.heads = t.heads;
    d.kv_heads = t.kv_heads > 0 ? t.kv_heads : t.heads;
    d.head_dim = t.head_dim();
    d.ffn = t.ffn_hidden;
    // GPT-NeoX: int(head_size * rotary_pct), rounded down to even (rotate_half pairs dims).
    d.rotary_dims = t.position == PositionEmbedding::kRotary
                        ? static_cast<std::int64_t>(static_cast<double>(d.head_dim) * t.rotary_pct) / 2 * 2
                        : 0;
    d.mlp = t.mlp;
    d.norm = t.norm;
    d.parallel_residual = t.parallel_residual;
    d.attn = p.attn;
    d.recompute = p.recompute;
    d.tp = p.tp;
    d.sp = p.sp;
    d.sp_degree = p.sp == SeqParallel::kUlysses ? p.sp_degree : 1;
    if (p.sp == SeqParallel::kLss) throw ConfigError("--plan: sp 'lss' is not run by the transformer layer (none, megatron or ulysses)");
    if (seq <= 0 || batch <= 0) throw ConfigError("seq: must be positive");
    if (d.heads % d.tp != 0) throw ConfigError("heads: " + std::to_string(d.heads) + " is not divisible by tp=" + std::to_string(d.tp));
    if (d.kv_heads % d.tp != 0) throw ConfigError("kv_heads: " + std::to_string(d.kv_heads) + " is not divisible by tp=" + std::to_string(d.tp));
    if (d.ffn % d.tp != 0) throw ConfigError("ffn_hidden: " + std::to_string(d.ffn) + " is not divisible by tp=" + std::to_string(d.tp));
    const std::int64_t u = d.ulysses();
    if (d.heads_local() % u != 0 || d.kv_local() % u != 0) {
      throw ConfigError("kv_heads: Ulysses needs heads/tp and kv_heads/tp divisible by sp_degree=" + std::to_string(u));
    }
    const std::int64_t seq_shards = u * (d.megatron_sp() ? d.tp : 1);
    if (seq % seq_shards != 0) {
      throw ConfigError("seq: " + std::to_string(seq) + " is not divisible by the sequence-parallel degree " + std::to_string(seq_shards));
    }
    if (cuda && d.attn == AttentionImpl::kFused && !fused_head_dim_supported_on_gpu(d.head_dim)) {
      throw ConfigError("heads: head size " + std::to_string(d.head_dim) +
                        " (hidden/heads) is not one the fused causal kernel supports (64, 96, 128); use attn=materialized");
    }
    return d;
  }
};

template <class Ops>
class TransformerLayer {
 public:
  using T = typename Ops::Tensor;
  struct Param { T w, dw; };

  TransformerLayer(Ops& ops, const TransformerLayerDims& d) : ops_(ops), d_(d) { declare(); }
  TransformerLayer(const TransformerLayer&) = delete;  // params_ points into the members
  TransformerLayer& operator=(const TransformerLayer&) = delete;

  const TransformerLayerDims& dims() const { return d_; }
  std::vector<Param*>& params() { return params_; }

  // y [rows_out, h] from x (the caller's; kept, not owned, until backward). The caller owns y.
  T forward(const T& x, const T* mask) {
    x_ = x;
    mask_ = mask;
    T y = forward_impl();
    if (d_.recompute == Recompute::kFull) release_saved();  // only the input stays
    return y;
  }

  // dx (allocated by the caller, written) from dy; releases everything forward kept. x
  // stays the caller's.
  void backward(const T& dy, T& dx) {
    if (d_.recompute == Recompute::kFull) {
      ops_.set_phase(Phase::kRecompute);
      T y = forward_impl();
      release(y);
      ops_.set_phase(Phase::kBackward);
    }
    backward_impl(dy, dx);
  }

 private:
  struct Norm { Param w, b; };
  struct Linear { Param w, b; bool bias = false; std::int64_t in = 0, out = 0; };  // w [in, out]
  struct NormSaved { T y{}, mean{}, rstd{}; };

  // ---- parameters ------------------------------------------------------------------
  Param make_param(std::int64_t n, const char* what) {
    return {ops_.alloc(n, Elem::kIo, MemoryKind::kParameters, what),
            ops_.alloc(n, Elem::kFp32, MemoryKind::kGradients, what)};
  }
  void make_norm(Norm& n, const char* what) {
    n.w = make_param(d_.hidden, what);
    params_.push_back(&n.w);
    if (d_.norm == NormKind::kLayerNorm) {
      n.b = make_param(d_.hidden, what);
      params_.push_back(&n.b);
    }
  }
  void make_linear(Linear& l, std::int64_t in, std::int64_t out, bool bias, const char* what) {
    l.in = in;
    l.out = out;
    l.bias = bias;
    l.w = make_param(in * out, what);
    params_.push_back(&l.w);
    if (bias) {
      l.b = make_param(out, what);
      params_.push_back(&l.b);
    }
  }
  void declare() {
    const std::int64_t h = d_.hidden, hd = d_.head_dim;
    make_norm(n1_, "norm1");
    make_linear(q_, h, d_.heads_local() * hd, d_.bias(), "attention_q");
    make_linear(k_, h, d_.kv_local() * hd, d_.bias(), "attention_k");
    make_linear(v_, h, d_.kv_local() * hd, d_.bias(), "attention_v");
    // Row-parallel: the bias is added once, after the reduction, so it is not sharded.
    make_linear(o_, d_.heads_local() * hd, h, d_.bias(), "attention_dense");
    make_norm(n2_, "norm2");
    const std::int64_t f = d_.ffn_local();
    make_linear(fc1_, h, d_.mlp == MlpKind::kSwiglu ? 2 * f : f, d_.bias(), "mlp_fc1");
    make_linear(fc2_, f, h, d_.bias(), "mlp_fc2");
  }

  // ---- helpers -----------------------------------------------------------------------
  T act(std::int64_t n, const char* what) { return ops_.alloc(n, Elem::kIo, MemoryKind::kActivations, what); }
  T work(std::int64_t n, const char* what) { return ops_.alloc(n, Elem::kIo, MemoryKind::kWorkspace, what); }
  void release(T& t) { ops_.release(t); }

  NormSaved norm_fwd(const Norm& n, const T& x, std::int64_t rows) {
    NormSaved s;
    s.y = act(rows * d_.hidden, "norm_out");
    s.rstd = ops_.alloc(rows, Elem::kFp32, MemoryKind::kActivations, "norm_rstd");
    if (d_.norm == NormKind::kLayerNorm) {
      s.mean = ops_.alloc(rows, Elem::kFp32, MemoryKind::kActivations, "norm_mean");
      ops_.layernorm_fwd(x, n.w.w, n.b.w, s.y, s.mean, s.rstd, rows, d_.hidden);
    } else {
      ops_.rmsnorm_fwd(x, n.w.w, s.y, s.rstd, rows, d_.hidden);
    }
    return s;
  }
  // dx (new tensor) from dy; releases the saved output and statistics.
  T norm_bwd(Norm& n, NormSaved& s, const T& x, const T& dy, std::int64_t rows) {
    T dx = work(rows * d_.hidden, "norm_dx");
    if (d_.norm == NormKind::kLayerNorm) {
      ops_.layernorm_bwd(dy, x, n.w.w, s.mean, s.rstd, dx, n.w.dw, n.b.dw, rows, d_.hidden);
      release(s.mean);
    } else {
      ops_.rmsnorm_bwd(dy, x, n.w.w, s.rstd, dx, n.w.dw, rows, d_.hidden);
    }
    release(s.rstd);
    release(s.y);
    return dx;
  }
  T linear_fwd(const Linear& l, const T& x, std::int64_t rows, const char* what, bool add_bias = true) {
    T y = act(rows * l.out, what);
    ops_.gemm(false, false, rows, l.out, l.in, 1.0, x, l.w.w, 0.0, y);
    if (l.bias && add_bias) ops_.bias_add(y, l.b.w, rows, l.out);
    return y;
  }
  // dW = x^T dy (written); db = colsum(dy) when `with_bias`; dx (= or +=) dy W^T when given.
  void linear_bwd(Linear& l, const T& x, const T& dy, T* dx, bool dx_accumulate, std::int64_t rows, bool with_bias = true) {
    ops_.gemm(true, false, l.in, l.out, rows, 1.0, x, dy, 0.0, l.w.dw);
    if (l.bias && with_bias) ops_.bias_grad(dy, l.b.dw, rows, l.out);
    if (dx) ops_.gemm(false, true, rows, l.in, l.out, 1.0, dy, l.w.w, dx_accumulate ? 1.0 : 0.0, *dx);
  }
  // Megatron-SP's f: the sequence shard [rows_out, h] gathered to [rows_in, h] (a transient
  // the caller releases). Without it the shard itself is the GEMM input.
  T gather(const T& shard, const char* what) {
    if (!d_.megatron_sp()) return shard;
    T full = work(d_.rows_in() * d_.hidden, what);
    ops_.sp_all_gather(shard, full, d_.rows_out() * d_.hidden, d_.tp);
    return full;
  }
  void release_gathered(T& t) {
    if (d_.megatron_sp()) release(t);
  }
  // Megatron's g: the row-parallel partial sums [rows_in, h] reduced over the TP group:
  // reduce-scattered to a new [rows_out, h] shard (SP) or all-reduced in place.
  T reduce(T& partial, const char* what) {
    if (d_.megatron_sp()) {
      T shard = act(d_.rows_out() * d_.hidden, what);
      ops_.sp_reduce_scatter(partial, shard, d_.rows_out() * d_.hidden, d_.tp);
      release(partial);
      return shard;
    }
    if (d_.tp > 1) ops_.tp_all_reduce(partial, d_.rows_in() * d_.hidden);
    return partial;
  }
  // Ulysses: [s/P, heads] <-> [s, heads/P], the same number of elements; `in` released.
  T all_to_all(T& in, std::int64_t n, const char* what) {
    if (d_.ulysses() == 1) return in;
    T out = act(n, what);
    ops_.ulysses_all_to_all(in, out, n, d_.ulysses());
    release(in);
    return out;
  }

  // ---- forward -------------------------------------------------------------------------
  T forward_impl() {
    const std::int64_t ro = d_.rows_out(), ri = d_.rows_in(), h = d_.hidden, hd = d_.head_dim;
    n1s_ = norm_fwd(n1_, x_, ro);
    T a = gather(n1s_.y, "norm1_gathered");
    q_t_ = linear_fwd(q_, a, ri, "q");
    k_t_ = linear_fwd(k_, a, ri, "k");
    v_t_ = linear_fwd(v_, a, ri, "v");
    release_gathered(a);
    if (d_.rotary_dims > 0) {
      ops_.rotary(q_t_, d_.batch, d_.seq / d_.ulysses(), d_.heads_local(), hd, d_.rotary_dims, false);
      ops_.rotary(k_t_, d_.batch, d_.seq / d_.ulysses(), d_.kv_local(), hd, d_.rotary_dims, false);
    }
    // The attention core sees the whole sequence and heads_local / P heads.
    q_t_ = all_to_all(q_t_, ri * d_.heads_local() * hd, "q_heads");
    k_t_ = all_to_all(k_t_, ri * d_.kv_local() * hd, "k_heads");
    v_t_ = all_to_all(v_t_, ri * d_.kv_local() * hd, "v_heads");
    core_o_ = act(ri * d_.heads_local() * hd, "attention_context");
    core_fwd(core_o_, /*recompute=*/false);
    if (d_.recompute == Recompute::kSelective) release(kept_);  // recomputed in backward
    if (d_.ulysses() > 1) {
      ctx_ = act(ri * d_.heads_local() * hd, "attention_context_seq");
      ops_.ulysses_all_to_all(core_o_, ctx_, ri * d_.heads_local() * hd, d_.ulysses());
    } else {
      ctx_ = core_o_;  // one tensor: the core's O and the dense layer's input
    }
    T attn = linear_fwd(o_, ctx_, ri, "attention_dense_out", /*add_bias=*/false);
    attn = reduce(attn, "attention_dense_out");
    if (o_.bias) ops_.bias_add(attn, o_.b.w, ro, h);
    T y{};
    if (d_.parallel_residual) {
      n2s_ = norm_fwd(n2_, x_, ro);
      T m = mlp_fwd();
      y = act(ro * h, "layer_out");
      ops_.add(x_, attn, y, ro * h);
      ops_.accumulate(y, m, ro * h);
      release(m);
    } else {
      h1_ = act(ro * h, "residual1");
      ops_.add(x_, attn, h1_, ro * h);
      n2s_ = norm_fwd(n2_, h1_, ro);
      T m = mlp_fwd();
      y = act(ro * h, "layer_out");
      ops_.add(h1_, m, y, ro * h);
      release(m);
    }
    release(attn);
    return y;
  }

  // The attention core on q_t_, k_t_, v_t_ into o; sets kept_ (P or the log-sum-exp).
  // recompute: only what backward needs again (P, or the fused kernel's lse; its output
  // goes to a scratch tensor, the stored context being identical).
  void core_fwd(T& o, bool recompute) {
    const std::int64_t b = d_.batch, s = d_.seq, H = d_.heads_local() / d_.ulysses();
    const std::int64_t KV = d_.kv_local() / d_.ulysses(), hd = d_.head_dim;
    if (d_.attn == AttentionImpl::kFused) {
      kept_ = ops_.alloc(b * H * s, Elem::kFp32, MemoryKind::kActivations, "attention_lse");
      if (recompute) {
        T scratch = work(b * s * H * hd, "attention_context_recomputed");
        ops_.attention_fwd(q_t_, k_t_, v_t_, scratch, kept_, b, s, H, KV, hd);
        release(scratch);
      } else {
        ops_.attention_fwd(q_t_, k_t_, v_t_, o, kept_, b, s, H, KV, hd);
      }
      return;
    }
    T scores = work(b * H * s * s, "attention_scores");
    ops_.head_scores(q_t_, k_t_, scores, b, s, H, KV, hd, 1.0 / std::sqrt(static_cast<double>(hd)));
    kept_ = act(b * H * s * s, "attention_probs");
    ops_.masked_softmax(scores, mask_, kept_, b, H, s);
    release(scores);
    if (!recompute) ops_.head_probs_times(kept_, v_t_, o, b, s, H, KV, hd, 1.0);
  }

  T mlp_fwd() {
    const std::int64_t ri = d_.rows_in(), f = d_.ffn_local();
    T b_in = gather(n2s_.y, "norm2_gathered");
    if (d_.mlp == MlpKind::kGelu) {
      // Megatron's fused bias-GELU: fc1 without its bias, gelu(u + b) reads it.
      u_ = linear_fwd(fc1_, b_in, ri, "mlp_fc1_out", /*add_bias=*/false);
      a_ = act(ri * f, "mlp_act");
      ops_.bias_gelu_fwd(u_, fc1_.bias ? &fc1_.b.w : nullptr, a_, ri, f);
    } else {
      u_ = linear_fwd(fc1_, b_in, ri, "mlp_fc1_out");  // [gate | up]
      a_ = act(ri * f, "mlp_act");
      ops_.swiglu_fwd(u_, a_, ri, f);
    }
    release_gathered(b_in);
    T m = linear_fwd(fc2_, a_, ri, "mlp_out", /*add_bias=*/false);
    m = reduce(m, "mlp_out");
    if (fc2_.bias) ops_.bias_add(m, fc2_.b.w, d_.rows_out(), d_.hidden);
    return m;
  }

  // Everything forward kept except the caller's input (full recompute drops it all).
  void release_saved() {
    for (T* t : {&n1s_.y, &n1s_.mean, &n1s_.rstd, &q_t_, &k_t_, &v_t_, &kept_, &n2s_.y, &n2s_.mean, &n2s_.rstd,
                 &u_, &a_, &h1_}) {
      if (live(*t)) release(*t);
    }
    if (d_.ulysses() > 1) release(ctx_);
    release(core_o_);
    ctx_ = T{};
  }
  static bool live(const T& t) { return t.n > 0; }

  // ---- backward ------------------------------------------------------------------------
  void backward_impl(const T& dy, T& dx) {
    const std::int64_t ro = d_.rows_out(), h = d_.hidden;
    // MLP branch: its output gradient is dy in both residual forms.
    T dn2 = mlp_bwd(dy);
    T dn2_in = norm_bwd(n2_, n2s_, d_.parallel_residual ? x_ : h1_, dn2, ro);
    release(dn2);
    T d_attn_out{};  // the gradient reaching the attention block's output
    if (d_.parallel_residual) {
      ops_.add(dy, dn2_in, dx, ro * h);  // dx = dy + d(norm2 input)
      release(dn2_in);
      d_attn_out = dy;
    } else {
      d_attn_out = work(ro * h, "d_residual1");
      ops_.add(dy, dn2_in, d_attn_out, ro * h);
      release(dn2_in);
      release(h1_);
    }
    T dn1 = attention_bwd(d_attn_out);
    T dn1_in = norm_bwd(n1_, n1s_, x_, dn1, ro);
    release(dn1);
    if (d_.parallel_residual) {
      ops_.accumulate(dx, dn1_in, ro * h);
    } else {
      ops_.add(d_attn_out, dn1_in, dx, ro * h);
      release(d_attn_out);
    }
    release(dn1_in);
  }

  // The gradient of the row-parallel output [rows_out, h] made whole for the GEMMs:
  // Megatron-SP gathers it (the reduce-scatter's backward); otherwise it is dy itself.
  T gather_grad(const T& dy, const char* what) { return gather(dy, what); }

  // d(norm2 output) [rows_out, h] (new tensor) from the MLP's output gradient.
  T mlp_bwd(const T& dy) {
    const std::int64_t ri = d_.rows_in(), f = d_.ffn_local(), h = d_.hidden;
    T dm = gather_grad(dy, "d_mlp_out_gathered");
    if (fc2_.bias) ops_.bias_grad(dy, fc2_.b.dw, d_.rows_out(), h);  // bias after the reduction
    T da = work(ri * f, "d_mlp_act");
    linear_bwd(fc2_, a_, dm, &da, false, ri, /*with_bias=*/false);
    release_gathered(dm);
    release(a_);
    T du = work(ri * fc1_.out, "d_mlp_fc1_out");
    if (d_.mlp == MlpKind::kGelu) {
      ops_.bias_gelu_bwd(da, u_, fc1_.bias ? &fc1_.b.w : nullptr, du, ri, f);
    } else {
      ops_.swiglu_bwd(da, u_, du, ri, f);
    }
    release(da);
    release(u_);
    T b_in = gather(n2s_.y, "norm2_gathered");
    T db_in = work(ri * h, "d_norm2_out");
    linear_bwd(fc1_, b_in, du, &db_in, false, ri);
    release_gathered(b_in);
    release(du);
    return reduce_grad(db_in, "d_norm2_out");
  }

  // The column-parallel input gradient reduced over the TP group (Megatron's f backward).
  T reduce_grad(T& partial, const char* what) {
    if (d_.megatron_sp()) {
      T shard = work(d_.rows_out() * d_.hidden, what);
      ops_.sp_reduce_scatter(partial, shard, d_.rows_out() * d_.hidden, d_.tp);
      release(partial);
      return shard;
    }
    if (d_.tp > 1) ops_.tp_all_reduce(partial, d_.rows_in() * d_.hidden);
    return partial;
  }

  // d(norm1 output) [rows_out, h] (new tensor) from the attention block's output gradient.
  T attention_bwd(const T& dy) {
    const std::int64_t ri = d_.rows_in(), h = d_.hidden, hd = d_.head_dim;
    const std::int64_t nq = ri * d_.heads_local() * hd, nkv = ri * d_.kv_local() * hd;
    T dO = gather_grad(dy, "d_attention_out_gathered");
    if (o_.bias) ops_.bias_grad(dy, o_.b.dw, d_.rows_out(), h);
    T dctx = work(nq, "d_attention_context");
    linear_bwd(o_, ctx_, dO, &dctx, false, ri, /*with_bias=*/false);
    release_gathered(dO);
    if (d_.ulysses() > 1) release(ctx_);
    ctx_ = T{};
    dctx = all_to_all(dctx, nq, "d_attention_context_heads");
    T dq = work(nq, "dq"), dk = work(nkv, "dk"), dv = work(nkv, "dv");
    core_bwd(dctx, dq, dk, dv);
    release(dctx);
    release(core_o_);
    release(q_t_);
    release(k_t_);
    release(v_t_);
    dq = all_to_all(dq, nq, "dq_seq");
    dk = all_to_all(dk, nkv, "dk_seq");
    dv = all_to_all(dv, nkv, "dv_seq");
    if (d_.rotary_dims > 0) {
      ops_.rotary(dq, d_.batch, d_.seq / d_.ulysses(), d_.heads_local(), hd, d_.rotary_dims, true);
      ops_.rotary(dk, d_.batch, d_.seq / d_.ulysses(), d_.kv_local(), hd, d_.rotary_dims, true);
    }
    T a = gather(n1s_.y, "norm1_gathered");
    T da = work(ri * h, "d_norm1_out");
    linear_bwd(q_, a, dq, &da, false, ri);
    linear_bwd(k_, a, dk, &da, true, ri);
    linear_bwd(v_, a, dv, &da, true, ri);
    release_gathered(a);
    release(dq);
    release(dk);
    release(dv);
    return reduce_grad(da, "d_norm1_out");
  }

  void core_bwd(const T& d_o, T& dq, T& dk, T& dv) {
    const std::int64_t b = d_.batch, s = d_.seq, H = d_.heads_local() / d_.ulysses();
    const std::int64_t KV = d_.kv_local() / d_.ulysses(), hd = d_.head_dim;
    if (d_.recompute == Recompute::kSelective) {
      ops_.set_phase(Phase::kRecompute);
      core_fwd(core_o_, /*recompute=*/true);
      ops_.set_phase(Phase::kBackward);
    }
    if (d_.attn == AttentionImpl::kFused) {
      T row_dot = ops_.alloc(b * H * s, Elem::kFp32, MemoryKind::kWorkspace, "attention_row_dot");
      ops_.attention_bwd(q_t_, k_t_, v_t_, core_o_, kept_, d_o, row_dot, dq, dk, dv, b, s, H, KV, hd);
      release(row_dot);
      release(kept_);
      return;
    }
    const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
    T dp = work(b * H * s * s, "attention_d_probs");
    ops_.head_scores(d_o, v_t_, dp, b, s, H, KV, hd, 1.0);
    ops_.head_probs_t_times(kept_, d_o, dv, b, s, H, KV, hd, 1.0);
    T ds = work(b * H * s * s, "attention_d_scores");
    ops_.softmax_bwd(dp, kept_, ds, b * H * s, s);
    release(dp);
    release(kept_);
    ops_.head_probs_times(ds, k_t_, dq, b, s, H, KV, hd, scale);
    ops_.head_probs_t_times(ds, q_t_, dk, b, s, H, KV, hd, scale);
    release(ds);
  }

  Ops& ops_;
  TransformerLayerDims d_;
  std::vector<Param*> params_;
  Norm n1_, n2_;
  Linear q_, k_, v_, o_, fc1_, fc2_;
  T x_{};
  const T* mask_ = nullptr;
  NormSaved n1s_, n2s_;
  T q_t_{}, k_t_{}, v_t_{}, kept_{}, core_o_{}, ctx_{}, h1_{}, u_{}, a_{};
};

}  // namespace seqscale
