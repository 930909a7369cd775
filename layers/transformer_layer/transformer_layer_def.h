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
// FFN (column-parallel QKV and FC1, row-parallel output and FC2, Megatron-LM). Its
// collectives are not written here: at the start of each block and pass the layer asks
// the strategies' emitters (workloads/parallel/tensor_parallel_comm.h around
// ulysses_comm.h, the ones model/comm_volume.cc prices) for that block's CommOps, and at
// each of Megatron's f/g points hands the next one, with the tensors it moves, to
// Ops::collective (EmittedOps checks the kind and that every op was taken). So the
// recorder records exactly the priced ops and an executor over a Communicator runs them:
//   tp only       all-reduce of the row-parallel output (forward) and of the column-
//                 parallel input gradient (backward)
//   sp=megatron   the norm output [s/tp] all-gathered before the column-parallel GEMMs (and
//                 again in backward, for the weight gradients), the row-parallel output
//                 reduce-scattered; backward gathers dY and reduce-scatters dX
//   sp=ulysses    the sequence split over P ranks everywhere but the attention core, which
//                 all-to-alls q, k, v to [s, H/P] and the context back (DeepSpeed-Ulysses);
//                 each all-to-all is packed and unpacked by transpose_blocks into tracked
//                 workspaces (DeepSpeed's .contiguous() copies); rotary runs after the
//                 all-to-all, on the whole sequence, so every rank rotates by the true
//                 positions
// The rows of a Megatron-SP shard are a contiguous block of the [b, s/P] rows (a batch
// block when b > 1); a Ulysses rank holds [b, its s/P positions].
//
// Backend contract (every tensor a contiguous array of `n` elements of an Elem type):
//   Tensor alloc(n, elem, kind, what) / release(t) / view(t, offset, n) (no ownership)
//   set_phase(phase)                                      forward / backward / recompute
//   layernorm_fwd(x, w, b, y, mean, rstd, rows, cols) / layernorm_bwd(dy, x, w, mean, rstd, dx, dw, db, rows, cols)
//   rmsnorm_fwd(x, w, y, rstd, rows, cols) / rmsnorm_bwd(dy, x, w, rstd, dx, dw, rows, cols)
//   gemm(ta, tb, m, n, k, alpha, A, B, beta, C)  row-major C = a op(A) op(B) + b C (as the block's)
//   bias_add(y, b, rows, cols) / bias_grad(dy, db, rows, cols)      (db written)
//   gemm_bias(m, n, k, A, W, b, C)     C = A W + b, b [n] broadcast over the m rows
//   gemm_gelu(m, n, k, A, W, b_or_null, u, a)   u = A W + b (kept for backward), a = gelu(u)
//       (tanh GELU, GPT-2/NeoX)
//   gemm_dgelu(m, n, k, dA, W, u, du, db_or_null)   du [m, n] = (dA W^T) * gelu'(u), dA
//       [m, k], W [n, k]; db = the column sums of du (written)
//   The three are one cuBLASLt call with a bias / GELU epilogue on CUDA (as Transformer
//   Engine's fused MLP); a CPU backend runs the GEMM into the output and the epilogue in
//   place, so no backend holds a tensor the definition does not.
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
//   io_dtype()   DType of Elem::kIo (what the emitters price a byte of activation at)
//   group_rank(group)   this rank's index in a GroupKind group (0 on one process)
//   collective(op, send, recv, reduction)   one emitted CommOp on these tensors, in the
//       nccl-tests convention of workloads/parallel/comm_ops.h: all_reduce send.n elements
//       (send may be recv: in place), all_gather send -> recv (group_size x send.n),
//       reduce_scatter send (group_size x recv.n) -> recv, all_to_all send.n elements in
//       group_size equal blocks. reduction: kSum or kMax (all-reduce). A backend checks
//       op.bytes against the tensors; one process without a Communicator runs one rank's
//       shard with the collectives as local copies (the memory is the shard's, the numbers
//       are not a layer's)
//   transpose_blocks(x, y, outer, blocks, inner, inverse)   y [blocks, outer, inner] =
//       x [outer, blocks, inner] (inverse: the other way), the all-to-alls' packing
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <stdexcept>

#include "workloads/config_error.h"
#include "workloads/parallel/comm_ops.h"
#include "workloads/parallel/tensor_parallel_comm.h"
#include "workloads/parallel/ulysses_comm.h"
#include "workloads/plan.h"
#include "workloads/specs.h"
#include "workloads/step_program.h"

namespace seqscale {

// What a tensor's elements are. kIo: the model's dtype (activations, weights); kFp32 always
// fp32 whatever the I/O dtype (norm statistics, the log-sum-exp, parameter gradients, master
// weights and Adam moments, the loss's running max/sum); kBool the bool mask; kInt32 tokens.
enum class Elem : std::uint8_t { kIo, kFp32, kBool, kInt32 };

// The reduction of Ops::collective's all-reduce: sums (partial products, gradients) or
// the maximum (the vocab-parallel loss's running max).
enum class Reduction : std::uint8_t { kSum, kMax };

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

// How a parameter is split over the TP group: the rank holds columns or rows
// [r, r + 1) / tp of the whole row-major [rows, cols] weight, in `halves` equal parts when
// the weight is [gate | up] (SwiGLU's FC1: each half split alike), or all of it
// (kReplicated: norms and the row-parallel biases, added after the reduction).
enum class TpSplit : std::uint8_t { kReplicated, kColumns, kRows };
struct ParamSplit {
  TpSplit split = TpSplit::kReplicated;
  std::int64_t rows = 0, cols = 0, halves = 1;  // the whole weight
};

// The part of a whole parameter TP rank `rank` of `tp` holds, in the rank's layout.
template <typename V>
std::vector<V> tp_shard(const std::vector<V>& whole, const ParamSplit& s, std::int64_t tp, std::int64_t rank) {
  if (s.split == TpSplit::kReplicated || tp == 1) return whole;
  std::vector<V> out;
  if (s.split == TpSplit::kRows) {
    const std::int64_t r = s.rows / tp;
    out.assign(whole.begin() + rank * r * s.cols, whole.begin() + (rank + 1) * r * s.cols);
    return out;
  }
  const std::int64_t part = s.cols / s.halves, c = part / tp;  // columns a rank holds of each half
  for (std::int64_t i = 0; i < s.rows; ++i)
    for (std::int64_t half = 0; half < s.halves; ++half) {
      const auto row = whole.begin() + i * s.cols + half * part + rank * c;
      out.insert(out.end(), row, row + c);
    }
  return out;
}

// What the emitters are handed for this layer: its model (dtype: the backend's I/O
// type, so the priced bytes are the bytes its tensors hold), plan and shape.
struct LayerEmitterArgs {
  TransformerSpec spec;
  Plan plan;
  RunShape shape;
  static LayerEmitterArgs from(const TransformerLayerDims& d, DType io, std::int64_t vocab = 0) {
    LayerEmitterArgs a;
    a.spec.layers = 1;
    a.spec.hidden = d.hidden;
    a.spec.heads = d.heads;
    a.spec.kv_heads = d.kv_heads;
    a.spec.ffn_hidden = d.ffn;
    a.spec.vocab = vocab;
    a.spec.dtype = io;
    a.spec.mlp = d.mlp;
    a.spec.norm = d.norm;
    a.spec.parallel_residual = d.parallel_residual;
    a.plan.tp = static_cast<std::int32_t>(d.tp);
    a.plan.dp = 1;
    a.plan.sp = d.sp;
    a.plan.sp_degree = static_cast<std::int32_t>(d.ulysses());
    a.plan.recompute = d.recompute;
    a.plan.attn = d.attn;
    a.shape = RunShape{d.seq, d.batch, d.batch};  // one micro-batch
    return a;
  }
};

// The CommOps of one block and pass as its emitter lists them, taken in order at the
// definition's f/g points. A kind the emitter did not list next, or an op left untaken
// when the next block opens, is a definition that drifted from its emitter: a logic_error
// naming the block.
class EmittedOps {
 public:
  template <class Emit>
  void open(const char* block, Emit&& emit) {
    close();
    ops_.clear();
    next_ = 0;
    block_ = block;
    emit(ops_);
  }
  const CommOp& take(Collective c) {
    if (next_ >= ops_.size() || ops_[next_].collective != c) {
      throw std::logic_error(std::string("transformer layer: ") + block_ + " runs " + std::string(collective_name(c)) +
                             " as collective " + std::to_string(next_) + ", its emitter listed " +
                             (next_ < ops_.size() ? std::string(collective_name(ops_[next_].collective)) : "no more"));
    }
    return ops_[next_++];
  }
  void close() {
    if (next_ != ops_.size()) {
      throw std::logic_error(std::string("transformer layer: ") + block_ + " took " + std::to_string(next_) + " of the " +
                             std::to_string(ops_.size()) + " collectives its emitter listed");
    }
  }

 private:
  CommOps ops_;
  std::size_t next_ = 0;
  const char* block_ = "";
};

template <class Ops>
class TransformerLayer {
 public:
  using T = typename Ops::Tensor;
  struct Param { T w, dw; };

  TransformerLayer(Ops& ops, const TransformerLayerDims& d)
      : ops_(ops), d_(d), emitter_(LayerEmitterArgs::from(d, ops.io_dtype())) {
    declare();
  }
  TransformerLayer(const TransformerLayer&) = delete;  // params_ points into the members
  TransformerLayer& operator=(const TransformerLayer&) = delete;

  const TransformerLayerDims& dims() const { return d_; }
  std::vector<Param*>& params() { return params_; }
  // How each of params() (same order) is split over the TP group (ParamSplit).
  const std::vector<ParamSplit>& param_splits() const { return splits_; }
  // The replicated parameters: under Megatron-SP each rank's gradients of these are
  // partial sums over its sequence shard (tensor_parallel_comm.h sequence_parallel_grads).
  std::vector<Param*> replicated_params() {
    std::vector<Param*> out;
    for (std::size_t i = 0; i < params_.size(); ++i)
      if (splits_[i].split == TpSplit::kReplicated) out.push_back(params_[i]);
    return out;
  }

  // y [rows_out, h] from x (the caller's; kept, not owned, until backward). The caller owns y.
  T forward(const T& x, const T* mask) {
    x_ = x;
    mask_ = mask;
    T y = forward_impl(Phase::kForward);
    if (d_.recompute == Recompute::kFull) release_saved();  // only the input stays
    return y;
  }

  // dx (allocated by the caller, written) from dy; releases everything forward kept. x
  // stays the caller's.
  void backward(const T& dy, T& dx) {
    if (d_.recompute == Recompute::kFull) {
      ops_.set_phase(Phase::kRecompute);
      T y = forward_impl(Phase::kRecompute);
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
    splits_.push_back({TpSplit::kReplicated, 1, d_.hidden, 1});
    if (d_.norm == NormKind::kLayerNorm) {
      n.b = make_param(d_.hidden, what);
      params_.push_back(&n.b);
      splits_.push_back({TpSplit::kReplicated, 1, d_.hidden, 1});
    }
  }
  // `split`: kColumns (column-parallel: out is this rank's 1/tp) or kRows (row-parallel:
  // in is); the whole weight is tp times larger along it. halves: SwiGLU's [gate | up].
  void make_linear(Linear& l, std::int64_t in, std::int64_t out, bool bias, const char* what, TpSplit split,
                   std::int64_t halves = 1) {
    l.in = in;
    l.out = out;
    l.bias = bias;
    l.w = make_param(in * out, what);
    params_.push_back(&l.w);
    const std::int64_t t = d_.tp;
    splits_.push_back(split == TpSplit::kColumns ? ParamSplit{split, in, out * t, halves} : ParamSplit{split, in * t, out, 1});
    if (bias) {
      l.b = make_param(out, what);
      params_.push_back(&l.b);
      splits_.push_back(split == TpSplit::kColumns ? ParamSplit{split, 1, out * t, halves}
                                                 : ParamSplit{TpSplit::kReplicated, 1, out, 1});
    }
  }
  void declare() {
    const std::int64_t h = d_.hidden, hd = d_.head_dim;
    make_norm(n1_, "norm1");
    make_linear(q_, h, d_.heads_local() * hd, d_.bias(), "attention_q", TpSplit::kColumns);
    make_linear(k_, h, d_.kv_local() * hd, d_.bias(), "attention_k", TpSplit::kColumns);
    make_linear(v_, h, d_.kv_local() * hd, d_.bias(), "attention_v", TpSplit::kColumns);
    // Row-parallel: the bias is added once, after the reduction, so it is not sharded.
    make_linear(o_, d_.heads_local() * hd, h, d_.bias(), "attention_dense", TpSplit::kRows);
    make_norm(n2_, "norm2");
    const std::int64_t f = d_.ffn_local();
    const bool swiglu = d_.mlp == MlpKind::kSwiglu;
    make_linear(fc1_, h, swiglu ? 2 * f : f, d_.bias(), "mlp_fc1", TpSplit::kColumns, swiglu ? 2 : 1);
    make_linear(fc2_, f, h, d_.bias(), "mlp_fc2", TpSplit::kRows);
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
    if (l.bias && add_bias) ops_.gemm_bias(rows, l.out, l.in, x, l.w.w, l.b.w, y);
    else ops_.gemm(false, false, rows, l.out, l.in, 1.0, x, l.w.w, 0.0, y);
    return y;
  }
  // dW = x^T dy (written); db = colsum(dy) when `with_bias`; dx (= or +=) dy W^T when given.
  void linear_bwd(Linear& l, const T& x, const T& dy, T* dx, bool dx_accumulate, std::int64_t rows, bool with_bias = true) {
    ops_.gemm(true, false, l.in, l.out, rows, 1.0, x, dy, 0.0, l.w.dw);
    if (l.bias && with_bias) ops_.bias_grad(dy, l.b.dw, rows, l.out);
    if (dx) ops_.gemm(false, true, rows, l.in, l.out, 1.0, dy, l.w.w, dx_accumulate ? 1.0 : 0.0, *dx);
  }
  // ---- collectives: the emitters' ops, in their order -------------------------------
  // Opens a tensor-parallel block's pass: its ops (the TP collectives around, for the
  // attention block, Ulysses' all-to-alls) from the emitters the model prices.
  void open_block(const char* block, Phase ph, bool attention) {
    const LayerEmitterArgs& e = emitter_;
    emitted_.open(block, [&](CommOps& o) {
      tensor_parallel_block(o, e.spec, e.plan, e.shape, ph, [&] {
        if (attention) ulysses_attention(o, e.spec, e.plan, e.shape, ph);
      });
    });
  }
  void comm(Collective c, const T& send, T& recv) { ops_.collective(emitted_.take(c), send, recv, Reduction::kSum); }

  // Megatron-SP's f: the sequence shard [rows_out, h] gathered to [rows_in, h] (a transient
  // the caller releases). Without it the shard itself is the GEMM input.
  T gather(const T& shard, const char* what) {
    if (!d_.megatron_sp()) return shard;
    T full = work(d_.rows_in() * d_.hidden, what);
    comm(Collective::kAllGather, shard, full);
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
      comm(Collective::kReduceScatter, partial, shard);
      release(partial);
      return shard;
    }
    if (d_.tp > 1) comm(Collective::kAllReduce, partial, partial);
    return partial;
  }
  // Ulysses (P ranks), a tensor of `heads` heads: [b, s/P, heads, d] (this rank's
  // positions, every head) -> [b, s, heads/P, d] (every position, this rank's heads).
  // Send block j holds head group j of this rank's rows; received block j holds rank j's
  // rows of this rank's heads (so with b = 1 the receive needs no unpacking). `in` released.
  T seq_to_heads(T& in, std::int64_t heads, const char* what) {
    if (d_.ulysses() == 1) return in;
    const std::int64_t P = d_.ulysses(), b = d_.batch, sl = d_.seq / P, inner = heads / P * d_.head_dim;
    const std::int64_t n = b * sl * heads * d_.head_dim;
    T send = work(n, "ulysses_send");
    ops_.transpose_blocks(in, send, b * sl, P, inner, false);
    release(in);
    if (b == 1) {
      T out = act(n, what);
      comm(Collective::kAllToAll, send, out);
      release(send);
      return out;
    }
    T recv = work(n, "ulysses_recv");
    comm(Collective::kAllToAll, send, recv);
    release(send);
    T out = act(n, what);
    ops_.transpose_blocks(recv, out, b, P, sl * inner, true);
    release(recv);
    return out;
  }
  // The inverse, [b, s, heads/P, d] -> [b, s/P, heads, d] (heads: the whole count);
  // `in` released when `release_in` (forward keeps the core's output for backward).
  T heads_to_seq(T& in, std::int64_t heads, const char* what, bool release_in = true) {
    if (d_.ulysses() == 1) return in;
    const std::int64_t P = d_.ulysses(), b = d_.batch, sl = d_.seq / P, inner = heads / P * d_.head_dim;
    const std::int64_t n = b * sl * heads * d_.head_dim;
    T send = in;  // with b = 1 block j (rank j's rows) is already contiguous
    if (b > 1) {
      send = work(n, "ulysses_send");
      ops_.transpose_blocks(in, send, b, P, sl * inner, false);
      if (release_in) release(in);
    }
    T recv = work(n, "ulysses_recv");
    comm(Collective::kAllToAll, send, recv);
    if (b > 1) release(send);
    else if (release_in) release(in);
    T out = act(n, what);
    ops_.transpose_blocks(recv, out, b * sl, P, inner, true);
    release(recv);
    return out;
  }

  // ---- forward -------------------------------------------------------------------------
  T forward_impl(Phase ph) {
    const std::int64_t ro = d_.rows_out(), ri = d_.rows_in(), h = d_.hidden, hd = d_.head_dim;
    n1s_ = norm_fwd(n1_, x_, ro);
    open_block("the attention block's forward", ph, /*attention=*/true);
    T a = gather(n1s_.y, "norm1_gathered");
    q_t_ = linear_fwd(q_, a, ri, "q");
    k_t_ = linear_fwd(k_, a, ri, "k");
    v_t_ = linear_fwd(v_, a, ri, "v");
    release_gathered(a);
    // The attention core sees the whole sequence and heads_local / P heads.
    q_t_ = seq_to_heads(q_t_, d_.heads_local(), "q_heads");
    k_t_ = seq_to_heads(k_t_, d_.kv_local(), "k_heads");
    v_t_ = seq_to_heads(v_t_, d_.kv_local(), "v_heads");
    if (d_.rotary_dims > 0) {
      const std::int64_t u = d_.ulysses();
      ops_.rotary(q_t_, d_.batch, d_.seq, d_.heads_local() / u, hd, d_.rotary_dims, false);
      ops_.rotary(k_t_, d_.batch, d_.seq, d_.kv_local() / u, hd, d_.rotary_dims, false);
    }
    core_o_ = act(ri * d_.heads_local() * hd, "attention_context");
    core_fwd(core_o_, /*recompute=*/false);
    if (d_.recompute == Recompute::kSelective) release(kept_);  // recomputed in backward
    // One tensor without Ulysses: the core's O and the dense layer's input.
    ctx_ = heads_to_seq(core_o_, d_.heads_local(), "attention_context_seq", /*release_in=*/false);
    T attn = linear_fwd(o_, ctx_, ri, "attention_dense_out", /*add_bias=*/false);
    attn = reduce(attn, "attention_dense_out");
    emitted_.close();
    if (o_.bias) ops_.bias_add(attn, o_.b.w, ro, h);
    T y{};
    if (d_.parallel_residual) {
      n2s_ = norm_fwd(n2_, x_, ro);
      T m = mlp_fwd(ph);
      y = act(ro * h, "layer_out");
      ops_.add(x_, attn, y, ro * h);
      ops_.accumulate(y, m, ro * h);
      release(m);
    } else {
      h1_ = act(ro * h, "residual1");
      ops_.add(x_, attn, h1_, ro * h);
      n2s_ = norm_fwd(n2_, h1_, ro);
      T m = mlp_fwd(ph);
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

  T mlp_fwd(Phase ph) {
    const std::int64_t ri = d_.rows_in(), f = d_.ffn_local();
    open_block("the MLP block's forward", ph, /*attention=*/false);
    T b_in = gather(n2s_.y, "norm2_gathered");
    if (d_.mlp == MlpKind::kGelu) {
      // FC1, its bias and the GELU in one GEMM (its epilogue); u, the GELU's input with
      // the bias added, is what the backward's gelu' reads.
      u_ = act(ri * f, "mlp_fc1_out");
      a_ = act(ri * f, "mlp_act");
      ops_.gemm_gelu(ri, f, d_.hidden, b_in, fc1_.w.w, fc1_.bias ? &fc1_.b.w : nullptr, u_, a_);
    } else {
      u_ = linear_fwd(fc1_, b_in, ri, "mlp_fc1_out");  // [gate | up]
      a_ = act(ri * f, "mlp_act");
      ops_.swiglu_fwd(u_, a_, ri, f);
    }
    release_gathered(b_in);
    T m = linear_fwd(fc2_, a_, ri, "mlp_out", /*add_bias=*/false);
    m = reduce(m, "mlp_out");
    emitted_.close();
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
    open_block("the MLP block's backward", Phase::kBackward, /*attention=*/false);
    T dm = gather_grad(dy, "d_mlp_out_gathered");
    if (fc2_.bias) ops_.bias_grad(dy, fc2_.b.dw, d_.rows_out(), h);  // bias after the reduction
    // FC2's weight gradient first, so the activation it reads is gone before the data
    // gradient's tensors exist.
    linear_bwd(fc2_, a_, dm, nullptr, false, ri, /*with_bias=*/false);
    release(a_);
    T du;
    const bool gelu = d_.mlp == MlpKind::kGelu;
    if (gelu) {
      // d(GELU output) never exists: FC2's data gradient, gelu' and FC1's bias gradient
      // are one GEMM (its epilogue) writing du.
      du = work(ri * f, "d_mlp_fc1_out");
      ops_.gemm_dgelu(ri, f, h, dm, fc2_.w.w, u_, du, fc1_.bias ? &fc1_.b.dw : nullptr);
      release_gathered(dm);
    } else {
      T da = work(ri * f, "d_mlp_act");
      ops_.gemm(false, true, ri, f, h, 1.0, dm, fc2_.w.w, 0.0, da);
      release_gathered(dm);
      du = work(ri * fc1_.out, "d_mlp_fc1_out");
      ops_.swiglu_bwd(da, u_, du, ri, f);
      release(da);
    }
    release(u_);
    T b_in = gather(n2s_.y, "norm2_gathered");
    T db_in = work(ri * h, "d_norm2_out");
    linear_bwd(fc1_, b_in, du, &db_in, false, ri, /*with_bias=*/!gelu);
    release_gathered(b_in);
    release(du);
    T d_in = reduce_grad(db_in, "d_norm2_out");
    emitted_.close();
    return d_in;
  }

  // The column-parallel input gradient reduced over the TP group (Megatron's f backward).
  T reduce_grad(T& partial, const char* what) {
    if (d_.megatron_sp()) {
      T shard = work(d_.rows_out() * d_.hidden, what);
      comm(Collective::kReduceScatter, partial, shard);
      release(partial);
      return shard;
    }
    if (d_.tp > 1) comm(Collective::kAllReduce, partial, partial);
    return partial;
  }

  // d(norm1 output) [rows_out, h] (new tensor) from the attention block's output gradient.
  T attention_bwd(const T& dy) {
    const std::int64_t ri = d_.rows_in(), h = d_.hidden, hd = d_.head_dim;
    const std::int64_t nq = ri * d_.heads_local() * hd, nkv = ri * d_.kv_local() * hd;
    open_block("the attention block's backward", Phase::kBackward, /*attention=*/true);
    T dO = gather_grad(dy, "d_attention_out_gathered");
    if (o_.bias) ops_.bias_grad(dy, o_.b.dw, d_.rows_out(), h);
    T dctx = work(nq, "d_attention_context");
    linear_bwd(o_, ctx_, dO, &dctx, false, ri, /*with_bias=*/false);
    release_gathered(dO);
    if (d_.ulysses() > 1) release(ctx_);
    ctx_ = T{};
    dctx = seq_to_heads(dctx, d_.heads_local(), "d_attention_context_heads");
    T dq = work(nq, "dq"), dk = work(nkv, "dk"), dv = work(nkv, "dv");
    core_bwd(dctx, dq, dk, dv);
    release(dctx);
    release(core_o_);
    release(q_t_);
    release(k_t_);
    release(v_t_);
    if (d_.rotary_dims > 0) {
      const std::int64_t u = d_.ulysses();
      ops_.rotary(dq, d_.batch, d_.seq, d_.heads_local() / u, hd, d_.rotary_dims, true);
      ops_.rotary(dk, d_.batch, d_.seq, d_.kv_local() / u, hd, d_.rotary_dims, true);
    }
    dq = heads_to_seq(dq, d_.heads_local(), "dq_seq");
    dk = heads_to_seq(dk, d_.kv_local(), "dk_seq");
    dv = heads_to_seq(dv, d_.kv_local(), "dv_seq");
    T a = gather(n1s_.y, "norm1_gathered");
    T da = work(ri * h, "d_norm1_out");
    linear_bwd(q_, a, dq, &da, false, ri);
    linear_bwd(k_, a, dk, &da, true, ri);
    linear_bwd(v_, a, dv, &da, true, ri);
    release_gathered(a);
    release(dq);
    release(dk);
    release(dv);
    T d_in = reduce_grad(da, "d_norm1_out");
    emitted_.close();
    return d_in;
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
  LayerEmitterArgs emitter_;
  EmittedOps emitted_;
  std::vector<Param*> params_;
  std::vector<ParamSplit> splits_;
  Norm n1_, n2_;
  Linear q_, k_, v_, o_, fc1_, fc2_;
  T x_{};
  const T* mask_ = nullptr;
  NormSaved n1s_, n2s_;
  T q_t_{}, k_t_{}, v_t_{}, kept_{}, core_o_{}, ctx_{}, h1_{}, u_{}, a_{};
};

}  // namespace seqscale
