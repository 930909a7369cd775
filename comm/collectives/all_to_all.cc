// all_to_all: block j of rank r's input lands in block r of rank j's output.
// size = what a rank sends (n blocks); busbw = algbw * (n-1)/n.
#include "comm/collectives/collective_spec.h"

namespace seqscale::comm {
namespace {
CollectiveCounts counts(std::int64_t size, DType t, int n) {
  const std::int64_t per = size / dtype_bytes(t) / n;
  return {per * n, per * n};
}
double expected(std::int64_t i, int me, int n, ReduceOp, int, const CollectiveCounts& c) {
  const std::int64_t per = c.send / n;
  return collective_input(static_cast<int>(i / per), me * per + i % per, ReduceOp::kSum);
}
WorkPtr launch(Communicator& c, GroupKind g, const void* s, void* r, const CollectiveCounts& n, DType t, ReduceOp, int) {
  return c.iall_to_all(g, s, r, n.send / c.group_size(g), t);
}
}  // namespace
SEQSCALE_COLLECTIVE(all_to_all, {.name = "all_to_all", .kind = Collective::kAllToAll, .uses_op = false,
                                 .counts = counts, .expected = expected, .launch = launch});
}  // namespace seqscale::comm
