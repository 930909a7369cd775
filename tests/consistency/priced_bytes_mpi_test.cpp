// measured == priced for the pipeline (issue 13 s5): the cost model's step
// (transformer_step_comm, which walks the stage's schedule and brackets each pass with its
// boundary transfers) priced for the very step the pipeline strategies run
// (comm/strategies/pipeline.h describes it once), against the ops those strategies
// executed on the MPI backend, in order, on every stage. From 4 ranks the layout has tp 2,
// so the boundary goes in Megatron's scatter/gather form: 1/tp of it on the pipeline link,
// then an all-gather over the TP group after each receive. The model's step also holds
// the TP layers' and the vocab-parallel all-reduces there (the toy layers are not
// tensor-parallel): they are left out of the comparison, and with Megatron-SP off they
// are the only other TP ops. The other strategies' priced == emitted holds by
// construction: the model composes the same emitters (tests/model/comm_volume_test.cpp).
#include <gtest/gtest.h>

#include "comm/mpi/mpi_communicator.h"
#include "comm/strategies/pipeline.h"
#include "model/comm_volume.h"
#include "tests/consistency/consistency.h"

namespace seqscale::comm {
namespace {

// The boundary transfers and their gathers: everything on kPipeline, and on kTensor the
// all-gathers (plain TP reduces its layers and its loss with all-reduces).
bool boundary_op(const CommOp& o) {
  return o.group == GroupKind::kPipeline || (o.group == GroupKind::kTensor && o.collective == Collective::kAllGather);
}

void check_pipeline(const char* name, int chunks, bool p2p_overlap) {
  const StrategyDef* def = find_strategy(name);
  ASSERT_NE(def, nullptr);
  const RankLayout layout(def->dims(MpiSession::world_size()));
  auto mpi = make_mpi_communicator(layout);
  std::vector<CommOp> executed;
  ASSERT_NO_THROW(run_checked(*def, *mpi, host_strategy_math(), layout, &executed));
  PipelineStep step = pipeline_step(layout, mpi->rank(), chunks);
  step.plan.p2p_overlap = p2p_overlap;
  const auto priced = consistency::only(transformer_step_comm(step.spec, step.plan, step.shape, step.stage), boundary_op);
  EXPECT_EQ(consistency::first_difference(priced, executed), "")
      << name << " on " << layout.describe() << ", stage " << step.stage << (p2p_overlap ? ", p2p_overlap=1" : "");
  // Narayanan et al. 2021 s2.2.2: per micro-batch a chunk moves 4 messages (activation
  // and gradient, in and out), less the first virtual stage's forward receive and
  // backward send and the last one's forward send and backward receive.
  const int pp = step.plan.pp, m = 2 * pp, tp = step.plan.tp;
  const bool edge = step.stage == 0 || step.stage == pp - 1;
  const int messages = m * (4 * chunks - (edge ? 2 : 0));
  EXPECT_EQ(consistency::only(executed, [](const CommOp& o) { return o.group == GroupKind::kPipeline; }).size(),
            static_cast<std::size_t>(messages));
  std::int64_t pipe_bytes = 0;
  for (const CommOp& o : executed)
    if (o.group == GroupKind::kPipeline) pipe_bytes += o.bytes;
  EXPECT_EQ(pipe_bytes, std::int64_t{messages} * 2 * 8 * 4 / tp);  // [2, 8] fp32, 1/tp of it a TP rank
  // Every priced op the schedule can hide is a transfer, and only with p2p_overlap.
  for (const CommOp& o : priced)
    EXPECT_EQ(o.overlappable, p2p_overlap && o.group == GroupKind::kPipeline) << describe(o);
}

TEST(PricedBytes, OneFOneBStepIsWhatPipeline1F1BRuns) { check_pipeline("pipeline_1f1b", 1, false); }

TEST(PricedBytes, InterleavedStepIsWhatPipelineInterleavedRuns) {
  for (bool overlap : {false, true}) check_pipeline("pipeline_interleaved", 2, overlap);
}

}  // namespace
}  // namespace seqscale::comm
