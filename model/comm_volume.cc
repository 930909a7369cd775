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

}  // namespace

std::vector<CommOp> transformer_step_comm(const TransformerSpec& t, const Plan& p, const RunShape& shape,
                                          std::int32_t stage) {
  std::vector<CommOp> ops;
  const double s = static_cast<double>(shape.seq), b = static_cast<double>(shape.micro_batch);
  const double h = static_cast<double>(t.hidden), es = static_cast<double>(dtype_bytes(t.dtype));
  const double u = p.ulysses(), tp = p.tp;
  const double sbh = s * b * h;
  const std::int64_t layers_stage = t.layers / p.pp;
  const std::int64_t m = micro_batches(p, shape);
  const bool megatron_sp = p.sp == SeqParallel::kMegatron;
  const double tp_bytes = es * sbh / u;             // the [s/u, b, h] activation of a TP region
  const double a2a_bytes = es * sbh / u / tp;       // what a rank sends in one Ulysses all-to-all
  const double p2p_bytes = es * sbh / p.seq_shards();
  const std::int64_t nd = p.zero_shards();
  const double stage_params = transformer_params(t, shape.seq) / (tp * p.pp);

  // One layer's pass: attention block then MLP block, each bracketed by its TP collectives;
  // Ulysses all-to-alls around the attention core.
  auto layer_pass = [&](Phase ph) {
    for (int block = 0; block < 2; ++block) {
      if (p.tp > 1 && megatron_sp) ops.push_back(op(Collective::kAllGather, GroupKind::kTensor, p.tp, tp_bytes, ph));
      if (block == 0 && u > 1) {
        for (int i = 0; i < 3; ++i) ops.push_back(op(Collective::kAllToAll, GroupKind::kSequence, p.ulysses(), a2a_bytes, ph));
        ops.push_back(op(Collective::kAllToAll, GroupKind::kSequence, p.ulysses(), a2a_bytes, ph));
      }
      if (p.tp > 1) {
        ops.push_back(op(megatron_sp ? Collective::kReduceScatter : Collective::kAllReduce, GroupKind::kTensor, p.tp,
                         tp_bytes, ph));
      }
    }
  };
  auto z3_gather = [&](Phase ph) {
    if (p.zero == 3 && nd > 1)
      ops.push_back(op(Collective::kAllGather, GroupKind::kData, nd, kParamBytes * stage_params, ph, true));
  };
  const bool first = stage == 0, last = stage == p.pp - 1;
  for (std::int64_t mb = 0; mb < m; ++mb) {
    z3_gather(Phase::kForward);
    if (p.pp > 1 && !first) ops.push_back(op(Collective::kSendRecv, GroupKind::kPipeline, p.pp, p2p_bytes, Phase::kForward));
    for (std::int64_t l = 0; l < layers_stage; ++l) layer_pass(Phase::kForward);
    if (p.pp > 1 && !last) ops.push_back(op(Collective::kSendRecv, GroupKind::kPipeline, p.pp, p2p_bytes, Phase::kForward, true));
    z3_gather(Phase::kBackward);
    if (p.recompute == Recompute::kFull) z3_gather(Phase::kRecompute);
    if (p.pp > 1 && !last) ops.push_back(op(Collective::kSendRecv, GroupKind::kPipeline, p.pp, p2p_bytes, Phase::kBackward));
    for (std::int64_t l = 0; l < layers_stage; ++l) {
      if (p.ckpt_partitioned && p.tp > 1)
        ops.push_back(op(Collective::kAllGather, GroupKind::kTensor, p.tp, tp_bytes, Phase::kRecompute));
      if (p.recompute == Recompute::kFull) layer_pass(Phase::kRecompute);
      layer_pass(Phase::kBackward);
    }
    if (p.pp > 1 && !first) ops.push_back(op(Collective::kSendRecv, GroupKind::kPipeline, p.pp, p2p_bytes, Phase::kBackward, true));
  }
  if (nd > 1) {
    ops.push_back(op(p.zero >= 2 ? Collective::kReduceScatter : Collective::kAllReduce, GroupKind::kData, nd,
                     kGradBytes * stage_params, Phase::kBackward, true));
    if (p.zero == 1 || p.zero == 2)
      ops.push_back(op(Collective::kAllGather, GroupKind::kData, nd, kParamBytes * stage_params, Phase::kOptimizer));
  }
  return ops;
}

}  // namespace seqscale
