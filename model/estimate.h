// estimate(): per-rank peak memory with a breakdown, step time with a breakdown,
// throughput, TFLOP/s per GPU and MFU for (workload, cluster, plan, shape).
//
// Time (per pipeline stage and micro-batch, then the 1F1B / interleaved schedule):
//   compute  every op's FLOPs and bytes priced by the roofline with its calibrated
//            efficiency (model/roofline.h); backward 2x forward; full recompute one more
//            forward, selective the attention core again.
//   comm     alpha-beta per collective on the bottleneck tier: TP (all-reduce, or AG+RS
//            with Megatron-SP) and Ulysses all-to-all on the critical path; DP gradient
//            reduction overlapped with the last micro-batch's backward; ZeRO-3 gathers and
//            parameter offload overlapped with compute (only the excess is exposed).
//   bubble   (p-1)/v micro-batch times (Narayanan et al. 2021).
//   optimizer on the GPU (32 B/param streamed) or on the host (cluster Adam rate + PCIe).
// TFLOP/s per GPU follows Megatron-DeepSpeed's reporting formula (the published GPT-30B
// table uses it): 24 c B s L h^2 (1 + s/(6h) + V/(16Lh)), c = 4 with full recompute else 3.
// MFU uses the model FLOPs 72 B s L h^2 (1 + s/(6h) + V/(12hL)) (ANCHORS s4).
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "model/calibration.h"
#include "model/memory.h"
#include "workloads/plan.h"
#include "workloads/specs.h"

namespace seqscale {

struct TimeBreakdown {
  // sp_comm: the sequence group's (Ulysses all-to-alls, LSS k/v gathers) or DAP's; ep_comm: MoE.
  double compute = 0, tp_comm = 0, sp_comm = 0, ep_comm = 0, pp_comm = 0, dp_comm = 0, zero3_comm = 0;
  double bubble = 0, optimizer = 0, offload = 0, step = 0;
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

// Megatron-DeepSpeed's FLOPs per step (all GPUs) and the model FLOPs for MFU.
double megatron_reported_flops(const TransformerSpec& t, const Plan& p, double batch, double seq);
double model_flops(const TransformerSpec& t, double batch, double seq);

nlohmann::json to_json(const Estimate& e, const ModelSpec& model, const ClusterSpec& cluster);

}  // namespace seqscale
