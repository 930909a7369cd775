// Communication emitters: one per parallel strategy, each the single definition of the
// collectives that strategy issues. Two consumers use them unchanged:
//   model/comm_volume.cc   composes them in step order for a whole model (what the cost
//                          model prices, millions of plans in a search)
//   comm/strategies/*.cc   asks its emitter for the ops of its own tiny shapes; run()
//                          executes them and run_checked() compares executed with
//                          emitted, op by op, at run time
// so adding a strategy is one emitter here plus one run() there.
//
// Conventions every emitter follows:
// - An emitter appends to a CommOps the caller owns (no allocation of its own: the search
//   reuses one vector per step), in the order the rank issues the calls.
// - Bytes are the nccl-tests "size" of the call (workloads/collective_sizes.h): all_reduce, broadcast,
//   send and recv the buffer; all_gather the gathered output; reduce_scatter the input;
//   all_to_all what the rank sends. Computed in double from the shapes, rounded once.
// - A group of one rank issues nothing (as Megatron's mappings return their input when
//   the group's world size is 1), so a degree of 1 emits no op.
// - phase is the pass the call belongs to; overlappable says the schedule may hide it
//   behind independent compute (what the model may discount; run_checked compares
//   collective, group, group size, bytes and phase, not overlap).
// - crosses_nodes is left false: placement is the caller's (comm/groups.h).
// Plain C++: no MPI, NCCL or CUDA, and nothing from model/ (workloads <- model).
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "workloads/step_program.h"

namespace seqscale {

using CommOps = std::vector<CommOp>;

// Appends one op; `bytes` is rounded to the nearest byte.
inline void emit(CommOps& ops, Collective c, GroupKind g, std::int64_t group_size, double bytes, Phase phase,
                 bool overlappable = false) {
  CommOp op;
  op.collective = c;
  op.group = g;
  op.group_size = static_cast<std::int32_t>(group_size);
  op.bytes = static_cast<std::int64_t>(std::llround(bytes));
  op.phase = phase;
  op.overlappable = overlappable;
  ops.push_back(op);
}

}  // namespace seqscale
