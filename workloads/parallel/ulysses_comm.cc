#include "workloads/parallel/ulysses_comm.h"

namespace seqscale {

double ulysses_all_to_all_bytes(const TransformerSpec& t, const Plan& p, const RunShape& shape) {
  const double sbh = static_cast<double>(shape.seq) * static_cast<double>(shape.micro_batch) * static_cast<double>(t.hidden);
  return static_cast<double>(dtype_bytes(t.dtype)) * sbh / p.ulysses() / p.tp;
}

void ulysses_attention(CommOps& ops, const TransformerSpec& t, const Plan& p, const RunShape& shape, Phase ph) {
  if (p.ulysses() <= 1) return;
  const double bytes = ulysses_all_to_all_bytes(t, p, shape);
  for (int i = 0; i < 4; ++i) emit(ops, Collective::kAllToAll, GroupKind::kSequence, p.ulysses(), bytes, ph);
}

}  // namespace seqscale
