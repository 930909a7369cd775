// all_gather: rank r's buffer lands in block r of every rank's output.
// size = the gathered output (n x input); busbw = algbw * (n-1)/n.
#include "comm/collectives/collective_spec.h"

namespace seqscale::comm {
namespace {
CollectiveCounts counts(std::int64_t size, DType t, int n) {
  const std::int64_t per = size / dtype_bytes(t) / n;
  return {per, per * n};
}
double expected(std::int64_t i, int, int, ReduceOp, int, const CollectiveCounts& c) {
  return collective_input(static_cast<int>(i / c.send), i % c.send, ReduceOp::kSum);
}
WorkPtr launch(Communicator& c, GroupKind g, const void* s, void* r, const CollectiveCounts& n, DType t, ReduceOp, int) {
  return c.iall_gather(g, s, r, n.send, t);
}
}  // namespace
SEQSCALE_COLLECTIVE(all_gather, {.name = "all_gather", .kind = Collective::kAllGather, .uses_op = false,
                                 .counts = counts, .expected = expected, .launch = launch});
}  // namespace seqscale::comm
