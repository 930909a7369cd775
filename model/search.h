// Plan search: framework presets as plan spaces, the longest sequence that fits, and the
// fastest feasible plan per GPU count.
//
// Presets (what each framework could express; see model/README.md for the sources):
//   megatron-deepspeed-old  Megatron-DeepSpeed before the DS4Sci long-sequence changes:
//                           TP (across nodes too: its GPT-30B runs used TP=32), PP, DP with
//                           ZeRO 0-3 (ZeRO-1 at most with pp>1: DeepSpeed's pipeline
//                           engine supports ZeRO-1 only) and ZeRO-Offload of the optimizer,
//                           full recompute, FlashAttention, no sequence parallelism, the fp32
//                           causal mask on the GPU, a replicated position table.
//   megatron-lm             TP <= 8 + PP + Megatron-SP, selective or full recompute, the
//                           distributed optimizer (ZeRO-1), FlashAttention, the fp32 mask from
//                           its data path, a replicated position table, no offload.
//   megatron-deepspeed-new  all DS4Sci changes: no mask tensor (FlashAttention's causal
//                           flag), a partitioned position table, Megatron-SP with TP up to 32
//                           (a calibration choice: TP=64 overshoots the 64-GPU Figure 9
//                           points by 35-44%), PP, ZeRO 0-3 and offload of optimizer states,
//                           full recompute.
//   seqscale-best           every technique modelled, searched freely (adds Ulysses, ZeRO-3
//                           parameter offload, interleaved pipelines, any TP dividing heads).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/calibration.h"
#include "model/estimate.h"
#include "workloads/plan.h"
#include "workloads/specs.h"

namespace seqscale {

struct Preset {
  std::string name;
  std::string summary;
  std::int32_t max_tp = 8;
  bool tp_across_nodes = false;  // else only TP degrees whose groups fit in a node (placement.h)
  std::vector<SeqParallel> sp;
  std::vector<Recompute> recompute;
  std::vector<AttentionImpl> attn;
  std::vector<MaskKind> mask;
  std::vector<PosTable> pos;
  std::vector<int> zero;
  std::vector<Offload> offload;
  std::vector<bool> ckpt_partitioned{false};
  bool pipeline = true;
  bool interleaved = false;
  bool zero_with_pp_above_1 = false;  // DeepSpeed's pipeline engine: ZeRO-1 at most with pp>1
};

const std::vector<Preset>& presets();
const Preset& find_preset(const std::string& name);  // throws ConfigError listing the names

// Every valid plan of the preset for this model, cluster and GPU count (sequence-independent
// divisibility; the sequence is checked per length). The cluster's gpus_per_node decides
// which TP degrees stay inside a node (workloads/placement.h).
std::vector<Plan> enumerate_plans(const Preset& preset, const ModelSpec& model, const ClusterSpec& cluster,
                                  std::int64_t gpus);

struct MaxSeqResult {
  std::int64_t gpus = 0;
  std::string preset;
  std::int64_t max_seq = 0;     // 0 when nothing fits even at one granule
  Plan plan;
  MemTerm binding = MemTerm::kParameters;  // at max_seq + granularity (what stops it growing)
  double peak_bytes = 0;        // at max_seq
  std::int64_t plans_evaluated = 0;
};

// Longest sequence on a `granularity` grid (up to max_seq_limit) over the preset's plans.
MaxSeqResult max_sequence(const ModelSpec& model, const ClusterSpec& cluster, std::int64_t gpus,
                          const Preset& preset, std::int64_t granularity = 1024,
                          std::int64_t max_seq_limit = 1 << 24);

// Every sequence on the grid for every plan (no bisection): the brute-force search the issue
// times; returns the number of (plan, length) evaluations.
std::int64_t exhaustive_sweep(const ModelSpec& model, const ClusterSpec& cluster, std::int64_t gpus,
                              const Preset& preset, std::int64_t granularity, std::int64_t max_seq,
                              MaxSeqResult* out);

// The fastest feasible plan of the preset at this sequence length.
struct BestPlan {
  bool found = false;
  Estimate estimate;
};
BestPlan best_plan(const ModelSpec& model, const ClusterSpec& cluster, std::int64_t gpus, const Preset& preset,
                   const RunShape& shape, const Calibration& cal);

}  // namespace seqscale
