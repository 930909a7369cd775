// The strategies' emitted ops without MPI: each toy step's communication volume against
// the closed forms of the papers, and the pipeline schedule's shape. (That run() issues
// exactly these ops is tests/consistency/strategies_mpi_test.cpp.)
#include <gtest/gtest.h>

#include <set>

#include "comm/strategies/strategy.h"
#include "tests/consistency/consistency.h"
#include "workloads/parallel/pipeline_comm.h"

namespace seqscale::comm {
namespace {

std::vector<CommOp> emitted(const std::string& name, int world, int rank = 0) {
  const StrategyDef* d = find_strategy(name);
  EXPECT_NE(d, nullptr) << name;
  return d ? d->emit(RankLayout(d->dims(world)), rank) : std::vector<CommOp>{};
}
std::int64_t bytes(const std::vector<CommOp>& ops, GroupKind g) {
  std::int64_t b = 0;
  for (const CommOp& o : ops)
    if (o.group == g) b += o.bytes;
  return b;
}

TEST(StrategyEmitters, UlyssesVolumeIsEightAllToAllsOfNhOverP) {
  // DeepSpeed-Ulysses: per-link volume 4Nh/P forward (q, k, v, o), the same backward.
  for (int p : {2, 4, 8}) {
    const auto ops = emitted("ulysses", p);
    EXPECT_EQ(ops.size(), 8u);
    EXPECT_EQ(bytes(ops, GroupKind::kSequence), 8 * 16 * 32 * 4 / p);
  }
}

TEST(StrategyEmitters, MegatronSpMovesWhatTensorParallelMoves) {
  // An all-reduce is a reduce-scatter plus an all-gather (ANCHORS s3): per block and
  // pass the same size, and on the wire 2(t-1)/t of it either way; Megatron-SP's backward
  // also gathers the block's input again for the weight gradient (overlappable).
  const auto tp = emitted("tensor_parallel", 4), sp = emitted("megatron_sp", 4);
  EXPECT_EQ(bytes(tp, GroupKind::kTensor), 2 * 6 * 8 * 4);           // tokens 6
  EXPECT_EQ(bytes(sp, GroupKind::kTensor), 5 * 16 * 8 * 4 + 8 * 4);  // tokens 16, + d(gamma)
  const auto sp_acts = consistency::only(
      sp, [](const CommOp& o) { return o.collective != Collective::kAllReduce && !o.overlappable; });
  EXPECT_DOUBLE_EQ(consistency::link_bytes(sp_acts) / 16, consistency::link_bytes(tp) / 6);
}

TEST(StrategyEmitters, ZeroStagesPerStep) {
  const std::int64_t psi_bytes = 64 * 4, steps = 2;
  EXPECT_EQ(bytes(emitted("zero1", 4), GroupKind::kData), steps * 2 * psi_bytes);  // AR + AG
  EXPECT_EQ(bytes(emitted("zero2", 4), GroupKind::kData), steps * 2 * psi_bytes);  // RS + AG
  EXPECT_EQ(bytes(emitted("zero3", 4), GroupKind::kData), steps * 3 * psi_bytes);  // 2 AG + RS
  // ZeRO-Offload moves the optimizer, not a collective: ZeRO-2 on the wire.
  EXPECT_EQ(consistency::first_difference(emitted("cpu_offload", 4), emitted("zero2", 4)), "");
}

TEST(StrategyEmitters, PipelineSendsPerMicrobatch) {
  // 2 ranks: pp 2, tp 1. Each stage is an end: it sends and receives each of its
  // m = 2p micro-batches once (activation or gradient).
  const std::int64_t msg = 2 * 8 * 4;
  EXPECT_EQ(bytes(emitted("pipeline_1f1b", 2, 0), GroupKind::kPipeline), 2 * 4 * msg);
  // 8 ranks: pp 4, tp 2. Inner stages move every micro-batch twice each way, the ends
  // once; in scatter/gather form each message is 1/tp of the boundary, and every
  // receive is followed by an all-gather of the whole boundary over the TP group.
  const int m = 8;
  const auto inner = emitted("pipeline_1f1b", 8, 2 /* tp 0 of stage 1 */);
  EXPECT_EQ(bytes(inner, GroupKind::kPipeline), 4 * m * msg / 2);
  EXPECT_EQ(bytes(inner, GroupKind::kTensor), 2 * m * msg);
  ASSERT_FALSE(inner.empty());
  EXPECT_EQ(inner.front().group, GroupKind::kPipeline);
  for (std::size_t i = 1; i < inner.size(); ++i)
    if (inner[i].group == GroupKind::kTensor) {
      EXPECT_EQ(inner[i - 1].group, GroupKind::kPipeline) << i;
    }
  // Interleaved, v = 2: every rank also crosses the chunk boundary, so all stages but
  // the two ends of the virtual pipeline send and receive for both chunks.
  EXPECT_EQ(bytes(emitted("pipeline_interleaved", 8, 2), GroupKind::kPipeline), 2 * 4 * m * msg / 2);
  EXPECT_EQ(bytes(emitted("pipeline_interleaved", 8, 0), GroupKind::kPipeline), (4 + 2) * m * msg / 2);
}

TEST(PipelineSchedule, EveryPassOnceAndForwardBeforeBackward) {
  for (int chunks : {1, 2})
    for (int pp : {2, 4, 8})
      for (int stage = 0; stage < pp; ++stage) {
        const int m = 2 * pp;
        const auto s = pipeline_schedule(pp, stage, m, chunks);
        ASSERT_EQ(static_cast<int>(s.size()), 2 * m * chunks);
        std::set<std::pair<int, int>> fwd_done;
        int in_flight = 0, peak = 0;
        for (const auto& x : s) {
          if (x.forward) {
            EXPECT_TRUE(fwd_done.insert({x.microbatch, x.chunk}).second);
            peak = std::max(peak, ++in_flight);
          } else {
            EXPECT_TRUE(fwd_done.count({x.microbatch, x.chunk})) << "backward before forward";
            --in_flight;
          }
        }
        // 1F1B bounds live activations by the stages still ahead (memory advantage over GPipe).
        if (chunks == 1) {
          EXPECT_EQ(peak, std::min(m, pp - stage));
        }
      }
}

TEST(StrategyEmitters, LssAndDapAndMoeGroups) {
  const auto lss = emitted("lss", 8);  // seq 4, dp 2
  EXPECT_EQ(bytes(lss, GroupKind::kSequence), 2 * 16 * 16 * 4 + 3 * 64 * 4);  // [k|v] gather + RS, the average
  EXPECT_EQ(bytes(lss, GroupKind::kData), 3 * 64 * 4);
  EXPECT_EQ(bytes(emitted("lss", 2), GroupKind::kData), 0);  // seq 2, dp 1: one replica, no second average
  // The bias gather and its reduce-scatter, 4 all-to-alls, the exit m and z, the fused
  // weight gradients (c + c_z fp32).
  EXPECT_EQ(bytes(emitted("dap", 4), GroupKind::kSequence),
            2 * 8 * 8 * 4 + 4 * (8 / 4) * 8 * 4 * 4 + 8 * 8 * 4 * 4 + 8 * 8 * 4 * 4 + (4 + 4) * 4);
  // 4 all-to-alls of E*C*H (C = ceil(1.25 * 6 * 2 / 8) = 2), the router over dp.
  const auto moe = emitted("moe_expert_parallel", 4);
  EXPECT_EQ(bytes(moe, GroupKind::kExpert), 4 * 8 * 2 * 4 * 4);
  EXPECT_EQ(bytes(moe, GroupKind::kData), 4 * 8 * 4);
}

}  // namespace
}  // namespace seqscale::comm
