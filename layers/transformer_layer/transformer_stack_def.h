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
// Not sharded over the vocabulary: with tp > 1 each rank holds the whole table and computes
// its own sequence rows (the vocab-parallel embedding and loss are issue 14's multi-rank
// work). The learned position table is the rank's slice of the sequence (DS4Sci's
// partitioned table). The mask (plan key mask: none | bool | fp32) is built at the start
// of the step and lives through it, as Megatron's get_ltor_masks_and_position_ids does.
//
// Extra backend calls (besides the layer's):
//   embedding_fwd(E, P_or_null, tokens, x, rows, seq_local, h)   x[r] = E[tok[r]] + P[r % seq_local]
//   embedding_bwd(dx, tokens, dE, dP_or_null, rows, seq_local, h) dE[tok[r]] += dx[r]; dP written
//   fill_causal_mask(mask, seq)                                   mask[i][j] = j <= i
//   ce_chunk_fwd(logits, targets, run_max, run_sum, target_logit, rows, cols, col0, first)
//   ce_finish(run_max, run_sum, target_logit, lse, loss, rows)   loss = mean(lse - target_logit)
//   ce_chunk_bwd(logits, targets, lse, rows, cols, col0, scale)  logits <- scale (softmax - onehot)
//   adam(w, dw, master, m, v, n, step)                           one fused Adam over a tensor
#pragma once
#include <algorithm>
#include <memory>
#include <vector>

#include "layers/transformer_layer/transformer_layer_def.h"

namespace seqscale {

struct TransformerStackDims {
  TransformerLayerDims layer;
  std::int64_t layers = 1;
  std::int64_t vocab = 0;
  std::int64_t vocab_chunk = 0;     // columns of logits per chunk (<= vocab)
  bool learned_positions = false;
  MaskKind mask = MaskKind::kNone;

  std::int64_t rows() const { return layer.rows_out(); }
  std::int64_t seq_local() const { return layer.rows_out() / layer.batch; }
  std::int64_t chunk() const { return std::min(vocab_chunk > 0 ? vocab_chunk : vocab, vocab); }
};

// Adam's hyper-parameters (GPT-NeoX 20B's, Black et al. 2022); they change no cost.
inline constexpr double kAdamLr = 1e-4, kAdamBeta1 = 0.9, kAdamBeta2 = 0.95, kAdamEps = 1e-8;

template <class Ops>
class TransformerStack {
 public:
  using T = typename Ops::Tensor;
  using Layer = TransformerLayer<Ops>;
  using Param = typename Layer::Param;

  TransformerStack(Ops& ops, const TransformerStackDims& d) : ops_(ops), d_(d) {
    const std::int64_t h = d_.layer.hidden;
    emb_ = make_param(d_.vocab * h, "embedding");
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
    xs[0] = ops_.alloc(R * h, Elem::kIo, MemoryKind::kActivations, "embedding_out");
    ops_.embedding_fwd(emb_.w, d_.learned_positions ? &pos_.w : nullptr, tokens, xs[0], R, d_.seq_local(), h);
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
    ops_.embedding_bwd(dx, tokens, emb_.dw, d_.learned_positions ? &pos_.dw : nullptr, R, d_.seq_local(), h);
    ops_.release(dx);
    ops_.release(xs[0]);
    if (mask.n > 0) ops_.release(mask);
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

  void loss_fwd(const T& x, const T& targets, T& loss) {
    const std::int64_t R = d_.rows(), h = d_.layer.hidden, V = d_.vocab, Vc = d_.chunk();
    hf_ = ops_.alloc(R * h, Elem::kIo, MemoryKind::kActivations, "final_norm_out");
    hf_rstd_ = ops_.alloc(R, Elem::kFp32, MemoryKind::kActivations, "norm_rstd");
    if (d_.layer.norm == NormKind::kLayerNorm) {
      hf_mean_ = ops_.alloc(R, Elem::kFp32, MemoryKind::kActivations, "norm_mean");
      ops_.layernorm_fwd(x, nf_w_.w, nf_b_.w, hf_, hf_mean_, hf_rstd_, R, h);
    } else {
      ops_.rmsnorm_fwd(x, nf_w_.w, hf_, hf_rstd_, R, h);
    }
    T run_max = ops_.alloc(R, Elem::kFp32, MemoryKind::kWorkspace, "ce_running_max");
    T run_sum = ops_.alloc(R, Elem::kFp32, MemoryKind::kWorkspace, "ce_running_sum");
    T target_logit = ops_.alloc(R, Elem::kFp32, MemoryKind::kWorkspace, "ce_target_logit");
    for (std::int64_t c0 = 0; c0 < V; c0 += Vc) {
      const std::int64_t vc = std::min(Vc, V - c0);
      T logits = ops_.alloc(R * vc, Elem::kIo, MemoryKind::kWorkspace, "logits_chunk");
      ops_.gemm(false, true, R, vc, h, 1.0, hf_, ops_.view(emb_.w, c0 * h, vc * h), 0.0, logits);
      ops_.ce_chunk_fwd(logits, targets, run_max, run_sum, target_logit, R, vc, c0, c0 == 0);
      ops_.release(logits);
    }
    lse_ = ops_.alloc(R, Elem::kFp32, MemoryKind::kActivations, "ce_lse");
    ops_.ce_finish(run_max, run_sum, target_logit, lse_, loss, R);
    ops_.release(target_logit);
    ops_.release(run_sum);
    ops_.release(run_max);
  }

  // d(stack output) (new tensor); writes the output embedding's share of dE.
  T loss_bwd(const T& x, const T& targets) {
    const std::int64_t R = d_.rows(), h = d_.layer.hidden, V = d_.vocab, Vc = d_.chunk();
    T dhf = ops_.alloc(R * h, Elem::kIo, MemoryKind::kWorkspace, "d_final_norm_out");
    for (std::int64_t c0 = 0; c0 < V; c0 += Vc) {
      const std::int64_t vc = std::min(Vc, V - c0);
      T logits = ops_.alloc(R * vc, Elem::kIo, MemoryKind::kWorkspace, "logits_chunk");
      ops_.gemm(false, true, R, vc, h, 1.0, hf_, ops_.view(emb_.w, c0 * h, vc * h), 0.0, logits);
      ops_.ce_chunk_bwd(logits, targets, lse_, R, vc, c0, 1.0 / static_cast<double>(R));
      ops_.gemm(false, false, R, h, vc, 1.0, logits, ops_.view(emb_.w, c0 * h, vc * h), c0 == 0 ? 0.0 : 1.0, dhf);
      T de = ops_.view(emb_.dw, c0 * h, vc * h);
      ops_.gemm(true, false, vc, h, R, 1.0, logits, hf_, 0.0, de);
      ops_.release(logits);
    }
    ops_.release(lse_);
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
  Param emb_{}, pos_{}, nf_w_{}, nf_b_{};
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<Param*> params_;
  std::vector<AdamState> states_;
  T hf_{}, hf_mean_{}, hf_rstd_{}, lse_{};
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
    tokens = ops.alloc(d.rows(), Elem::kInt32, MemoryKind::kActivations, "tokens");
    targets = ops.alloc(d.rows(), Elem::kInt32, MemoryKind::kActivations, "targets");
    loss = ops.alloc(1, Elem::kFp32, MemoryKind::kActivations, "loss");
  }
  void run(bool update = true) { stack.step(tokens, targets, loss, update); }
};

}  // namespace seqscale
