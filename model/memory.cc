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

}  // namespace

MemoryBreakdown transformer_memory(const TransformerSpec& t, const ClusterSpec& c, const Plan& p, const RunShape& shape) {
  const double s = static_cast<double>(shape.seq), b = static_cast<double>(shape.micro_batch);
  const double h = static_cast<double>(t.hidden), a = static_cast<double>(t.heads);
  const double V = static_cast<double>(t.vocab);
  const double tp = p.tp, pp = p.pp, u = p.ulysses();
  const double ss = p.seq_shards();   // shards of the sequence outside TP regions
  const double tu = tp * p.seq_degree();  // shards inside TP regions / attention
  const double layers_stage = static_cast<double>(t.layers) / pp;
  const double sbh = s * b * h;
  const double kv_ratio = static_cast<double>(t.kv_heads > 0 ? t.kv_heads : t.heads) / a;

  // ---- model states per stage --------------------------------------------
  const double lp = layer_params(t) / tp;
  const double emb = V * h / tp;
  // MoE layers: the dense MLP gives way to a replicated router and this rank's experts.
  const double expert_mlp = 2.0 * h * static_cast<double>(t.ffn_hidden) + static_cast<double>(t.ffn_hidden) + h;
  const double moe_layers_stage = static_cast<double>(t.moe_layers()) / pp;
  const double moe_dense = moe_layers_stage * (h * static_cast<double>(t.moe_experts) - expert_mlp / tp);
  const double stage_experts =
      moe_layers_stage * static_cast<double>(t.moe_experts) / static_cast<double>(p.ep) * expert_mlp / tp;
  const double stage_first = lp * layers_stage + emb + moe_dense;
  const double stage_last = lp * layers_stage + moe_dense + (p.pp > 1 ? emb : 0.0);  // tied output copy
  double pos_params = 0;
  if (t.position == PositionEmbedding::kLearned) {
    // DS4Sci: the table is partitioned across the sequence-parallel ranks; before, every
    // rank held all s x h of it (3.2B parameters at 512K x 6144).
    pos_params = s * h / (p.pos == PosTable::kPartitioned ? ss : 1.0);
  }
  const std::int64_t nd = p.zero_shards();

  // ---- activations (Korthikanti et al. 2022) ---------------------------------
  // Inside TP regions: Q, K (4 with MHA, 2 + 2r with GQA), V, attention output, and the MLP
  // (16 sbh for ffn = 4h) = 24 sbh for GPT; outside: LayerNorm inputs, dropout masks,
  // residual = 10 sbh.
  const double inner = 2.0 + 4.0 * kv_ratio + 2.0 + 16.0 * static_cast<double>(t.ffn_hidden) / (4.0 * h);
  const double outside_b = 10.0 * sbh / ss;
  const double inner_b = inner * sbh / tu;
  const bool materialized = p.attn == AttentionImpl::kMaterialized;
  const double scores = 5.0 * a * s * s * b / tu;  // QK^T 2 B, softmax 2 B, dropout mask 1 B
  const double lse = 4.0 * a * s * b / tu;         // fused: fp32 log-sum-exp
  // MoE: a MoE layer's experts run E*C slots for the T tokens the rank routes; the
  // average over a stage's layers (one in moe_every is MoE) is what a layer stores.
  double moe_extra = 0;
  if (t.is_moe()) {
    const MoeLayers ml = moe_layers_of(t, p, shape);
    const double tokens = static_cast<double>(ml.tokens), slots = static_cast<double>(t.moe_experts * moe_capacity(ml));
    const double mlp_b = 16.0 * static_cast<double>(t.ffn_hidden) / (4.0 * h) * sbh / tu;
    moe_extra = (slots / tokens - 1.0) * mlp_b + 2.0 * slots * h + 4.0 * tokens * static_cast<double>(t.moe_experts);
  }
  const double moe_avg = moe_extra / static_cast<double>(t.moe_every);
  // LSS: the gathered bf16 k and v of the other segments, kept for backward, and their
  // gradients over the whole sequence before the reduce-scatter.
  const double lss_kv = p.lss() > 1 ? 2.0 * s * b * 2.0 * kv_ratio * h / tp : 0.0;
  const double lss_kv_stored = lss_kv * (1.0 - 1.0 / p.lss());
  double per_layer = 0;
  switch (p.recompute) {
    case Recompute::kNone: per_layer = outside_b + inner_b + (materialized ? scores : lse) + moe_avg + lss_kv_stored; break;
    case Recompute::kSelective: per_layer = outside_b + inner_b + (materialized ? 0.0 : lse) + moe_avg + lss_kv_stored; break;
    case Recompute::kFull: per_layer = 2.0 * sbh / (p.ckpt_partitioned ? ss * tp : ss); break;
  }
  const std::int64_t m = micro_batches(p, shape);
  double in_flight = std::min<double>(pp, static_cast<double>(m));
  if (p.schedule == PipeSchedule::kInterleaved && m >= p.pp) in_flight *= 1.0 + (pp - 1.0) / (pp * p.vpp);

  // ---- transients ----------------------------------------------------------
  const double grad_buffers = 2.0 * 2.0 * sbh / ss;  // dY and dX of the layer in flight
  double working = grad_buffers + lss_kv;
  if (p.recompute == Recompute::kFull) working += outside_b + inner_b + (materialized ? 0.0 : lse) + moe_extra + lss_kv_stored;
  // A partitioned checkpoint is all-gathered back to the full layer input before recompute.
  if (p.ckpt_partitioned) working += 2.0 * sbh / ss;
  double score_bytes = 0;
  if (materialized) {
    // Recomputed (selective/full) or stored scores, plus their bf16 gradients dP and dS.
    score_bytes = (p.recompute == Recompute::kNone ? 0.0 : scores) + 4.0 * a * s * s * b / tu;
  }
  const double sp_gather = p.sp == SeqParallel::kMegatron ? kSpGatherBytesPerElement * sbh / u : 0.0;
  const double logits = (s / p.seq_degree()) * b * (V / tp) * kLogitBytesPerElement;
  // Megatron's get_ltor_masks_and_position_ids builds the causal mask on the GPU as
  // tril(ones(s, s)) in fp32 (the ones and the tril result: 8 B per element at once), then
  // keeps `mask < 0.5` as bool (1 B). So mask=fp32 costs a one-time 8s^2 while the batch is
  // built (model states live, no activations yet) and a persistent bool s^2 through the
  // step; mask=bool (DS4Sci: built on the host, moved as bool) only the persistent s^2.
  const double mask = p.mask == MaskKind::kNone ? 0.0 : s * s;
  const double mask_build = p.mask == MaskKind::kFp32 ? 8.0 * s * s : 0.0;
  const double zero3 = p.zero == 3 ? 2.0 * lp * kParamBytes : 0.0;  // current + prefetched layer

  MemoryBreakdown best;
  double best_peak = -1;
  for (int stage : {0, p.pp - 1}) {
    MemoryBreakdown mb;
    mb.stage = stage;
    const bool first = stage == 0, last = stage == p.pp - 1;
    const double stage_params = first ? stage_first : stage_last;
    ModelStates st = model_state_bytes(stage_params, p.zero, nd, p.offload);
    if (stage_experts > 0) {
      const ModelStates ex = model_state_bytes(stage_experts, p.zero, nd / p.ep, p.offload);
      st.params += ex.params, st.grads += ex.grads, st.optimizer += ex.optimizer, st.host += ex.host;
    }
    mb[MemTerm::kParameters] = st.params;
    mb[MemTerm::kGradients] = st.grads;
    mb[MemTerm::kOptimizer] = st.optimizer;
    mb.host_bytes = st.host;
    if (first && pos_params > 0) {
      const ModelStates ps = model_state_bytes(pos_params, p.zero, nd, p.offload);
      mb[MemTerm::kPositionTable] = ps.device();
      mb.host_bytes += ps.host;
    }
    mb[MemTerm::kActivations] = per_layer * layers_stage * (first ? in_flight : 1.0);
    // The loss (last stage) and a layer's backward are not live at the same time.
    const double layer_transient = working + score_bytes;
    if (last && logits > layer_transient) {
      mb[MemTerm::kLogits] = logits;
    } else {
      mb[MemTerm::kBackwardWorkingSet] = working;
      mb[MemTerm::kAttentionScores] = score_bytes;
    }
    mb[MemTerm::kSpGatherBuffers] = sp_gather;
    mb[MemTerm::kAttentionMask] = mask;
    mb[MemTerm::kZero3Gather] = zero3;
    if ((p.zero == 1 || p.zero == 2) && nd > 1) {
      mb[MemTerm::kCommBuffers] = 2.0 * kParamBytes * std::min(stage_params, kZeroBucketElements);
    }
    const double live = mb.peak();
    mb[MemTerm::kContext] = static_cast<double>(c.context_bytes);
    mb[MemTerm::kAllocatorOverhead] = c.allocator_overhead * live;
    if (mask_build > 0) {
      // The batch-building phase: states, position table, buckets and the fp32 mask build.
      MemoryBreakdown data;
      data.stage = stage;
      data.host_bytes = mb.host_bytes;
      for (MemTerm t : {MemTerm::kParameters, MemTerm::kGradients, MemTerm::kOptimizer, MemTerm::kPositionTable,
                        MemTerm::kCommBuffers}) {
        data[t] = mb[t];
      }
      data[MemTerm::kAttentionMask] = mask_build;
      const double data_live = data.peak();
      data[MemTerm::kContext] = static_cast<double>(c.context_bytes);
      data[MemTerm::kAllocatorOverhead] = c.allocator_overhead * data_live;
      if (data.peak() > mb.peak()) mb = data;
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
  const double live = mb.peak();
  mb[MemTerm::kContext] = static_cast<double>(c.context_bytes);
  mb[MemTerm::kAllocatorOverhead] = c.allocator_overhead * live;
  return mb;
}

}  // namespace seqscale
