#include "workloads/parallel/moe_comm.h"

#include <cmath>

namespace seqscale {

MoeShape moe_shape(const TransformerSpec& t, const Plan& p, const RunShape& shape) {
  MoeShape m;
  if (!t.is_moe()) return m;
  m.experts = t.moe_experts, m.top_k = t.moe_top_k, m.hidden = t.hidden;
  m.capacity_factor = t.moe_capacity_factor;
  m.tokens = shape.seq * shape.micro_batch / p.seq_shards();
  m.ep = p.ep;
  m.dtype = t.dtype;
  return m;
}

std::int64_t moe_capacity(const MoeShape& m) {
  // ceil(cf T k / E), tolerating the binary rounding of a decimal factor (1.1 * 10 slots
  // is 11.000000000000002 in doubles, and 11 slots).
  const double slots = m.capacity_factor * static_cast<double>(m.tokens * m.top_k) / static_cast<double>(m.experts);
  return static_cast<std::int64_t>(std::ceil(slots * (1.0 - 1e-12)));
}

double moe_all_to_all_bytes(const MoeShape& m) {
  // Every rank sends its whole padded dispatch buffer [E][C][H], whatever the routing.
  return static_cast<double>(dtype_bytes(m.dtype)) * static_cast<double>(m.experts * moe_capacity(m) * m.hidden);
}

void moe_dispatch_combine(CommOps& ops, const MoeShape& m, Phase ph) {
  if (m.ep <= 1) return;
  const double bytes = moe_all_to_all_bytes(m);
  for (int i = 0; i < 2; ++i) emit(ops, Collective::kAllToAll, GroupKind::kExpert, m.ep, bytes, ph);
}

}  // namespace seqscale
