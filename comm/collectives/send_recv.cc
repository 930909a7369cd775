// send_recv: a ring step, each rank sends its buffer to rank+1 and receives rank-1's
// (nccl-tests sendrecv). size = the buffer; busbw = algbw.
#include "comm/collectives/collective_spec.h"

namespace seqscale::comm {
namespace {
CollectiveCounts counts(std::int64_t size, DType t, int) {
  const std::int64_t n = size / dtype_bytes(t);
  return {n, n};
}
double expected(std::int64_t i, int me, int n, ReduceOp, int, const CollectiveCounts&) {
  return collective_input((me + n - 1) % n, i, ReduceOp::kSum);
}
WorkPtr launch(Communicator& c, GroupKind g, const void* s, void* r, const CollectiveCounts& n, DType t, ReduceOp, int) {
  const int me = c.group_rank(g), size = c.group_size(g);
  std::vector<WorkPtr> parts;
  c.group_start();
  parts.push_back(c.irecv(g, r, n.recv, t, (me + size - 1) % size, 0));
  parts.push_back(c.isend(g, s, n.send, t, (me + 1) % size, 0));
  c.group_end();
  return combine_work(std::move(parts));
}
}  // namespace
SEQSCALE_COLLECTIVE(send_recv, {.name = "send_recv", .kind = Collective::kSendRecv, .uses_op = false,
                                .counts = counts, .expected = expected, .launch = launch});
}  // namespace seqscale::comm
