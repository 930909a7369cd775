#include "model/comm_volume.h"

#include <cmath>

#include "model/memory.h"

namespace seqscale {

namespace {

std::int64_t to_bytes(double b) { return static_cast<std::int64_t>(std::llround(b)); }

CommOp op(Collective c, GroupKind g, std::int64_t size, double bytes, Phase ph, bool overlappable = false) {
  CommOp o;
  o.collective = c;
  o.group = g;
  o.group_size = static_cast<std::int32_t>(size);
  o.bytes = to_bytes(bytes);
  o.phase = ph;
  o.overlappable = overlappable;
  return o;
}

// ZeRO-3 gathers the (stage's) parameters before each pass of each micro-batch.
void zero3_gather(std::vector<CommOp>& ops, const Plan& p, double params, Phase ph, std::int64_t nd) {
  if (p.zero == 3 && nd > 1 && params > 0)
    ops.push_back(op(Collective::kAllGather, GroupKind::kData, nd, kParamBytes * params, ph, true));
}

// The per-step gradient reduction (and ZeRO-1/2's gather of the updated parameters).
void data_parallel_step(std::vector<CommOp>& ops, const Plan& p, double params, std::int64_t nd) {
  if (nd <= 1) return;
  ops.push_back(op(p.zero >= 2 ? Collective::kReduceScatter : Collective::kAllReduce, GroupKind::kData, nd,
                   kGradBytes * params, Phase::kBackward, true));
  if (p.zero == 1 || p.zero == 2)
    ops.push_back(op(Collective::kAllGather, GroupKind::kData, nd, kParamBytes * params, Phase::kOptimizer));
}

// Megatron's vocab-parallel embedding (first stage) and output layer + cross entropy
// (last stage) of one micro-batch's pass (see the header): `start` the ops that open the
// pass, else those that close it.
void vocab_ops(std::vector<CommOp>& ops, const TransformerSpec& t, const Plan& p, const RunShape& shape,
               std::int32_t stage, Phase ph, bool start) {
  if (p.tp <= 1) return;
  const double tokens = static_cast<double>(shape.seq * shape.micro_batch) / p.seq_degree();
  const double act = static_cast<double>(dtype_bytes(t.dtype)) * tokens * static_cast<double>(t.hidden);
  const bool sp = p.sp == SeqParallel::kMegatron, first = stage == 0, last = stage == p.pp - 1;
  const Collective to_shard = sp ? Collective::kReduceScatter : Collective::kAllReduce;
  auto add = [&](Collective c, double bytes) { ops.push_back(op(c, GroupKind::kTensor, p.tp, bytes, ph)); };
  if (ph == Phase::kForward && start && first) add(to_shard, act);  // sum of the vocab slices' rows
  if (ph == Phase::kForward && !start && last) {
    if (sp) add(Collective::kAllGather, act);                        // the final norm's output
    for (int i = 0; i < 3; ++i) add(Collective::kAllReduce, 4.0 * tokens);  // fp32 max, sum exp, target
  }
  if (ph == Phase::kBackward && start && last) add(to_shard, act);   // d(final norm output)
  if (ph == Phase::kBackward && !start && first && sp) add(Collective::kAllGather, act);  // dX of the embedding
}

}  // namespace

std::vector<CommOp> vocab_parallel_comm(const TransformerSpec& t, const Plan& p, const RunShape& shape,
                                        std::int32_t stage) {
  std::vector<CommOp> ops;
  for (std::int64_t mb = 0; mb < micro_batches(p, shape); ++mb)
    for (Phase ph : {Phase::kForward, Phase::kBackward})
      for (bool start : {true, false}) vocab_ops(ops, t, p, shape, stage, ph, start);
  return ops;
}

std::vector<CommOp> transformer_step_comm(const TransformerSpec& t, const Plan& p, const RunShape& shape,
                                          std::int32_t stage) {
  std::vector<CommOp> ops;
  const double s = static_cast<double>(shape.seq), b = static_cast<double>(shape.micro_batch);
  const double h = static_cast<double>(t.hidden), es = static_cast<double>(dtype_bytes(t.dtype));
  const double u = p.ulysses(), sd = p.seq_degree(), tp = p.tp;
  const double sbh = s * b * h;
  const std::int64_t layers_stage = t.layers / p.pp;
  // The interleaved schedule splits a stage's layers into vpp chunks, each its own
  // virtual stage with its own sends and receives; 1F1B is the case of one chunk.
  const std::int64_t chunks = p.schedule == PipeSchedule::kInterleaved ? p.vpp : 1;
  const std::int64_t layers_chunk = layers_stage / chunks;
  const std::int64_t virtual_stages = static_cast<std::int64_t>(p.pp) * chunks;
  const std::int64_t m = micro_batches(p, shape);
  const bool megatron_sp = p.sp == SeqParallel::kMegatron;
  const double tp_bytes = es * sbh / sd;            // the [s/sd, b, h] activation of a TP region
  const double a2a_bytes = es * sbh / u / tp;       // what a rank sends in one Ulysses all-to-all
  const double p2p_bytes = es * sbh / p.seq_shards();
  // LSS: this TP rank's k and v heads of every token, gathered into one buffer.
  const double kv_width = static_cast<double>((t.kv_heads > 0 ? t.kv_heads : t.heads) * t.head_dim()) / tp;
  const double lss_kv_bytes = es * s * b * 2.0 * kv_width;
  const MoeLayers moe = moe_layers_of(t, p, shape);
  const double moe_a2a_bytes = t.is_moe() ? moe_all_to_all_bytes(moe) : 0.0;
  const double stage_dense = (transformer_params(t, shape.seq) - moe_expert_params(t)) / (tp * p.pp);
  const double stage_experts = moe_expert_params(t) / (tp * p.pp * p.ep);  // this rank's experts

  // One layer's pass: attention block then MLP block, each bracketed by its TP collectives;
  // Ulysses all-to-alls (or LSS's k/v gather) around the attention core, MoE dispatch and
  // combine around a MoE layer's experts.
  auto layer_pass = [&](Phase ph, std::int64_t local_layer) {
    for (int block = 0; block < 2; ++block) {
      if (p.tp > 1 && megatron_sp) ops.push_back(op(Collective::kAllGather, GroupKind::kTensor, p.tp, tp_bytes, ph));
      if (block == 0 && u > 1) {
        for (int i = 0; i < 3; ++i) ops.push_back(op(Collective::kAllToAll, GroupKind::kSequence, p.ulysses(), a2a_bytes, ph));
        ops.push_back(op(Collective::kAllToAll, GroupKind::kSequence, p.ulysses(), a2a_bytes, ph));
      }
      if (block == 0 && p.lss() > 1) {
        const Collective c = ph == Phase::kBackward ? Collective::kReduceScatter : Collective::kAllGather;
        ops.push_back(op(c, GroupKind::kSequence, p.lss(), lss_kv_bytes, ph));
      }
      if (block == 1 && p.ep > 1 && is_moe_layer(t, local_layer)) {
        for (int i = 0; i < 2; ++i)  // dispatch and combine (backward: their mirrors)
          ops.push_back(op(Collective::kAllToAll, GroupKind::kExpert, p.ep, moe_a2a_bytes, ph));
      }
      if (p.tp > 1) {
        ops.push_back(op(megatron_sp ? Collective::kReduceScatter : Collective::kAllReduce, GroupKind::kTensor, p.tp,
                         tp_bytes, ph));
      }
    }
  };
  auto stage_gather = [&](Phase ph) {  // ZeRO-3: dense over all shards, experts over theirs
    zero3_gather(ops, p, stage_dense, ph, p.zero_shards());
    zero3_gather(ops, p, stage_experts, ph, p.zero_shards() / p.ep);
  };
  auto p2p = [&](Phase ph, bool send) {
    ops.push_back(op(Collective::kSendRecv, GroupKind::kPipeline, p.pp, p2p_bytes, ph, send));
  };
  for (std::int64_t mb = 0; mb < m; ++mb) {
    stage_gather(Phase::kForward);
    vocab_ops(ops, t, p, shape, stage, Phase::kForward, true);
    for (std::int64_t c = 0; c < chunks; ++c) {
      const std::int64_t k = c * p.pp + stage;  // this chunk's virtual stage
      if (p.pp > 1 && k > 0) p2p(Phase::kForward, false);
      for (std::int64_t l = 0; l < layers_chunk; ++l) layer_pass(Phase::kForward, c * layers_chunk + l);
      if (p.pp > 1 && k < virtual_stages - 1) p2p(Phase::kForward, true);
    }
    vocab_ops(ops, t, p, shape, stage, Phase::kForward, false);
    stage_gather(Phase::kBackward);
    if (p.recompute == Recompute::kFull) stage_gather(Phase::kRecompute);
    vocab_ops(ops, t, p, shape, stage, Phase::kBackward, true);
    for (std::int64_t c = chunks - 1; c >= 0; --c) {
      const std::int64_t k = c * p.pp + stage;
      if (p.pp > 1 && k < virtual_stages - 1) p2p(Phase::kBackward, false);
      for (std::int64_t l = 0; l < layers_chunk; ++l) {
        if (p.ckpt_partitioned && p.tp > 1)
          ops.push_back(op(Collective::kAllGather, GroupKind::kTensor, p.tp, tp_bytes, Phase::kRecompute));
        if (p.recompute == Recompute::kFull) layer_pass(Phase::kRecompute, c * layers_chunk + l);
        layer_pass(Phase::kBackward, c * layers_chunk + l);
      }
      if (p.pp > 1 && k > 0) p2p(Phase::kBackward, true);
    }
    vocab_ops(ops, t, p, shape, stage, Phase::kBackward, false);
  }
  // Megatron-SP: each TP rank runs the LayerNorms and adds the row-parallel output biases
  // on its own sequence shard only, so those replicated parameters' gradients are partial
  // sums (Korthikanti et al. 2022's sequence parallelism): Megatron core all-reduces them
  // over the TP group once per step, coalesced (finalize_model_grads.py,
  // _allreduce_layernorm_grads: every parameter marked sequence_parallel).
  // Per layer 2 LayerNorms (gamma, beta) + 2 biases = 6h; the final LayerNorm, 2h, on the
  // last stage.
  if (p.tp > 1 && megatron_sp) {
    const double norm_params = 6.0 * h * static_cast<double>(layers_stage) + (stage == p.pp - 1 ? 2.0 * h : 0.0);
    ops.push_back(op(Collective::kAllReduce, GroupKind::kTensor, p.tp, kGradBytes * norm_params, Phase::kBackward, true));
  }
  // LSS's double gradient averaging: the weights are replicated over the segments, so
  // their gradients are averaged over the kSequence group first, then over dp below.
  if (p.lss() > 1) {
    ops.push_back(op(Collective::kAllReduce, GroupKind::kSequence, p.lss(), kGradBytes * (stage_dense + stage_experts),
                     Phase::kBackward, true));
  }
  data_parallel_step(ops, p, stage_dense, p.zero_shards());
  // A rank's experts are replicated over the zero_shards / ep ranks that hold the same
  // ones (DeepSpeed's expert-data-parallel group, counted under kData).
  if (stage_experts > 0) data_parallel_step(ops, p, stage_experts, p.zero_shards() / p.ep);
  return ops;
}

std::vector<CommOp> evoformer_step_comm(const EvoformerSpec& e, const Plan& p, const RunShape& shape) {
  std::vector<CommOp> ops;
  const double n_res = static_cast<double>(shape.seq > 0 ? shape.seq : e.n_res);
  const double b = static_cast<double>(shape.micro_batch), es = static_cast<double>(dtype_bytes(e.dtype));
  const double dap = p.dap;
  const double pair_channel = es * b * n_res * n_res;  // one channel of z over all rows
  const double z_whole = pair_channel * static_cast<double>(e.c_z);
  const double m_whole = es * b * static_cast<double>(e.n_seq) * n_res * static_cast<double>(e.c_m);
  const double m_extra_whole = es * b * static_cast<double>(e.n_extra) * n_res * static_cast<double>(e.c_e);
  const double params = evoformer_params(e);
  const std::int64_t m = micro_batches(p, shape);

  // One block's forward collectives, in FastFold's order (see the header).
  struct Coll {
    Collective c;
    double bytes;
    bool overlappable;
  };
  auto block = [&](std::int64_t rows, std::int64_t c_msa, const AttentionDims& row_attn) {
    const double r = static_cast<double>(rows), cz = static_cast<double>(e.c_z);
    const double msa_a2a = es * b * r * n_res * static_cast<double>(c_msa) / dap, pair_a2a = pair_channel * cz / dap;
    const double tri_mul = pair_channel * static_cast<double>(e.c_hidden_tri_mul);
    const double tri_bias = pair_channel * static_cast<double>(e.triangle.heads);
    const double opm = es * b * r * n_res * static_cast<double>(e.c_hidden_opm);
    const Collective ag = Collective::kAllGather, a2a = Collective::kAllToAll;
    return std::vector<Coll>{
        {ag, pair_channel * static_cast<double>(row_attn.heads), false},  // MSA row attention's pair bias
        {a2a, msa_a2a, false},                                            // m rows -> columns
        {ag, opm, false},                                                 // outer product mean, right side
        {a2a, msa_a2a, true},                                             // m columns -> rows, behind the pair stack
        {ag, tri_mul, false},   {a2a, pair_a2a, false},                   // triangle multiplication outgoing
        {ag, tri_mul, false},   {a2a, pair_a2a, false},                   // triangle multiplication incoming
        {ag, tri_bias, false},  {a2a, pair_a2a, false},                   // triangle attention, starting node
        {ag, tri_bias, false},  {a2a, pair_a2a, false},                   // triangle attention, ending node
    };
  };
  const std::vector<Coll> main_block = block(e.n_seq, e.c_m, e.msa);
  const std::vector<Coll> extra_block = block(e.n_extra, e.c_e, e.extra_msa);
  auto forward = [&](const std::vector<Coll>& blk, Phase ph) {
    for (const Coll& c : blk)
      if (c.bytes > 0) ops.push_back(op(c.c, GroupKind::kDap, p.dap, c.bytes, ph, c.overlappable));
  };
  // Backward in reverse: an all-to-all's gradient goes back by one of the same size, an
  // all-gather's (a partial sum on every rank) by a reduce-scatter of the gathered size.
  auto backward = [&](const std::vector<Coll>& blk) {
    if (p.recompute != Recompute::kNone) forward(blk, Phase::kRecompute);  // block checkpoints
    for (auto it = blk.rbegin(); it != blk.rend(); ++it) {
      if (it->bytes <= 0) continue;
      const Collective c = it->c == Collective::kAllGather ? Collective::kReduceScatter : it->c;
      ops.push_back(op(c, GroupKind::kDap, p.dap, it->bytes, Phase::kBackward, it->overlappable));
    }
  };
  for (std::int64_t mb = 0; mb < m; ++mb) {
    zero3_gather(ops, p, params, Phase::kForward, p.zero_shards());
    if (p.dap > 1) {
      // Each stack ends by all-gathering its outputs m and z whole (FastFold's last
      // EvoformerBlock / ExtraMSABlock); the gather's backward splits locally.
      const std::vector<Coll> extra_exit{{Collective::kAllGather, m_extra_whole, false},
                                         {Collective::kAllGather, z_whole, false}};
      const std::vector<Coll> main_exit{{Collective::kAllGather, m_whole, false}, {Collective::kAllGather, z_whole, false}};
      for (std::int64_t i = 0; i < e.extra_blocks; ++i) forward(extra_block, Phase::kForward);
      if (e.extra_blocks > 0) forward(extra_exit, Phase::kForward);
      for (std::int64_t i = 0; i < e.blocks; ++i) forward(main_block, Phase::kForward);
      forward(main_exit, Phase::kForward);
    }
    zero3_gather(ops, p, params, Phase::kBackward, p.zero_shards());
    if (p.recompute != Recompute::kNone) zero3_gather(ops, p, params, Phase::kRecompute, p.zero_shards());
    if (p.dap > 1) {
      for (std::int64_t i = 0; i < e.blocks; ++i) backward(main_block);
      for (std::int64_t i = 0; i < e.extra_blocks; ++i) backward(extra_block);
    }
  }
  // Each DAP rank saw a shard of every block's input: the replicated weights' gradients
  // are partial sums until all-reduced over the DAP group.
  if (p.dap > 1)
    ops.push_back(op(Collective::kAllReduce, GroupKind::kDap, p.dap, kGradBytes * params, Phase::kBackward, true));
  data_parallel_step(ops, p, params, p.zero_shards());
  return ops;
}

std::vector<CommOp> lss_attention_comm(const LssAttention& a) {
  std::vector<CommOp> ops;
  const double es = static_cast<double>(dtype_bytes(a.dtype));
  // k and v of every token of the sequence, fused into one buffer (the gathered size).
  const double kv = es * static_cast<double>(a.seq * a.micro_batch * 2 * a.kv_width);
  for (std::int64_t mb = 0; mb < a.micro_batches && a.sp > 1; ++mb) {
    for (std::int64_t l = 0; l < a.layers; ++l)
      ops.push_back(op(Collective::kAllGather, GroupKind::kSequence, a.sp, kv, Phase::kForward));
    for (std::int64_t l = 0; l < a.layers; ++l)
      ops.push_back(op(Collective::kReduceScatter, GroupKind::kSequence, a.sp, kv, Phase::kBackward));
  }
  // Double gradient averaging: over the segments of one sequence, then over the replicas.
  if (a.sp > 1)
    ops.push_back(op(Collective::kAllReduce, GroupKind::kSequence, a.sp, a.weight_grad_bytes, Phase::kBackward, true));
  if (a.dp > 1)
    ops.push_back(op(Collective::kAllReduce, GroupKind::kData, a.dp, a.weight_grad_bytes, Phase::kBackward, true));
  return ops;
}

std::int64_t moe_capacity(const MoeLayers& m) {
  // ceil(cf T k / E), tolerating the binary rounding of a decimal factor (1.1 * 10 slots
  // is 11.000000000000002 in doubles, and 11 slots).
  const double slots = m.capacity_factor * static_cast<double>(m.tokens * m.top_k) / static_cast<double>(m.experts);
  return static_cast<std::int64_t>(std::ceil(slots * (1.0 - 1e-12)));
}

double moe_all_to_all_bytes(const MoeLayers& m) {
  // Every rank sends its whole padded dispatch buffer [E][C][H], whatever the routing.
  return static_cast<double>(dtype_bytes(m.dtype)) * static_cast<double>(m.experts * moe_capacity(m) * m.hidden);
}

MoeLayers moe_layers_of(const TransformerSpec& t, const Plan& p, const RunShape& shape) {
  MoeLayers m;
  if (!t.is_moe()) return m;
  m.experts = t.moe_experts, m.top_k = t.moe_top_k, m.hidden = t.hidden;
  m.capacity_factor = t.moe_capacity_factor;
  m.tokens = shape.seq * shape.micro_batch / p.seq_shards();
  m.layers = t.moe_layers() / p.pp;
  m.micro_batches = micro_batches(p, shape);
  m.ep = p.ep;
  m.dtype = t.dtype;
  return m;
}

std::vector<CommOp> moe_comm(const MoeLayers& m) {
  std::vector<CommOp> ops;
  if (m.ep <= 1) return ops;
  const double a2a = moe_all_to_all_bytes(m);
  for (std::int64_t mb = 0; mb < m.micro_batches; ++mb) {
    for (std::int64_t l = 0; l < m.layers; ++l)
      for (int i = 0; i < 2; ++i)  // dispatch, combine
        ops.push_back(op(Collective::kAllToAll, GroupKind::kExpert, m.ep, a2a, Phase::kForward));
    for (std::int64_t l = 0; l < m.layers; ++l)
      for (int i = 0; i < 2; ++i)  // d(combine), d(dispatch)
        ops.push_back(op(Collective::kAllToAll, GroupKind::kExpert, m.ep, a2a, Phase::kBackward));
  }
  const double router_params = static_cast<double>(m.hidden * m.experts * m.layers);
  ops.push_back(op(Collective::kAllReduce, GroupKind::kExpert, m.ep, m.router_grad_bytes_per_param * router_params,
                   Phase::kBackward, true));
  return ops;
}

}  // namespace seqscale
