// The nccl-tests conventions for one collective call, in one place: its "size" (the bytes a
// CommOp carries, the bytes a Communicator counts, the x axis of a collectives benchmark)
// and its bus-bandwidth factor (what the model multiplies a size by to get the bytes one
// rank puts on the wire, and what a benchmark multiplies algbw by to report busbw).
//
// Size is the larger of the call's two per-rank buffers:
//   all_reduce, broadcast, send, recv   the buffer                  count x dtype
//   all_gather                          the gathered output         n x send_count x dtype
//   reduce_scatter                      the input                   n x recv_count x dtype
//   all_to_all                          what the rank sends         n x count_per_peer x dtype
// Bus-bandwidth factor (nccl-tests PERFORMANCE.md): 2(n-1)/n all-reduce; (n-1)/n all-gather,
// reduce-scatter and all-to-all; 1 broadcast and send/recv. A group of one rank puts
// nothing on any link, so every factor is 0 at n <= 1 (a broadcast or a send to oneself
// moves no byte between GPUs; the model then prices no bandwidth time, the communicator
// counts no wire bytes, and a one-rank benchmark reports busbw 0).
// Plain C++, constexpr: comm/ (MPI, NCCL, staging, collectives benchmarks) and model/
// (roofline) include it; nothing else restates these numbers.
#pragma once
#include <cstdint>

#include "workloads/dtype.h"
#include "workloads/step_program.h"

namespace seqscale {

// `count` is the count argument of the Communicator call (comm/communicator.h): the buffer
// for all_reduce, broadcast, send and recv; send_count for all_gather; recv_count for
// reduce_scatter; count_per_peer for all_to_all. n is the group size.
constexpr std::int64_t collective_size_bytes(Collective c, std::int64_t count, DType t, std::int64_t n) {
  const std::int64_t one = count * dtype_bytes(t);
  switch (c) {
    case Collective::kAllGather:
    case Collective::kReduceScatter:
    case Collective::kAllToAll: return one * n;
    case Collective::kAllReduce:
    case Collective::kBroadcast:
    case Collective::kSendRecv:
    case Collective::kCount: break;
  }
  return one;
}

constexpr double busbw_factor(Collective c, std::int64_t n) {
  if (n <= 1) return 0.0;
  const double dn = static_cast<double>(n);
  switch (c) {
    case Collective::kAllReduce: return 2.0 * (dn - 1) / dn;
    case Collective::kAllGather:
    case Collective::kReduceScatter:
    case Collective::kAllToAll: return (dn - 1) / dn;
    case Collective::kBroadcast:
    case Collective::kSendRecv:
    case Collective::kCount: break;
  }
  return 1.0;
}

}  // namespace seqscale
