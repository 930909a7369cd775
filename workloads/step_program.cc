#include "workloads/step_program.h"

#include <algorithm>

namespace seqscale {

double StepProgram::total_flops() const {
  double total = 0;
  for (const auto& op : ops) {
    if (const auto* c = std::get_if<ComputeOp>(&op)) total += c->cost.flops;
  }
  return total;
}

std::int64_t StepProgram::comm_bytes(GroupKind group) const {
  std::int64_t total = 0;
  for (const auto& op : ops) {
    if (const auto* c = std::get_if<CommOp>(&op); c && c->group == group) total += c->bytes;
  }
  return total;
}

MemoryReplay StepProgram::replay_memory() const {
  MemoryReplay r;
  std::int64_t device = 0;
  std::int64_t host = 0;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const auto* e = std::get_if<MemoryEvent>(&ops[i]);
    if (!e) continue;
    if (e->on_host) {
      host += e->bytes;
      r.peak_host_bytes = std::max(r.peak_host_bytes, host);
    } else {
      device += e->bytes;
      if (device > r.peak_device_bytes) {
        r.peak_device_bytes = device;
        r.peak_op_index = i;
      }
    }
  }
  r.final_device_bytes = device;
  return r;
}

std::string_view phase_name(Phase p) {
  switch (p) {
    case Phase::kForward: return "forward";
    case Phase::kBackward: return "backward";
    case Phase::kOptimizer: return "optimizer";
    case Phase::kRecompute: return "recompute";
  }
  return "?";
}

std::string_view collective_name(Collective c) {
  switch (c) {
    case Collective::kAllReduce: return "all_reduce";
    case Collective::kAllGather: return "all_gather";
    case Collective::kReduceScatter: return "reduce_scatter";
    case Collective::kAllToAll: return "all_to_all";
    case Collective::kBroadcast: return "broadcast";
    case Collective::kSendRecv: return "send_recv";
    case Collective::kCount: break;
  }
  return "?";
}

std::string_view group_name(GroupKind g) {
  switch (g) {
    case GroupKind::kTensor: return "tp";
    case GroupKind::kPipeline: return "pp";
    case GroupKind::kData: return "dp";
    case GroupKind::kSequence: return "seq";
    case GroupKind::kExpert: return "ep";
    case GroupKind::kWorld: return "world";
    case GroupKind::kCount: break;
  }
  return "?";
}

std::string_view memory_kind_name(MemoryKind k) {
  switch (k) {
    case MemoryKind::kParameters: return "parameters";
    case MemoryKind::kGradients: return "gradients";
    case MemoryKind::kOptimizerStates: return "optimizer_states";
    case MemoryKind::kActivations: return "activations";
    case MemoryKind::kWorkspace: return "workspace";
    case MemoryKind::kCommBuffers: return "comm_buffers";
    case MemoryKind::kContext: return "context";
  }
  return "?";
}

}  // namespace seqscale
