// A parallel plan: how one training step of a workload is split over GPUs, and which
// memory-saving techniques it uses. Parsed from the CLI's --plan "tp=8,pp=2,sp=megatron,..."
// and enumerated by search.h. Plain data, small enough to evaluate millions per second.
//
// Keys (defaults in brackets):
//   tp [1]  pp [1]  dp [derived: gpus / (tp*pp*sp_degree*dap)]  vpp [1] virtual stages
//   schedule [1f1b] | interleaved          sp [none] | megatron | ulysses | lss
//   p2p_overlap [0] | 1  overlap the interleaved schedule's pipeline transfers with compute
//           (Megatron's --overlap-p2p-communication; older releases block on them)
//   sp_degree [derived for ulysses, lss]   dap [1]  Dynamic Axial Parallelism (Evoformer)
//   ep [1]  expert-parallel degree of a MoE model: the experts are split over ep of the
//           dp ranks (DeepSpeed-MoE's expert parallel group; must divide dp and experts)
//   zero [0..3]   recompute [none] | selective | full
//   attn [fused] | materialized (alias: flash, naive)
//   mask [none] | bool | fp32   (the causal mask tensor kept on the GPU)
//   offload [none] | optimizer | params | all
//   pos [partitioned] | replicated  (learned position table across sequence-parallel ranks)
//   ckpt [local] | partitioned  (full-recompute checkpoints split over the TP ranks:
//        DeepSpeed activation checkpointing's partition_activations / Megatron's
//        --distribute-checkpointed-activations; redundant with sp=megatron)
// sp=lss is LSS Transformer's segmented sequence parallelism (Wang et al. 2023): every
// layer runs on a 1/sp_degree segment of the sequence with replicated weights; k and v
// are all-gathered for attention and the weights' gradients averaged over the segments,
// then over dp ("double gradient averaging"), so model states are not sharded over them.
//
// Sequence-parallel names: one meaning each, everywhere (comm/, model/, harness/, results).
//   sp= key, Plan::sp, SeqParallel,   the sequence-parallel METHOD: none, megatron,
//     sp_name(), search's Preset::sp    ulysses or lss
//   sp_degree= key, Plan::sp_degree   the Ulysses or LSS degree (a plan key; megatron
//                                     has none: it shards the sequence over the tp ranks)
//   Plan::ulysses(), Plan::lss()      sp_degree when that method is chosen, else 1
//   Plan::seq_degree()                ulysses() x lss(): the ranks a layer's sequence is
//                                     split over outside tensor-parallel regions
//   Plan::seq_shards()                seq_degree(), x tp under Megatron-SP
//   seq (rank layout)                 the sequence AXIS of the rank order:
//     RankAxis::kSequence,              seq_degree() x dap (a plan uses at most one of
//     comm::ParallelDims::seq,          Ulysses, LSS and DAP: check_plan)
//     comm::RankCoord::seq
//   GroupKind::kSequence, "seq"       the process group along that axis: Ulysses'
//                                     all-to-alls, LSS's gathers and DAP's collectives
//                                     (one kind: they are the same ranks)
//   TimeBreakdown::seq_comm,          the step time of the layers' kSequence collectives
//     "seq_comm", "time.seq_comm_s"     (predict JSON, model snapshot; LSS's per-step
//                                       gradient average counts as dp_comm)
//   "bytes.seq.<phase>.<collective>"  snapshot bytes on the kSequence group
//   megatron_sp (a local bool),       Megatron-SP (Korthikanti et al. 2022): the TP
//     MemTerm "sp_gather_buffers"       group's all-gather / reduce-scatter and its buffers
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "workloads/specs.h"

namespace seqscale {

enum class SeqParallel : std::uint8_t { kNone, kMegatron, kUlysses, kLss };
enum class Recompute : std::uint8_t { kNone, kSelective, kFull };
enum class AttentionImpl : std::uint8_t { kMaterialized, kFused };
enum class MaskKind : std::uint8_t { kNone, kBool, kFp32 };
enum class Offload : std::uint8_t { kNone, kOptimizer, kParams, kAll };
enum class PipeSchedule : std::uint8_t { k1F1B, kInterleaved };
enum class PosTable : std::uint8_t { kPartitioned, kReplicated };

struct Plan {
  std::int32_t tp = 1;
  std::int32_t pp = 1;
  std::int32_t dp = 0;          // 0: derived from the GPU count
  std::int32_t vpp = 1;         // model chunks per stage (interleaved schedule)
  std::int32_t sp_degree = 1;   // Ulysses / LSS sequence-parallel degree (0: derived)
  std::int32_t dap = 1;         // Evoformer DAP degree
  std::int32_t ep = 1;          // MoE expert-parallel degree, inside the dp ranks
  std::int32_t zero = 0;
  SeqParallel sp = SeqParallel::kNone;
  Recompute recompute = Recompute::kNone;
  AttentionImpl attn = AttentionImpl::kFused;
  MaskKind mask = MaskKind::kNone;
  Offload offload = Offload::kNone;
  PipeSchedule schedule = PipeSchedule::k1F1B;
  PosTable pos = PosTable::kPartitioned;
  bool ckpt_partitioned = false;
  bool p2p_overlap = false;     // interleaved schedule only (Megatron disables it for 1F1B)

  bool offload_optimizer() const { return offload == Offload::kOptimizer || offload == Offload::kAll; }
  bool offload_params() const { return offload == Offload::kParams || offload == Offload::kAll; }
  std::int32_t ulysses() const { return sp == SeqParallel::kUlysses ? sp_degree : 1; }
  std::int32_t lss() const { return sp == SeqParallel::kLss ? sp_degree : 1; }
  // Ranks a layer's sequence is split over by Ulysses or LSS (the kSequence group of a
  // transformer plan; an Evoformer's kSequence group is its dap ranks).
  std::int32_t seq_degree() const { return ulysses() * lss(); }
  // Ranks that hold a shard of the sequence outside tensor-parallel regions.
  std::int32_t seq_shards() const { return seq_degree() * (sp == SeqParallel::kMegatron ? tp : 1); }
  // ZeRO shards model states over data-parallel and Ulysses ranks (DeepSpeed-Ulysses).
  std::int32_t zero_shards() const { return dp * ulysses(); }
};

// One step's shape: sequence length (N_res for an Evoformer), micro-batch and global batch.
struct RunShape {
  std::int64_t seq = 0;
  std::int64_t micro_batch = 1;
  std::int64_t global_batch = 0;  // 0: dp * micro_batch * pp (fills a 1F1B pipeline)
};

// Throws ConfigError("--plan: key 'tp' ...") naming the offending key.
Plan parse_plan(std::string_view text);
std::string plan_to_string(const Plan& plan);

// Derives dp / sp_degree from `gpus` and checks divisibility and compatibility. Returns ""
// when valid, else the reason (one line). Fast: used inside the search.
std::string check_plan(Plan& plan, const ModelSpec& model, std::int64_t gpus, const RunShape& shape);
// The same, throwing ConfigError with the reason.
void validate_plan(Plan& plan, const ModelSpec& model, std::int64_t gpus, const RunShape& shape);

// Micro-batches per pipeline per step (global_batch / (micro_batch * dp * ulysses)).
std::int64_t micro_batches(const Plan& plan, const RunShape& shape);

std::string_view sp_name(SeqParallel v);
std::string_view recompute_name(Recompute v);
std::string_view attn_name(AttentionImpl v);
std::string_view mask_name(MaskKind v);
std::string_view offload_name(Offload v);
std::string_view schedule_name(PipeSchedule v);
std::string_view pos_name(PosTable v);

}  // namespace seqscale
