// estimate(): per-rank peak memory with a breakdown, step time with a breakdown,
// throughput, TFLOP/s per GPU and MFU for (workload, cluster, plan, shape).
//
// Time (per pipeline stage and micro-batch, then the 1F1B / interleaved schedule):
//   compute  every op's FLOPs and bytes priced by the roofline with its calibrated
//            efficiency (model/roofline.h); backward 2x forward; full recompute one more
//            forward, selective the attention core again.
//   comm     every op of model/comm_volume.h, alpha-beta on the link its group is placed
//            on (workloads/placement.h: NVLink inside a node, InfiniBand across): TP
//            (all-reduce, or AG+RS with Megatron-SP) and Ulysses all-to-all on the critical
//            path; pipeline transfers on it too, unless marked overlappable (then only what
//            one model chunk's forward cannot hide); DP gradient reduction overlapped with
//            the last micro-batch's backward; ZeRO-3 gathers and parameter offload
//            overlapped with compute (only the excess is exposed).
//   bubble   (p-1)/v micro-batch times (Narayanan et al. 2021).
//   optimizer on the GPU (32 B/param streamed) or on the host (cluster Adam rate + PCIe).
// TFLOP/s per GPU follows Megatron-DeepSpeed's reporting formula (the published GPT-30B
// table uses it): 24 c B s L h^2 (1 + s/(6h) + V/(16Lh)), c = 4 with full recompute else 3.
// MFU uses the model FLOPs 72 B s L h^2 (1 + s/(6h) + V/(12hL)) (ANCHORS s4).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/calibration.h"
#include "model/memory.h"
#include "workloads/plan.h"
#include "workloads/specs.h"

namespace seqscale {

struct TimeBreakdown {
  // seq_comm: the sequence group's (kSequence: Ulysses all-to-alls, LSS k/v gathers, or an
  // Evoformer's DAP collectives); ep_comm: MoE.
  double compute = 0, tp_comm = 0, seq_comm = 0, ep_comm = 0, pp_comm = 0, dp_comm = 0, zero3_comm = 0;
  double bubble = 0, optimizer = 0, offload = 0, step = 0;
};

// Where the step's traffic over one group runs, as workloads/placement.h places the group.
struct CommLink {
  GroupKind group = GroupKind::kWorld;
  std::int32_t group_size = 1;
  LinkTier tier = LinkTier::kNvlink;  // kIb when some group of the kind crosses nodes
  std::int64_t ranks_per_node = 1;    // NICs a node drives for it: the fewest members a node
                                      // holds of a group (a send/recv: its one sender)
};

struct Estimate {
  Plan plan;                 // with dp / sp_degree derived
  RunShape shape;            // with global_batch derived
  std::int64_t gpus = 0;
  bool fits = false;
  std::string why_not;       // "" when it fits: which memory (device or host) overflows
  MemoryBreakdown memory;
  double device_capacity_bytes = 0;
  TimeBreakdown time;
  std::vector<CommLink> links;   // one per group the step communicates over
  double hw_flops_per_gpu = 0;   // executed per step, recompute included
  double tokens_per_s = 0;
  double tflops_per_gpu = 0;
  double mfu = 0;
};

// Memory only (what the search calls millions of times). The plan must be checked.
MemoryBreakdown estimate_memory(const ModelSpec& model, const ClusterSpec& cluster, const Plan& plan, const RunShape& shape);
bool memory_fits(const MemoryBreakdown& m, const ClusterSpec& cluster);

// Full estimate. Validates the plan (throws ConfigError with the reason when invalid).
Estimate estimate(const ModelSpec& model, const ClusterSpec& cluster, Plan plan, std::int64_t gpus,
                  const RunShape& shape, const Calibration& cal);

// One transformer step's communication per breakdown term (seconds on one rank, before the
// schedule overlaps anything), every op priced on its group's link. A pipeline transfer
// marked overlappable exposes only what `p2p_hide_s` of compute cannot cover (model/README.md,
// "Pipeline transfers"). `links`, when given, receives where each group ran.
struct StepCommTime {
  double tp = 0, seq = 0, ep = 0, p2p = 0, dp = 0, zero3 = 0;
};
StepCommTime transformer_comm_time(const std::vector<CommOp>& ops, const Plan& plan, const ClusterSpec& cluster,
                                   const Calibration& cal, double p2p_hide_s, std::vector<CommLink>* links = nullptr);

// Megatron-DeepSpeed's FLOPs per step (all GPUs) and the model FLOPs for MFU.
double megatron_reported_flops(const TransformerSpec& t, const Plan& p, double batch, double seq);
double model_flops(const TransformerSpec& t, double batch, double seq);

nlohmann::json to_json(const Estimate& e, const ModelSpec& model, const ClusterSpec& cluster);

}  // namespace seqscale
