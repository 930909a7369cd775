#include "workloads/parallel/vocab_parallel_comm.h"

namespace seqscale {

namespace {

struct Vocab {
  double tokens, activation_bytes;  // T, and T*h*es
  Collective to_shard;              // the partial sums' reduction: all-reduce, or SP's reduce-scatter
  bool megatron_sp;
};
Vocab vocab(const TransformerSpec& t, const Plan& p, const RunShape& shape) {
  const double tokens = static_cast<double>(shape.seq * shape.micro_batch) / p.seq_degree();
  const bool megatron_sp = p.sp == SeqParallel::kMegatron;
  return {tokens, static_cast<double>(dtype_bytes(t.dtype)) * tokens * static_cast<double>(t.hidden),
          megatron_sp ? Collective::kReduceScatter : Collective::kAllReduce, megatron_sp};
}

}  // namespace

void vocab_embedding(CommOps& ops, const TransformerSpec& t, const Plan& p, const RunShape& shape, Phase ph) {
  if (p.tp <= 1) return;
  const Vocab v = vocab(t, p, shape);
  if (ph == Phase::kForward) emit(ops, v.to_shard, GroupKind::kTensor, p.tp, v.activation_bytes, ph);
  if (ph == Phase::kBackward && v.megatron_sp) emit(ops, Collective::kAllGather, GroupKind::kTensor, p.tp, v.activation_bytes, ph);
}

void vocab_loss(CommOps& ops, const TransformerSpec& t, const Plan& p, const RunShape& shape, Phase ph) {
  if (p.tp <= 1) return;
  const Vocab v = vocab(t, p, shape);
  if (ph == Phase::kForward) {
    if (v.megatron_sp) emit(ops, Collective::kAllGather, GroupKind::kTensor, p.tp, v.activation_bytes, ph);
    for (int i = 0; i < 3; ++i) emit(ops, Collective::kAllReduce, GroupKind::kTensor, p.tp, 4.0 * v.tokens, ph);
  }
  if (ph == Phase::kBackward) emit(ops, v.to_shard, GroupKind::kTensor, p.tp, v.activation_bytes, ph);
}

}  // namespace seqscale
