// broadcast: the root's buffer reaches every rank. size = the buffer; busbw = algbw.
// The benchmark broadcasts in place from the receive buffer, which it seeds with the
// input on the root (out of place on the send buffer for the others, never read).
#include <cstring>

#include "comm/collectives/collective_spec.h"

namespace seqscale::comm {
namespace {
CollectiveCounts counts(std::int64_t size, DType t, int) {
  const std::int64_t n = size / dtype_bytes(t);
  return {n, n};
}
double expected(std::int64_t i, int, int, ReduceOp, int root, const CollectiveCounts&) {
  return collective_input(root, i, ReduceOp::kSum);
}
WorkPtr launch(Communicator& c, GroupKind g, const void*, void* r, const CollectiveCounts& n, DType t, ReduceOp,
               int root) {
  return c.ibroadcast(g, r, n.recv, t, root);
}
}  // namespace
SEQSCALE_COLLECTIVE(broadcast, {.name = "broadcast", .kind = Collective::kBroadcast, .uses_op = false,
                                .counts = counts, .expected = expected, .launch = launch});
}  // namespace seqscale::comm
