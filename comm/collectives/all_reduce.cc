// all_reduce: every rank ends with the reduction of all ranks' buffers.
// size = the buffer; busbw = algbw * 2(n-1)/n (ring: reduce-scatter + all-gather).
#include "comm/collectives/collective_spec.h"

namespace seqscale::comm {
namespace {
CollectiveCounts counts(std::int64_t size, DType t, int) {
  const std::int64_t n = size / dtype_bytes(t);
  return {n, n};
}
double expected(std::int64_t i, int, int n, ReduceOp op, int, const CollectiveCounts&) {
  return collective_reduce(i, n, op, DType::kFp32);
}
WorkPtr launch(Communicator& c, GroupKind g, const void* s, void* r, const CollectiveCounts& n, DType t, ReduceOp op,
               int) {
  return c.iall_reduce(g, s, r, n.send, t, op);
}
}  // namespace
SEQSCALE_COLLECTIVE(all_reduce, {.name = "all_reduce", .kind = Collective::kAllReduce, .uses_op = true,
                                 .counts = counts, .expected = expected, .launch = launch});
}  // namespace seqscale::comm
