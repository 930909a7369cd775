#include "model/memory.h"

#include <algorithm>

#include "model/comm_volume.h"

namespace seqscale {

std::string_view mem_term_name(MemTerm t) {
  switch (t) {
    case MemTerm::kParameters: return "parameters";
    case MemTerm::kGradients: return "gradients";
    case MemTerm::kOptimizer: return "optimizer_states";
    case MemTerm::kPositionTable: return "position_table";
    case MemTerm::kActivations: return "activations";
    case MemTerm::kBackwardWorkingSet: return "backward_working_set";
    case MemTerm::kAttentionScores: return "attention_scores";
    case MemTerm::kLogits: return "logits";
    case MemTerm::kSpGatherBuffers: return "sp_gather_buffers";
    case MemTerm::kAttentionMask: return "attention_mask";
    case MemTerm::kZero3Gather: return "zero3_gathered_layer";
    case MemTerm::kCommBuffers: return "comm_buffers";
    case MemTerm::kContext: return "context";
    case MemTerm::kAllocatorOverhead: return "allocator_overhead";
    case MemTerm::kCount: break;
  }
  return "?";
}

double MemoryBreakdown::peak() const {
  double total = 0;
  for (double b : bytes) total += b;
  return total;
}

MemTerm MemoryBreakdown::binding() const {
  int best = 0;
  for (int i = 1; i < static_cast<int>(MemTerm::kCount); ++i) {
    if (bytes[i] > bytes[best]) best = i;
  }
  return static_cast<MemTerm>(best);
}

ModelStates model_state_bytes(double params, int zero, std::int64_t zero_shards, Offload offload) {
  const double nd = static_cast<double>(std::max<std::int64_t>(1, zero_shards));
  ModelStates s;
  s.optimizer = kOptimizerBytes * params / (zero >= 1 ? nd : 1.0);
  s.grads = kGradBytes * params / (zero >= 2 ? nd : 1.0);
  s.params = kParamBytes * params / (zero >= 3 ? nd : 1.0);
  if (offload == Offload::kOptimizer || offload == Offload::kAll) {
    // ZeRO-Offload: the fp32 optimizer states live on the host; with ZeRO-2+ the reduced
    // gradient partitions are streamed to the host too (Ren et al. 2021).
    s.host += s.optimizer;
    s.optimizer = 0;
    if (zero >= 2) {
      s.host += s.grads;
      s.grads = 0;
    }
  }
  if (offload == Offload::kParams || offload == Offload::kAll) {
    // ZeRO-Infinity: parameter partitions on the host, gathered layer by layer.
    s.host += s.params;
    s.params = 0;
  }
  return s;
}

double transformer_params(const TransformerSpec& t, std::int64_t seq) {
  const double L = static_cast<double>(t.layers), h = static_cast<double>(t.hidden);
  const double pos = t.position == PositionEmbedding::kLearned ? static_cast<double>(seq) : 0.0;
  double moe = 0;
  if (t.is_moe()) {
    const double ffn = static_cast<double>(t.ffn_hidden), e = static_cast<double>(t.moe_experts);
    moe = static_cast<double>(t.moe_layers()) * ((e - 1.0) * (2.0 * h * ffn + ffn + h) + h * e);
  }
  return 12.0 * L * h * h + 13.0 * L * h + (static_cast<double>(t.vocab) + pos) * h + moe;
}

double moe_expert_params(const TransformerSpec& t) {
  if (!t.is_moe()) return 0;
  const double h = static_cast<double>(t.hidden), ffn = static_cast<double>(t.ffn_hidden);
  return static_cast<double>(t.moe_layers() * t.moe_experts) * (2.0 * h * ffn + ffn + h);
}

namespace {

// One transformer layer's parameters: QKV (with grouped KV heads), output projection,
// MLP, and 13h of biases and LayerNorms (12h^2 + 13h for MHA with ffn = 4h).
double layer_params(const TransformerSpec& t) {
  const double h = static_cast<double>(t.hidden), d = static_cast<double>(t.head_dim());
  const double kv = static_cast<double>(t.kv_heads > 0 ? t.kv_heads : t.heads);
  return h * (h + 2.0 * kv * d) + h * h + 2.0 * h * static_cast<double>(t.ffn_hidden) + 13.0 * h;
}

// How a plan cuts one micro-batch's activations, in Korthikanti's notation.
struct Cut {
  double s, b, h, a, V, sbh;
  double tp;
  double ss;            // shards of the sequence outside TP regions
  double tu;            // shards inside TP regions and attention
  double layers_stage;
  double kv_ratio;      // kv heads / heads (GQA)
};

Cut cut_of(const TransformerSpec& t, const Plan& p, const RunShape& shape) {
  Cut x{};
  x.s = static_cast<double>(shape.seq), x.b = static_cast<double>(shape.micro_batch);
  x.h = static_cast<double>(t.hidden), x.a = static_cast<double>(t.heads), x.V = static_cast<double>(t.vocab);
  x.sbh = x.s * x.b * x.h;
  x.tp = p.tp;
  x.ss = p.seq_shards();
  x.tu = x.tp * p.seq_degree();
  x.layers_stage = static_cast<double>(t.layers) / static_cast<double>(p.pp);
  x.kv_ratio = static_cast<double>(t.kv_heads > 0 ? t.kv_heads : t.heads) / x.a;
  return x;
}

// ---- model states per stage ----------------------------------------------------
// The parameters a rank of the first and of the last stage holds: its share of the stage's
// layers, the embedding (first) or its tied output copy (last, when pp > 1), and a MoE
// model's replicated routers; apart, its own experts (ZeRO shards them over fewer ranks)
// and the learned position table (its own memory term).
struct StageParams {
  double layer = 0;  // one layer's share on this rank
  double first = 0, last = 0, experts = 0, position = 0;
};

StageParams stage_params(const TransformerSpec& t, const Plan& p, const Cut& x) {
  StageParams sp;
  const double h = x.h, ffn = static_cast<double>(t.ffn_hidden), experts = static_cast<double>(t.moe_experts);
  sp.layer = layer_params(t) / x.tp;
  const double emb = x.V * h / x.tp;
  // MoE layers: the dense MLP gives way to a replicated router and this rank's experts.
  const double expert_mlp = 2.0 * h * ffn + ffn + h;
  const double moe_layers_stage = static_cast<double>(t.moe_layers()) / static_cast<double>(p.pp);
  const double moe_dense = moe_layers_stage * (h * experts - expert_mlp / x.tp);
  sp.experts = moe_layers_stage * experts / static_cast<double>(p.ep) * expert_mlp / x.tp;
  sp.first = sp.layer * x.layers_stage + emb + moe_dense;
  sp.last = sp.layer * x.layers_stage + moe_dense + (p.pp > 1 ? emb : 0.0);
  if (t.position == PositionEmbedding::kLearned) {
    // DS4Sci: the table is partitioned across the sequence-parallel ranks; before, every
    // rank held all s x h of it (3.2B parameters at 512K x 6144).
    sp.position = x.s * h / (p.pos == PosTable::kPartitioned ? x.ss : 1.0);
  }
  return sp;
}

// Dense states over the zero_shards ranks, the rank's experts over the zero_shards / ep
// ranks that hold the same experts.
ModelStates stage_states(const StageParams& sp, bool first, const Plan& p) {
  const std::int64_t nd = p.zero_shards();
  ModelStates st = model_state_bytes(first ? sp.first : sp.last, p.zero, nd, p.offload);
  if (sp.experts > 0) {
    const ModelStates ex = model_state_bytes(sp.experts, p.zero, nd / p.ep, p.offload);
    st.params += ex.params, st.grads += ex.grads, st.optimizer += ex.optimizer, st.host += ex.host;
  }
  return st;
}

// ---- stored activations (Korthikanti et al. 2022) --------------------------------
// A layer's dense terms per micro-batch. Inside TP regions: Q, K (4 with MHA, 2 + 2r with
// GQA), V, attention output, and the MLP (16 sbh for ffn = 4h) = 24 sbh for GPT; outside:
// LayerNorm inputs, dropout masks, residual = 10 sbh.
struct LayerActivations {
  double outside = 0, inner = 0;
  double scores = 0;  // materialized: QK^T 2 B, softmax 2 B, dropout mask 1 B
  double lse = 0;     // fused: the fp32 log-sum-exp
};

LayerActivations layer_activations(const TransformerSpec& t, const Cut& x) {
  LayerActivations la;
  const double inner = 2.0 + 4.0 * x.kv_ratio + 2.0 + 16.0 * static_cast<double>(t.ffn_hidden) / (4.0 * x.h);
  la.outside = 10.0 * x.sbh / x.ss;
  la.inner = inner * x.sbh / x.tu;
  la.scores = 5.0 * x.a * x.s * x.s * x.b / x.tu;
  la.lse = 4.0 * x.a * x.s * x.b / x.tu;
  return la;
}

// ---- per-strategy terms ------------------------------------------------------------
// What a strategy adds to a layer beyond the dense terms: bytes kept for backward, bytes
// live again while full recompute rebuilds the layer, and bytes live only during the
// layer's backward. A new strategy with memory of its own adds one of these.
struct LayerExtras {
  double stored = 0, recomputed = 0, transient = 0;
};

// MoE: a MoE layer's experts run E*C slots for the T tokens the rank routes, so its MLP
// activations scale by E*C/T, and it keeps the expert outputs (bf16) and the fp32 router
// probabilities for the combine's backward. One layer in moe_every is MoE: a layer of the
// stage stores the average.
LayerExtras moe_extras(const TransformerSpec& t, const Plan& p, const RunShape& shape, const Cut& x) {
  LayerExtras e;
  if (!t.is_moe()) return e;
  const MoeLayers ml = moe_layers_of(t, p, shape);
  const double tokens = static_cast<double>(ml.tokens), slots = static_cast<double>(t.moe_experts * moe_capacity(ml));
  const double mlp_b = 16.0 * static_cast<double>(t.ffn_hidden) / (4.0 * x.h) * x.sbh / x.tu;
  const double moe_layer = (slots / tokens - 1.0) * mlp_b + 2.0 * slots * x.h + 4.0 * tokens * static_cast<double>(t.moe_experts);
  e.stored = moe_layer / static_cast<double>(t.moe_every);
  e.recomputed = moe_layer;
  return e;
}

// LSS: the gathered bf16 k and v of the other segments, kept for backward, and their
// gradients over the whole sequence before the reduce-scatter.
LayerExtras lss_extras(const Plan& p, const Cut& x) {
  LayerExtras e;
  if (p.lss() <= 1) return e;
  const double kv = 2.0 * x.s * x.b * 2.0 * x.kv_ratio * x.h / x.tp;
  e.stored = e.recomputed = kv * (1.0 - 1.0 / p.lss());
  e.transient = kv;
  return e;
}

double stored_per_layer(const Plan& p, const Cut& x, const LayerActivations& la, const LayerExtras& moe,
                        const LayerExtras& lss) {
  const bool materialized = p.attn == AttentionImpl::kMaterialized;
  switch (p.recompute) {
    case Recompute::kNone: return la.outside + la.inner + (materialized ? la.scores : la.lse) + moe.stored + lss.stored;
    case Recompute::kSelective: return la.outside + la.inner + (materialized ? 0.0 : la.lse) + moe.stored + lss.stored;
    case Recompute::kFull: break;
  }
  // Full recompute keeps the layer input only (split over the TP ranks when partitioned).
  return 2.0 * x.sbh / (p.ckpt_partitioned ? x.ss * x.tp : x.ss);
}

// Micro-batches whose activations the first stage holds at once: min(p, m) under 1F1B,
// times 1 + (p-1)/(pv) interleaved (Narayanan et al. 2021).
double micro_batches_in_flight(const Plan& p, const RunShape& shape) {
  const std::int64_t m = micro_batches(p, shape);
  const double pp = p.pp;
  double in_flight = std::min<double>(pp, static_cast<double>(m));
  if (p.schedule == PipeSchedule::kInterleaved && m >= p.pp) in_flight *= 1.0 + (pp - 1.0) / (pp * p.vpp);
  return in_flight;
}

// ---- transients and persistent extras ------------------------------------------------
struct Transients {
  double working = 0;     // one layer's backward: dY, dX (with full recompute the layer again)
  double scores = 0;      // materialized scores (recomputed) and their bf16 gradients dP, dS
  double logits = 0;      // last stage: logits and cross entropy (not live with a backward)
  double sp_gather = 0;   // Megatron-SP: the gathered layer input and its gradient
  double mask = 0;        // the persistent bool causal mask
  double mask_build = 0;  // mask=fp32: the build phase before any activation
  double zero3 = 0;       // ZeRO-3: the current and the prefetched layer, gathered
};

Transients transients(const Plan& p, const Cut& x, const LayerActivations& la, const LayerExtras& moe,
                      const LayerExtras& lss, const StageParams& sp) {
  Transients tr;
  const bool materialized = p.attn == AttentionImpl::kMaterialized;
  tr.working = 2.0 * 2.0 * x.sbh / x.ss + lss.transient;
  if (p.recompute == Recompute::kFull) {
    tr.working += la.outside + la.inner + (materialized ? 0.0 : la.lse) + moe.recomputed + lss.recomputed;
  }
  // A partitioned checkpoint is all-gathered back to the full layer input before recompute.
  if (p.ckpt_partitioned) tr.working += 2.0 * x.sbh / x.ss;
  if (materialized) tr.scores = (p.recompute == Recompute::kNone ? 0.0 : la.scores) + 4.0 * x.a * x.s * x.s * x.b / x.tu;
  if (p.sp == SeqParallel::kMegatron) tr.sp_gather = kSpGatherBytesPerElement * x.sbh;
  tr.logits = (x.s / p.seq_degree()) * x.b * (x.V / x.tp) * kLogitBytesPerElement;
  // Megatron's get_ltor_masks_and_position_ids builds the causal mask on the GPU as
  // tril(ones(s, s)) in fp32 (the ones and the tril result: 8 B per element at once), then
  // keeps `mask < 0.5` as bool (1 B). So mask=fp32 costs a one-time 8s^2 while the batch is
  // built (model states live, no activations yet) and a persistent bool s^2 through the
  // step; mask=bool (DS4Sci: built on the host, moved as bool) only the persistent s^2.
  if (p.mask != MaskKind::kNone) tr.mask = x.s * x.s;
  if (p.mask == MaskKind::kFp32) tr.mask_build = 8.0 * x.s * x.s;
  if (p.zero == 3) tr.zero3 = 2.0 * sp.layer * kParamBytes;
  return tr;
}

// Context and fragmentation on top of the live bytes.
void add_runtime_overhead(MemoryBreakdown& mb, const ClusterSpec& c) {
  const double live = mb.peak();
  mb[MemTerm::kContext] = static_cast<double>(c.context_bytes);
  mb[MemTerm::kAllocatorOverhead] = c.allocator_overhead * live;
}

// ---- one stage's peak ------------------------------------------------------------------
MemoryBreakdown stage_memory(std::int32_t stage, const Plan& p, const ClusterSpec& c, const StageParams& sp,
                             double activations, const Transients& tr) {
  MemoryBreakdown mb;
  mb.stage = stage;
  const bool first = stage == 0, last = stage == p.pp - 1;
  const ModelStates st = stage_states(sp, first, p);
  mb[MemTerm::kParameters] = st.params;
  mb[MemTerm::kGradients] = st.grads;
  mb[MemTerm::kOptimizer] = st.optimizer;
  mb.host_bytes = st.host;
  if (first && sp.position > 0) {
    const ModelStates ps = model_state_bytes(sp.position, p.zero, p.zero_shards(), p.offload);
    mb[MemTerm::kPositionTable] = ps.device();
    mb.host_bytes += ps.host;
  }
  mb[MemTerm::kActivations] = activations;
  // The loss (last stage) and a layer's backward are not live at the same time.
  if (last && tr.logits > tr.working + tr.scores) {
    mb[MemTerm::kLogits] = tr.logits;
  } else {
    mb[MemTerm::kBackwardWorkingSet] = tr.working;
    mb[MemTerm::kAttentionScores] = tr.scores;
  }
  mb[MemTerm::kSpGatherBuffers] = tr.sp_gather;
  mb[MemTerm::kAttentionMask] = tr.mask;
  mb[MemTerm::kZero3Gather] = tr.zero3;
  if ((p.zero == 1 || p.zero == 2) && p.zero_shards() > 1) {
    mb[MemTerm::kCommBuffers] = 2.0 * kParamBytes * std::min(first ? sp.first : sp.last, kZeroBucketElements);
  }
  add_runtime_overhead(mb, c);
  return mb;
}

// The batch-building phase of mask=fp32: states, position table and buckets live, the fp32
// mask being built, no activations yet.
MemoryBreakdown mask_build_phase(const MemoryBreakdown& step, double mask_build, const ClusterSpec& c) {
  MemoryBreakdown data;
  data.stage = step.stage;
  data.host_bytes = step.host_bytes;
  for (MemTerm t : {MemTerm::kParameters, MemTerm::kGradients, MemTerm::kOptimizer, MemTerm::kPositionTable,
                    MemTerm::kCommBuffers}) {
    data[t] = step[t];
  }
  data[MemTerm::kAttentionMask] = mask_build;
  add_runtime_overhead(data, c);
  return data;
}

}  // namespace

MemoryBreakdown transformer_memory(const TransformerSpec& t, const ClusterSpec& c, const Plan& p, const RunShape& shape) {
  const Cut x = cut_of(t, p, shape);
  const StageParams sp = stage_params(t, p, x);
  const LayerActivations la = layer_activations(t, x);
  const LayerExtras moe = moe_extras(t, p, shape, x), lss = lss_extras(p, x);
  const double per_layer = stored_per_layer(p, x, la, moe, lss);
  const double in_flight = micro_batches_in_flight(p, shape);
  const Transients tr = transients(p, x, la, moe, lss, sp);
  // The first stage holds the most micro-batches, the last the logits: the peak is theirs.
  MemoryBreakdown best;
  double best_peak = -1;
  for (std::int32_t stage : {0, p.pp - 1}) {
    MemoryBreakdown mb = stage_memory(stage, p, c, sp, per_layer * x.layers_stage * (stage == 0 ? in_flight : 1.0), tr);
    if (tr.mask_build > 0) {
      const MemoryBreakdown build = mask_build_phase(mb, tr.mask_build, c);
      if (build.peak() > mb.peak()) mb = build;
    }
    const double peak = mb.peak();
    if (peak > best_peak) {
      best_peak = peak;
      best = mb;
    }
  }
  return best;
}

double attention_logits_bytes(std::int64_t batch_n, std::int64_t heads, std::int64_t len, DType dtype) {
  return static_cast<double>(batch_n) * static_cast<double>(heads) * static_cast<double>(len) *
         static_cast<double>(len) * static_cast<double>(dtype_bytes(dtype));
}

double evoformer_attention_module_bytes(double bt, double len, double c_in, double heads, double head_dim,
                                        bool pair_bias, AttentionImpl impl) {
  const double rows = bt * len, hd = heads * head_dim;
  // Saved for backward: x, LayerNorm(x) in fp32; q, k, v, gate, O, gated O in bf16.
  const double saved = rows * (8.0 * c_in + 12.0 * hd);
  // Live at the attention backward: d(out) bf16, d(gated O), dO, dq, dk, dv bf16.
  const double grads = rows * (2.0 * c_in + 10.0 * hd);
  double attn = 0;
  if (impl == AttentionImpl::kMaterialized) {
    attn = 16.0 * bt * heads * len * len;
  } else {
    attn = 4.0 * bt * heads * len + 4.0 * rows * hd + (pair_bias ? 4.0 * heads * len * len : 0.0);
  }
  return saved + grads + attn;
}

namespace {

double attn_params(std::int64_t c_in, const AttentionDims& d, std::int64_t c_bias) {
  const double hd = static_cast<double>(d.heads * d.head_dim);
  return 4.0 * static_cast<double>(c_in) * hd + hd * static_cast<double>(c_in) +
         static_cast<double>(c_bias * d.heads) + 2.0 * static_cast<double>(c_in);
}

double evo_block_params(const EvoformerSpec& e, std::int64_t c_msa, const AttentionDims& msa) {
  const double cm = static_cast<double>(c_msa), cz = static_cast<double>(e.c_z);
  const double f = static_cast<double>(e.transition_factor);
  const double co = static_cast<double>(e.c_hidden_opm), ch = static_cast<double>(e.c_hidden_tri_mul);
  double n = 0;
  n += attn_params(c_msa, msa, e.c_z);            // MSA row attention with pair bias
  n += attn_params(c_msa, msa, 0);                // MSA column attention
  n += 2.0 * f * cm * cm;                         // MSA transition
  n += 2.0 * cm * co + co * co * cz;              // outer product mean
  n += 2.0 * (5.0 * cz * ch + cz * cz);           // triangle multiplication out / in
  n += 2.0 * attn_params(e.c_z, e.triangle, e.c_z);  // triangle attention start / end
  n += 2.0 * f * cz * cz;                         // pair transition
  return n;
}

}  // namespace

double evoformer_params(const EvoformerSpec& e) {
  return static_cast<double>(e.blocks) * evo_block_params(e, e.c_m, e.msa) +
         static_cast<double>(e.extra_blocks) * evo_block_params(e, e.c_e, e.extra_msa);
}

MemoryBreakdown evoformer_memory(const EvoformerSpec& e, const ClusterSpec& c, const Plan& p, const RunShape& shape) {
  const double n_res = static_cast<double>(shape.seq > 0 ? shape.seq : e.n_res);
  const double dap = p.dap;
  const double es = static_cast<double>(dtype_bytes(e.dtype));
  const double n_seq = static_cast<double>(e.n_seq), n_extra = static_cast<double>(e.n_extra);
  const double m_bytes = n_seq * n_res * static_cast<double>(e.c_m) * es / dap;
  const double z_bytes = n_res * n_res * static_cast<double>(e.c_z) * es / dap;
  const double x_bytes = n_extra * n_res * static_cast<double>(e.c_e) * es / dap;

  MemoryBreakdown mb;
  const ModelStates st = model_state_bytes(evoformer_params(e), p.zero, p.zero_shards(), p.offload);
  mb[MemTerm::kParameters] = st.params;
  mb[MemTerm::kGradients] = st.grads;
  mb[MemTerm::kOptimizer] = st.optimizer;
  mb.host_bytes = st.host;

  // Stored: block inputs with per-block checkpointing (OpenFold trains with
  // blocks_per_ckpt = 1); without recompute every block keeps ~its intermediates, which we
  // take as the block's working set below.
  const double main_in = m_bytes + z_bytes, extra_in = x_bytes + z_bytes;

  // One block's attention module, the largest of its kinds (Bt rows of length L):
  struct Att { double bt, len, c_in; AttentionDims dims; bool pair_bias; };
  const Att atts[] = {
      {n_extra / dap, n_res, double(e.c_e), e.extra_msa, true},  // extra-MSA row
      {n_seq / dap, n_res, double(e.c_m), e.msa, true},          // MSA row
      {n_res / dap, n_seq, double(e.c_m), e.msa, false},         // MSA column
      {n_res / dap, n_res, double(e.c_z), e.triangle, true},     // triangle start / end
  };
  double att_peak = 0;
  for (const Att& at : atts) {
    att_peak = std::max(att_peak, evoformer_attention_module_bytes(at.bt, at.len, at.c_in, double(at.dims.heads),
                                                                   double(at.dims.head_dim), at.pair_bias, p.attn));
  }
  // Non-attention intermediates of one block in backward: the 4x transitions and the
  // triangle-multiplication projections, ~4 copies of the block input.
  const double block_working = 4.0 * std::max(main_in, extra_in);
  if (p.recompute == Recompute::kNone) {
    mb[MemTerm::kActivations] = static_cast<double>(e.blocks) * (main_in + block_working) +
                                static_cast<double>(e.extra_blocks) * (extra_in + block_working);
  } else {
    mb[MemTerm::kActivations] = static_cast<double>(e.blocks) * main_in + static_cast<double>(e.extra_blocks) * extra_in;
    mb[MemTerm::kBackwardWorkingSet] = block_working;
  }
  mb[MemTerm::kAttentionScores] = att_peak;
  if (p.dap > 1) mb[MemTerm::kCommBuffers] = 2.0 * std::max(main_in, extra_in);  // all-to-all staging
  add_runtime_overhead(mb, c);
  return mb;
}

}  // namespace seqscale
