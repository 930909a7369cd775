// Strategy declarations without MPI: the StepPrograms' communication volume against the
// closed forms of the papers, and the pipeline schedules' shape.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "comm/strategies/pipeline.h"
#include "comm/strategies/strategy.h"

namespace seqscale::comm {
namespace {

StepProgram declared(const std::string& name, int world, int rank = 0) {
  const StrategyDef* d = find_strategy(name);
  EXPECT_NE(d, nullptr) << name;
  StepProgram p;
  if (d) d->declare(RankLayout(d->dims(world)), rank, p);
  return p;
}

TEST(StrategyDeclarations, UlyssesVolumeIsEightAllToAllsOfNhOverP) {
  // DeepSpeed-Ulysses: per-link volume 4Nh/P forward (q, k, v, o), the same backward.
  for (int p : {1, 2, 4, 8}) EXPECT_EQ(declared("ulysses", p).comm_bytes(GroupKind::kSequence), 8 * 16 * 32 * 4 / p);
}

TEST(StrategyDeclarations, MegatronSpMovesWhatTensorParallelMoves) {
  // An all-reduce is a reduce-scatter plus an all-gather: same size, tokens 16 vs 6.
  const auto tp = declared("tensor_parallel", 4), sp = declared("megatron_sp", 4);
  EXPECT_EQ(tp.comm_bytes(GroupKind::kTensor), 2 * 6 * 8 * 4);
  EXPECT_EQ(sp.comm_bytes(GroupKind::kTensor), 4 * 16 * 8 * 4 + 8 * 4);
}

TEST(StrategyDeclarations, ZeroStagesPerStep) {
  const std::int64_t psi_bytes = 64 * 4, steps = 2;
  EXPECT_EQ(declared("zero1", 4).comm_bytes(GroupKind::kData), steps * 2 * psi_bytes);  // AR + AG
  EXPECT_EQ(declared("zero2", 4).comm_bytes(GroupKind::kData), steps * 2 * psi_bytes);  // RS + AG
  EXPECT_EQ(declared("zero3", 4).comm_bytes(GroupKind::kData), steps * 3 * psi_bytes);  // 2 AG + RS
  const auto off = declared("cpu_offload", 4);
  EXPECT_EQ(off.replay_memory().peak_host_bytes, 3 * psi_bytes / 4);  // m, v, master on the host
}

TEST(StrategyDeclarations, PipelineSendsPerMicrobatch) {
  // 1F1B, p stages, m = 2p micro-batches: inner stages send and receive each micro-batch
  // twice (activation and gradient), the end stages once each way.
  const std::int64_t msg = 2 * 8 * 4;
  const int p = 4, m = 8;
  EXPECT_EQ(declared("pipeline_1f1b", p, 0).comm_bytes(GroupKind::kPipeline), 2 * m * msg);
  EXPECT_EQ(declared("pipeline_1f1b", p, 1).comm_bytes(GroupKind::kPipeline), 4 * m * msg);
  // Interleaved, v = 2: every rank also crosses the chunk boundary, so all ranks but the
  // two ends of the virtual pipeline send and receive for both chunks.
  EXPECT_EQ(declared("pipeline_interleaved", p, 1).comm_bytes(GroupKind::kPipeline), 2 * 4 * m * msg);
  EXPECT_EQ(declared("pipeline_interleaved", p, 0).comm_bytes(GroupKind::kPipeline), (4 + 2) * m * msg);
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

TEST(StrategyDeclarations, LssAndDapAndMoeGroups) {
  const auto lss = declared("lss", 8);  // sp 4, dp 2
  EXPECT_EQ(lss.comm_bytes(GroupKind::kSequence), 2 * 16 * 16 * 4 + 3 * 64 * 4);
  EXPECT_EQ(lss.comm_bytes(GroupKind::kData), 3 * 64 * 4);
  const auto dap = declared("dap", 4);
  // bias gather + its reduce-scatter, 4 all-to-alls, 2 weight gradients, the exit m and z.
  EXPECT_EQ(dap.comm_bytes(GroupKind::kDap),
            2 * 8 * 8 * 4 + 4 * (8 / 4) * 8 * 4 * 4 + 4 * 4 + 4 * 4 + 8 * 8 * 4 * 4 + 8 * 8 * 4 * 4);
  const auto moe = declared("moe_expert_parallel", 4);
  EXPECT_EQ(moe.comm_bytes(GroupKind::kExpert), 4 * 8 * 2 * 4 * 4 + 4 * 8 * 4);
}

}  // namespace
}  // namespace seqscale::comm
