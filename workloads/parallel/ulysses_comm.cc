#include "workloads/parallel/ulysses_comm.h"

namespace seqscale {

double ulysses_all_to_all_bytes(const TransformerSpec& t, const Plan& p, const RunShape& shape, bool kv) {
  const double width = kv ? static_cast<double>((t.kv_heads > 0 ? t.kv_heads : t.heads) * t.head_dim())
                          : static_cast<double>(t.hidden);
  const double sb = static_cast<double>(shape.seq) * static_cast<double>(shape.micro_batch);
  return static_cast<double>(dtype_bytes(t.dtype)) * sb * width / p.ulysses() / p.tp;
}

void ulysses_attention(CommOps& ops, const TransformerSpec& t, const Plan& p, const RunShape& shape, Phase ph) {
  if (p.ulysses() <= 1) return;
  const double q = ulysses_all_to_all_bytes(t, p, shape), kv = ulysses_all_to_all_bytes(t, p, shape, true);
  // Forward and recompute: q, k, v, then o (q's width); backward: dO (q's), then dQ, dK, dV.
  const double order[2][4] = {{q, kv, kv, q}, {q, q, kv, kv}};
  for (double bytes : order[ph == Phase::kBackward ? 1 : 0])
    emit(ops, Collective::kAllToAll, GroupKind::kSequence, p.ulysses(), bytes, ph);
}

}  // namespace seqscale
