#include "workloads/parallel/lss_comm.h"

namespace seqscale {

double lss_kv_bytes(const TransformerSpec& t, const Plan& p, const RunShape& shape) {
  const double kv_width = static_cast<double>((t.kv_heads > 0 ? t.kv_heads : t.heads) * t.head_dim()) / p.tp;
  return static_cast<double>(dtype_bytes(t.dtype)) * static_cast<double>(shape.seq) *
         static_cast<double>(shape.micro_batch) * 2.0 * kv_width;
}

void lss_attention(CommOps& ops, const TransformerSpec& t, const Plan& p, const RunShape& shape, Phase ph) {
  if (p.lss() <= 1) return;
  const Collective c = ph == Phase::kBackward ? Collective::kReduceScatter : Collective::kAllGather;
  emit(ops, c, GroupKind::kSequence, p.lss(), lss_kv_bytes(t, p, shape), ph);
}

void lss_grad_average(CommOps& ops, const Plan& p, double grad_bytes) {
  if (p.lss() <= 1) return;
  emit(ops, Collective::kAllReduce, GroupKind::kSequence, p.lss(), grad_bytes, Phase::kBackward, true);
}

}  // namespace seqscale
