// StepProgram: the ordered ops of one training (or inference) step on one rank.
// Workloads emit it, strategies transform it, the model prices it and the harness runs
// it, so a disagreement between prediction and measurement points at one op.
#pragma once
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "workloads/dtype.h"

namespace seqscale {

enum class Phase : std::uint8_t { kForward, kBackward, kOptimizer, kRecompute };

// What a kernel declares about one call: the model prices it, the harness checks it.
struct KernelCost {
  double flops = 0;            // useful floating-point operations
  double bytes = 0;            // compulsory DRAM traffic (reads + writes)
  std::int64_t workspace_bytes = 0;  // transient device memory during the call
};

struct ComputeOp {
  std::string kernel;                 // its op kind (workloads/op_kinds.h), e.g. "layernorm_fwd"
  std::vector<std::int64_t> shape;    // kernel-specific, documented by the kernel
  DType dtype = DType::kBf16;
  KernelCost cost;
  Phase phase = Phase::kForward;
  std::int32_t layer = -1;            // -1: not inside a layer (embedding, head, loss)
};

// kCount is not a collective: it sizes arrays indexed by Collective.
enum class Collective : std::uint8_t {
  kAllReduce, kAllGather, kReduceScatter, kAllToAll, kBroadcast, kSendRecv, kCount
};
inline constexpr int kNumCollectives = static_cast<int>(Collective::kCount);

// Process groups a plan creates (comm/groups builds them from the plan; workloads/placement.h
// places them). kSequence is the rank layout's sequence axis: the Ulysses all-to-alls, the
// LSS segment gathers and the Evoformer's DAP collectives all run on it (a plan uses at most
// one of them, so one kind names their ranks). Megatron-SP has no group: it runs on kTensor.
// kCount is not a group: it sizes arrays indexed by GroupKind.
enum class GroupKind : std::uint8_t { kTensor, kPipeline, kData, kSequence, kExpert, kWorld, kCount };
inline constexpr int kNumGroupKinds = static_cast<int>(GroupKind::kCount);

struct CommOp {
  Collective collective = Collective::kAllReduce;
  GroupKind group = GroupKind::kWorld;
  std::int32_t group_size = 1;
  std::int64_t bytes = 0;       // payload per rank, nccl-tests "size" (workloads/collective_sizes.h)
  Phase phase = Phase::kForward;
  bool overlappable = false;    // may run concurrently with independent compute
  bool crosses_nodes = false;   // bottleneck tier: InfiniBand instead of NVLink
};

enum class MemoryKind : std::uint8_t {
  kParameters, kGradients, kOptimizerStates, kActivations, kWorkspace, kCommBuffers, kContext
};

// alloc (bytes > 0) or free (bytes < 0) of device memory, or a host-side record when
// on_host is set (offload). Replaying the events gives the peak.
struct MemoryEvent {
  MemoryKind kind = MemoryKind::kActivations;
  std::int64_t bytes = 0;
  bool on_host = false;
  std::string tag;
};

using StepOp = std::variant<ComputeOp, CommOp, MemoryEvent>;

struct MemoryReplay {
  std::int64_t peak_device_bytes = 0;
  std::int64_t final_device_bytes = 0;
  std::int64_t peak_host_bytes = 0;
  std::size_t peak_op_index = 0;  // the event at which the peak happened
};

struct StepProgram {
  std::vector<StepOp> ops;

  void add(ComputeOp op) { ops.emplace_back(std::move(op)); }
  void add(CommOp op) { ops.emplace_back(op); }
  void alloc(MemoryKind kind, std::int64_t bytes, std::string tag, bool on_host = false) {
    ops.emplace_back(MemoryEvent{kind, bytes, on_host, std::move(tag)});
  }
  void free(MemoryKind kind, std::int64_t bytes, std::string tag, bool on_host = false) {
    ops.emplace_back(MemoryEvent{kind, -bytes, on_host, std::move(tag)});
  }

  double total_flops() const;
  std::int64_t comm_bytes(GroupKind group) const;  // sum of CommOp payloads in a group
  MemoryReplay replay_memory() const;
};

std::string_view phase_name(Phase p);
std::string_view collective_name(Collective c);
std::string_view group_name(GroupKind g);
std::string_view memory_kind_name(MemoryKind k);

}  // namespace seqscale
