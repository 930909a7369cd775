// reduce_scatter: rank r ends with block r of the reduction of all ranks' inputs.
// size = the input (n x output); busbw = algbw * (n-1)/n.
#include "comm/collectives/collective_spec.h"

namespace seqscale::comm {
namespace {
CollectiveCounts counts(std::int64_t size, DType t, int n) {
  const std::int64_t per = size / dtype_bytes(t) / n;
  return {per * n, per};
}
double expected(std::int64_t i, int me, int n, ReduceOp op, int, const CollectiveCounts& c) {
  return collective_reduce(me * c.recv + i, n, op, DType::kFp32);
}
WorkPtr launch(Communicator& c, GroupKind g, const void* s, void* r, const CollectiveCounts& n, DType t, ReduceOp op,
               int) {
  return c.ireduce_scatter(g, s, r, n.recv, t, op);
}
}  // namespace
SEQSCALE_COLLECTIVE(reduce_scatter, {.name = "reduce_scatter", .kind = Collective::kReduceScatter, .uses_op = true,
                                     .counts = counts, .expected = expected, .launch = launch});
}  // namespace seqscale::comm
