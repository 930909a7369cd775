// One training step of a stack of k GPT layers (transformer_layer_def.h), written once over
// the same backend `Ops`:
//   x0 = E[tokens] (+ P[positions] with learned positions)        vocab embedding
//   x_{l+1} = layer_l(x_l)                                         k layers
//   loss = mean CE(N_f(x_k) E^T, targets)                          tied output embedding
//   backward, then Adam on fp32 master weights (params = master in the I/O dtype)
// The cross-entropy never materialises the logits of the whole sequence: it walks the
// vocabulary in chunks of vocab_chunk columns keeping an fp32 running max and sum per token
// (online softmax, Milakov & Gimelshein 2018), saves the fp32 log-sum-exp, and in backward
// recomputes each chunk's logits, turns them into dlogits in place and feeds both GEMMs.
// Its peak is one [tokens, vocab_chunk] chunk in the I/O dtype plus 4 fp32 [tokens] vectors,
// where Megatron's vocab-parallel loss holds 18 B per logit of the whole sequence.
//
// Vocab-parallel at tp > 1 (Megatron's VocabParallelEmbedding and vocab-parallel cross
// entropy, workloads/parallel/vocab_parallel_comm.h, whose ops the stack takes as the
// layer takes its blocks'): the table is split by rows, V/tp on each TP rank, and the
// tied output projection uses the same slice. Every TP rank looks up all T = s*b/P
// tokens of its sequence group in its slice (zero rows elsewhere) and the partial rows
// are all-reduced (Megatron-SP: reduce-scattered to the rank's shard; its backward
// all-gathers dX). The loss (Megatron-SP: on the all-gathered final norm output) walks
// the rank's V/tp columns in chunks, then the running max is all-reduced (max), the sum
// of exponentials, rescaled to that max, and the target logit (summed), and d(final norm
// output) is all-reduced (reduce-scattered) in backward. Under Megatron-SP the replicated
// parameters' gradients (norms, row-parallel biases) are partial sums over the shards:
// after the backward they are all-reduced in one flat fp32 buffer
// (sequence_parallel_grads), as Megatron's finalize_model_grads does. The reduction of
// gradients over data-parallel and Ulysses ranks is the step's (data_parallel_comm.h),
// not the stack's. The learned position table covers the s/P positions of the rank's
// Ulysses slice (DS4Sci's partitioned table), replicated over TP; TP rank 0 adds it
// before the embedding's reduction. The mask (plan key mask: none | bool | fp32) is
// built at the start of the step and lives through it, as Megatron's
// get_ltor_masks_and_position_ids does.
//
// Extra backend calls (besides the layer's):
//   embedding_fwd(E, P_or_null, tokens, x, rows, seq_local, h, vocab_start)
//       x[r] = E[tok[r] - vocab_start] (a zero row when the id is outside E's rows) + P[r % seq_local]
//   embedding_bwd(dx, tokens, dE, dP_or_null, rows, seq_local, h, vocab_start)
//       dE[tok[r] - vocab_start] += dx[r] (ids in E's rows); dP written
//   fill_causal_mask(mask, seq)                                   mask[i][j] = j <= i
//   ce_chunk_fwd(logits, targets, run_max, run_sum, target_logit, rows, cols, col0, first)
//   ce_rescale(local_max, global_max, run_sum, rows)  run_sum *= exp(local_max - global_max)
//   ce_finish(run_max, run_sum, target_logit, lse, loss, rows)   loss = mean(lse - target_logit)
//   ce_chunk_bwd(logits, targets, lse, rows, cols, col0, scale)  logits <- scale (softmax - onehot)
//   adam(w, dw, master, m, v, n, step)                           one fused Adam over a tensor
// (col0 is the chunk's first column in the whole vocabulary: targets are global ids.)
#pragma once
#include <algorithm>
#include <memory>
#include <vector>

#include "layers/transformer_layer/transformer_layer_def.h"
#include "workloads/parallel/vocab_parallel_comm.h"

namespace seqscale {

struct TransformerStackDims {
  TransformerLayerDims layer;
  std::int64_t layers = 1;
  std::int64_t vocab = 0;
  std::int64_t vocab_chunk = 0;     // columns of logits per chunk (<= vocab)
  bool learned_positions = false;
  MaskKind mask = MaskKind::kNone;

  std::int64_t rows() const { return layer.rows_out(); }            // the residual stream's
  std::int64_t tokens() const { return layer.rows_in(); }           // T: the rank's tokens and targets
  std::int64_t seq_local() const { return layer.rows_in() / layer.batch; }  // position table rows
  std::int64_t vocab_local() const { return vocab / layer.tp; }     // the rank's table rows
  std::int64_t chunk() const { return std::min(vocab_chunk > 0 ? vocab_chunk : vocab_local(), vocab_local()); }
  // One-line ConfigError naming the field.
  void validate() const {
    if (vocab < 1) throw ConfigError("vocab: must be at least 1");
    if (vocab % layer.tp != 0) {
      throw ConfigError("vocab: " + std::to_string(vocab) + " is not divisible by tp=" + std::to_string(layer.tp) +
                        " (pad it, as Megatron's --make-vocab-size-divisible-by does)");
    }
  }
};

// Adam's hyper-parameters (GPT-NeoX 20B's, Black et al. 2022); they change no cost.
inline constexpr double kAdamLr = 1e-4, kAdamBeta1 = 0.9, kAdamBeta2 = 0.95, kAdamEps = 1e-8;

template <class Ops>
class TransformerStack {
 public:
  using T = typename Ops::Tensor;
  using Layer = TransformerLayer<Ops>;
  using Param = typename Layer::Param;

  TransformerStack(Ops& ops, const TransformerStackDims& d)
      : ops_(ops), d_((d.validate(), d)), emitter_(LayerEmitterArgs::from(d.layer, ops.io_dtype(), d.vocab)) {
    const std::int64_t h = d_.layer.hidden;
    emb_ = make_param(d_.vocab_local() * h, "embedding");
    if (d_.learned_positions) pos_ = make_param(d_.seq_local() * h, "position_embedding");
    for (std::int64_t l = 0; l < d_.layers; ++l) layers_.push_back(std::make_unique<Layer>(ops_, d_.layer));
    nf_w_ = make_param(h, "final_norm");
    if (d_.layer.norm == NormKind::kLayerNorm) nf_b_ = make_param(h, "final_norm");
    // Every weight, in one order: the embedding, the positions, the layers', the final norm.
    params_.push_back(&emb_);
    if (d_.learned_positions) params_.push_back(&pos_);
    for (auto& l : layers_)
      for (Param* p : l->params()) params_.push_back(p);
    params_.push_back(&nf_w_);
    if (d_.layer.norm == NormKind::kLayerNorm) params_.push_back(&nf_b_);
    // Mixed-precision Adam: fp32 master weights and both moments, 12 B a parameter.
    for (Param* p : params_) {
      states_.push_back({ops_.alloc(p->w.n, Elem::kFp32, MemoryKind::kOptimizerStates, "master_weights"),
                         ops_.alloc(p->w.n, Elem::kFp32, MemoryKind::kOptimizerStates, "adam_m"),
                         ops_.alloc(p->w.n, Elem::kFp32, MemoryKind::kOptimizerStates, "adam_v")});
    }
  }
  TransformerStack(const TransformerStack&) = delete;
  TransformerStack& operator=(const TransformerStack&) = delete;

  const TransformerStackDims& dims() const { return d_; }
  std::vector<Param*>& params() { return params_; }
  // How each of params() (same order) is split over the TP group: the table by rows
  // (vocab-parallel); the position table is the rank's Ulysses slice, whole over TP.
  std::vector<ParamSplit> param_splits() const {
    const std::int64_t h = d_.layer.hidden;
    std::vector<ParamSplit> out{{TpSplit::kRows, d_.vocab, h, 1}};
    if (d_.learned_positions) out.push_back({TpSplit::kReplicated, d_.seq_local(), h, 1});
    for (const auto& l : layers_) out.insert(out.end(), l->param_splits().begin(), l->param_splits().end());
    out.push_back({TpSplit::kReplicated, 1, h, 1});
    if (d_.layer.norm == NormKind::kLayerNorm) out.push_back({TpSplit::kReplicated, 1, h, 1});
    return out;
  }
  Layer& layer(std::int64_t i) { return *layers_[static_cast<std::size_t>(i)]; }

  // After the weights are loaded: master = weights, moments zero (the backends zero-fill).
  void sync_master() {
    for (std::size_t i = 0; i < params_.size(); ++i) ops_.copy(params_[i]->w, states_[i].master, params_[i]->w.n);
  }

  // Forward and backward (gradients written, not accumulated), then Adam when `update`.
  // tokens, targets (int32 [rows]) and loss (fp32 [1]) are the caller's.
  void step(const T& tokens, const T& targets, T& loss, bool update = true) {
    const std::int64_t R = d_.rows(), h = d_.layer.hidden, s = d_.layer.seq;
    ops_.set_phase(Phase::kForward);
    T mask{};
    if (d_.mask != MaskKind::kNone) {
      mask = ops_.alloc(s * s, d_.mask == MaskKind::kBool ? Elem::kBool : Elem::kFp32, MemoryKind::kActivations,
                        "attention_mask");
      ops_.fill_causal_mask(mask, s);
    }
    std::vector<T> xs(static_cast<std::size_t>(d_.layers + 1));
    xs[0] = embedding_fwd(tokens);
    for (std::int64_t l = 0; l < d_.layers; ++l) {
      xs[static_cast<std::size_t>(l + 1)] = layers_[static_cast<std::size_t>(l)]->forward(xs[static_cast<std::size_t>(l)], mask.n > 0 ? &mask : nullptr);
    }
    T& top = xs.back();
    loss_fwd(top, targets, loss);
    ops_.set_phase(Phase::kBackward);
    T dx = loss_bwd(top, targets);
    ops_.release(top);
    for (std::int64_t l = d_.layers - 1; l >= 0; --l) {
      T dprev = ops_.alloc(R * h, Elem::kIo, MemoryKind::kWorkspace, "d_layer_in");
      layers_[static_cast<std::size_t>(l)]->backward(dx, dprev);
      ops_.release(dx);
      if (l > 0) ops_.release(xs[static_cast<std::size_t>(l)]);
      dx = dprev;
    }
    embedding_bwd(dx, tokens);
    ops_.release(dx);
    ops_.release(xs[0]);
    if (mask.n > 0) ops_.release(mask);
    if (d_.layer.megatron_sp()) reduce_replicated_grads();
    if (!update) return;
    ops_.set_phase(Phase::kOptimizer);
    ++adam_step_;
    for (std::size_t i = 0; i < params_.size(); ++i) {
      ops_.adam(params_[i]->w, params_[i]->dw, states_[i].master, states_[i].m, states_[i].v, params_[i]->w.n, adam_step_);
    }
  }

 private:
  struct AdamState { T master, m, v; };

  Param make_param(std::int64_t n, const char* what) {
    return {ops_.alloc(n, Elem::kIo, MemoryKind::kParameters, what), ops_.alloc(n, Elem::kFp32, MemoryKind::kGradients, what)};
  }

  // ---- collectives: the vocab-parallel emitter's ops, in its order ---------------------
  void comm(Collective c, const T& send, T& recv, Reduction r = Reduction::kSum) {
    ops_.collective(emitted_.take(c), send, recv, r);
  }
  std::int64_t vocab_start() const {
    return d_.layer.tp > 1 ? ops_.group_rank(GroupKind::kTensor) * d_.vocab_local() : 0;
  }
  bool megatron_sp() const { return d_.layer.megatron_sp(); }

  // x0 [rows, h]: the rank's slice of the table looked up for its T tokens, the partial
  // rows summed over the TP group (reduce-scattered to the shard under Megatron-SP).
  T embedding_fwd(const T& tokens) {
    const std::int64_t T_ = d_.tokens(), R = d_.rows(), h = d_.layer.hidden;
    const LayerEmitterArgs& e = emitter_;
    emitted_.open("the embedding's forward", [&](CommOps& o) { vocab_embedding(o, e.spec, e.plan, e.shape, Phase::kForward); });
    const bool add_positions = d_.learned_positions && ops_.group_rank(GroupKind::kTensor) == 0;
    T looked_up = ops_.alloc(T_ * h, Elem::kIo, megatron_sp() ? MemoryKind::kWorkspace : MemoryKind::kActivations,
                             megatron_sp() ? "embedding_partial" : "embedding_out");
    ops_.embedding_fwd(emb_.w, add_positions ? &pos_.w : nullptr, tokens, looked_up, T_, d_.seq_local(), h, vocab_start());
    T x0 = looked_up;
    if (megatron_sp()) {
      x0 = ops_.alloc(R * h, Elem::kIo, MemoryKind::kActivations, "embedding_out");
      comm(Collective::kReduceScatter, looked_up, x0);
      ops_.release(looked_up);
    } else if (d_.layer.tp > 1) {
      comm(Collective::kAllReduce, looked_up, looked_up);
    }
    emitted_.close();
    return x0;
  }
  // The table's and the positions' gradients from d(x0) (Megatron-SP: all-gathered first).
  void embedding_bwd(const T& dx, const T& tokens) {
    const std::int64_t T_ = d_.tokens(), h = d_.layer.hidden;
    const LayerEmitterArgs& e = emitter_;
    emitted_.open("the embedding's backward", [&](CommOps& o) { vocab_embedding(o, e.spec, e.plan, e.shape, Phase::kBackward); });
    T* dpos = d_.learned_positions ? &pos_.dw : nullptr;
    if (megatron_sp()) {
      T full = ops_.alloc(T_ * h, Elem::kIo, MemoryKind::kWorkspace, "d_embedding_gathered");
      comm(Collective::kAllGather, dx, full);
      ops_.embedding_bwd(full, tokens, emb_.dw, dpos, T_, d_.seq_local(), h, vocab_start());
      ops_.release(full);
    } else {
      ops_.embedding_bwd(dx, tokens, emb_.dw, dpos, T_, d_.seq_local(), h, vocab_start());
    }
    emitted_.close();
  }
  // Megatron-SP: every replicated parameter's gradient summed over the TP group, in one
  // flat fp32 buffer (Megatron's _allreduce_layernorm_grads).
  void reduce_replicated_grads() {
    std::vector<Param*> reps;
    for (auto& l : layers_)
      for (Param* p : l->replicated_params()) reps.push_back(p);
    reps.push_back(&nf_w_);
    if (d_.layer.norm == NormKind::kLayerNorm) reps.push_back(&nf_b_);
    std::int64_t n = 0;
    for (Param* p : reps) n += p->dw.n;
    const LayerEmitterArgs& e = emitter_;
    emitted_.open("the replicated gradients' reduction",
                  [&](CommOps& o) { sequence_parallel_grads(o, e.plan, static_cast<double>(n), 4.0); });
    T flat = ops_.alloc(n, Elem::kFp32, MemoryKind::kWorkspace, "replicated_grads_flat");
    std::int64_t at = 0;
    for (Param* p : reps) {
      T v = ops_.view(flat, at, p->dw.n);
      ops_.copy(p->dw, v, p->dw.n);
      at += p->dw.n;
    }
    comm(Collective::kAllReduce, flat, flat);
    at = 0;
    for (Param* p : reps) {
      ops_.copy(ops_.view(flat, at, p->dw.n), p->dw, p->dw.n);
      at += p->dw.n;
    }
    ops_.release(flat);
    emitted_.close();
  }

  void loss_fwd(const T& x, const T& targets, T& loss) {
    const std::int64_t R = d_.rows(), T_ = d_.tokens(), h = d_.layer.hidden, V = d_.vocab_local(), Vc = d_.chunk();
    const LayerEmitterArgs& e = emitter_;
    emitted_.open("the loss's forward", [&](CommOps& o) { vocab_loss(o, e.spec, e.plan, e.shape, Phase::kForward); });
    hf_ = ops_.alloc(R * h, Elem::kIo, MemoryKind::kActivations, "final_norm_out");
    hf_rstd_ = ops_.alloc(R, Elem::kFp32, MemoryKind::kActivations, "norm_rstd");
    if (d_.layer.norm == NormKind::kLayerNorm) {
      hf_mean_ = ops_.alloc(R, Elem::kFp32, MemoryKind::kActivations, "norm_mean");
      ops_.layernorm_fwd(x, nf_w_.w, nf_b_.w, hf_, hf_mean_, hf_rstd_, R, h);
    } else {
      ops_.rmsnorm_fwd(x, nf_w_.w, hf_, hf_rstd_, R, h);
    }
    // The output layer's input: every token of the TP group (Megatron-SP gathers it; kept
    // for the backward's recomputed logits).
    hf_full_ = hf_;
    if (megatron_sp()) {
      hf_full_ = ops_.alloc(T_ * h, Elem::kIo, MemoryKind::kActivations, "final_norm_out_gathered");
      comm(Collective::kAllGather, hf_, hf_full_);
    }
    const std::int64_t v0 = vocab_start();
    T run_max = ops_.alloc(T_, Elem::kFp32, MemoryKind::kWorkspace, "ce_running_max");
    T run_sum = ops_.alloc(T_, Elem::kFp32, MemoryKind::kWorkspace, "ce_running_sum");
    T target_logit = ops_.alloc(T_, Elem::kFp32, MemoryKind::kWorkspace, "ce_target_logit");
    for (std::int64_t c0 = 0; c0 < V; c0 += Vc) {
      const std::int64_t vc = std::min(Vc, V - c0);
      T logits = ops_.alloc(T_ * vc, Elem::kIo, MemoryKind::kWorkspace, "logits_chunk");
      ops_.gemm(false, true, T_, vc, h, 1.0, hf_full_, ops_.view(emb_.w, c0 * h, vc * h), 0.0, logits);
      ops_.ce_chunk_fwd(logits, targets, run_max, run_sum, target_logit, T_, vc, v0 + c0, c0 == 0);
      ops_.release(logits);
    }
    lse_ = ops_.alloc(T_, Elem::kFp32, MemoryKind::kActivations, "ce_lse");
    if (d_.layer.tp > 1) {
      // Over the vocabulary slices: the max, the sum of exponentials under it, and the
      // target logit (zero on every rank but its slice's).
      T global_max = ops_.alloc(T_, Elem::kFp32, MemoryKind::kWorkspace, "ce_global_max");
      ops_.copy(run_max, global_max, T_);
      comm(Collective::kAllReduce, global_max, global_max, Reduction::kMax);
      ops_.ce_rescale(run_max, global_max, run_sum, T_);
      comm(Collective::kAllReduce, run_sum, run_sum);
      comm(Collective::kAllReduce, target_logit, target_logit);
      ops_.ce_finish(global_max, run_sum, target_logit, lse_, loss, T_);
      ops_.release(global_max);
    } else {
      ops_.ce_finish(run_max, run_sum, target_logit, lse_, loss, T_);
    }
    emitted_.close();
    ops_.release(target_logit);
    ops_.release(run_sum);
    ops_.release(run_max);
  }

  // d(stack output) (new tensor); writes the output embedding's share of dE.
  T loss_bwd(const T& x, const T& targets) {
    const std::int64_t R = d_.rows(), T_ = d_.tokens(), h = d_.layer.hidden, V = d_.vocab_local(), Vc = d_.chunk();
    const LayerEmitterArgs& e = emitter_;
    emitted_.open("the loss's backward", [&](CommOps& o) { vocab_loss(o, e.spec, e.plan, e.shape, Phase::kBackward); });
    const std::int64_t v0 = vocab_start();
    T dhf = ops_.alloc(T_ * h, Elem::kIo, MemoryKind::kWorkspace, "d_final_norm_out");
    for (std::int64_t c0 = 0; c0 < V; c0 += Vc) {
      const std::int64_t vc = std::min(Vc, V - c0);
      T logits = ops_.alloc(T_ * vc, Elem::kIo, MemoryKind::kWorkspace, "logits_chunk");
      ops_.gemm(false, true, T_, vc, h, 1.0, hf_full_, ops_.view(emb_.w, c0 * h, vc * h), 0.0, logits);
      ops_.ce_chunk_bwd(logits, targets, lse_, T_, vc, v0 + c0, 1.0 / static_cast<double>(T_));
      ops_.gemm(false, false, T_, h, vc, 1.0, logits, ops_.view(emb_.w, c0 * h, vc * h), c0 == 0 ? 0.0 : 1.0, dhf);
      T de = ops_.view(emb_.dw, c0 * h, vc * h);
      ops_.gemm(true, false, vc, h, T_, 1.0, logits, hf_full_, 0.0, de);
      ops_.release(logits);
    }
    ops_.release(lse_);
    // d(final norm output): partial over the vocabulary slices.
    if (megatron_sp()) {
      ops_.release(hf_full_);
      T shard = ops_.alloc(R * h, Elem::kIo, MemoryKind::kWorkspace, "d_final_norm_out_shard");
      comm(Collective::kReduceScatter, dhf, shard);
      ops_.release(dhf);
      dhf = shard;
    } else if (d_.layer.tp > 1) {
      comm(Collective::kAllReduce, dhf, dhf);
    }
    hf_full_ = T{};
    emitted_.close();
    T dx = ops_.alloc(R * h, Elem::kIo, MemoryKind::kWorkspace, "d_stack_out");
    if (d_.layer.norm == NormKind::kLayerNorm) {
      ops_.layernorm_bwd(dhf, x, nf_w_.w, hf_mean_, hf_rstd_, dx, nf_w_.dw, nf_b_.dw, R, h);
      ops_.release(hf_mean_);
    } else {
      ops_.rmsnorm_bwd(dhf, x, nf_w_.w, hf_rstd_, dx, nf_w_.dw, R, h);
    }
    ops_.release(hf_rstd_);
    ops_.release(hf_);
    ops_.release(dhf);
    return dx;
  }

  Ops& ops_;
  TransformerStackDims d_;
  LayerEmitterArgs emitter_;
  EmittedOps emitted_;
  Param emb_{}, pos_{}, nf_w_{}, nf_b_{};
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<Param*> params_;
  std::vector<AdamState> states_;
  T hf_{}, hf_full_{}, hf_mean_{}, hf_rstd_{}, lse_{};
  std::int64_t adam_step_ = 0;
};

}  // namespace seqscale

namespace seqscale {

// The two units the benches run and the recorder records, so a measured run and its
// program make the same calls in the same order (their peaks then agree byte for byte):
//   TransformerLayerStep   one layer: x, the mask, dy and dx allocated once; run() is the
//                          layer's forward (its output released at once) and backward
//   TransformerStackStep   the whole step: tokens, targets and the loss allocated once;
//                          run() is TransformerStack::step (forward, backward, Adam)
template <class Ops>
struct TransformerLayerStep {
  using T = typename Ops::Tensor;
  Ops& ops;
  TransformerLayer<Ops> layer;
  T x{}, mask{}, dy{}, dx{};
  TransformerLayerStep(Ops& o, const TransformerLayerDims& d, MaskKind mk) : ops(o), layer(o, d) {
    const std::int64_t n = d.rows_out() * d.hidden;
    x = ops.alloc(n, Elem::kIo, MemoryKind::kActivations, "layer_in");
    if (mk != MaskKind::kNone) {
      mask = ops.alloc(d.seq * d.seq, mk == MaskKind::kBool ? Elem::kBool : Elem::kFp32, MemoryKind::kActivations,
                       "attention_mask");
      ops.fill_causal_mask(mask, d.seq);
    }
    dy = ops.alloc(n, Elem::kIo, MemoryKind::kActivations, "d_layer_out");
    dx = ops.alloc(n, Elem::kIo, MemoryKind::kActivations, "d_layer_in");
  }
  void run() {
    ops.set_phase(Phase::kForward);
    T y = layer.forward(x, mask.n > 0 ? &mask : nullptr);
    ops.release(y);  // the next layer's input in a stack; here nothing reads it
    ops.set_phase(Phase::kBackward);
    layer.backward(dy, dx);
  }
};

template <class Ops>
struct TransformerStackStep {
  using T = typename Ops::Tensor;
  Ops& ops;
  TransformerStack<Ops> stack;
  T tokens{}, targets{}, loss{};
  TransformerStackStep(Ops& o, const TransformerStackDims& d) : ops(o), stack(o, d) {
    tokens = ops.alloc(d.tokens(), Elem::kInt32, MemoryKind::kActivations, "tokens");
    targets = ops.alloc(d.tokens(), Elem::kInt32, MemoryKind::kActivations, "targets");
    loss = ops.alloc(1, Elem::kFp32, MemoryKind::kActivations, "loss");
  }
  void run(bool update = true) { stack.step(tokens, targets, loss, update); }
};

}  // namespace seqscale
