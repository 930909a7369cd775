// The plan search places TP with the cluster's gpus_per_node (workloads/placement.h), not a
// fixed 8 GPUs a node (issue 13 s2): dgx-h100.json has 8 GPUs a node, h100.json 1.
#include <gtest/gtest.h>

#include <algorithm>

#include "model/search.h"
#include "workloads/specs.h"

namespace seqscale {
namespace {

std::int32_t max_tp(const std::vector<Plan>& plans) {
  std::int32_t tp = 0;
  for (const Plan& p : plans) tp = std::max(tp, p.tp);
  return tp;
}

TEST(Search, TensorParallelDegreesFollowGpusPerNode) {
  const ModelSpec m = load_model("gpt-30b");
  const ClusterSpec dgx = load_cluster("dgx-h100"), single = load_cluster("h100");
  const Preset& mlm = find_preset("megatron-lm");  // TP inside a node, always Megatron-SP
  EXPECT_EQ(max_tp(enumerate_plans(mlm, m, dgx, 16)), 8);
  // With one GPU a node no TP group of two stays inside a node, and Megatron-SP needs TP.
  EXPECT_TRUE(enumerate_plans(mlm, m, single, 16).empty());
  Preset inside = mlm;
  inside.sp = {SeqParallel::kNone, SeqParallel::kMegatron};
  const std::vector<Plan> plans = enumerate_plans(inside, m, single, 16);
  ASSERT_FALSE(plans.empty());
  EXPECT_EQ(max_tp(plans), 1);
  // A preset that lets TP cross nodes keeps every degree (the old framework's TP=32 runs).
  EXPECT_EQ(max_tp(enumerate_plans(find_preset("megatron-deepspeed-old"), m, single, 32)), 32);
}

// The fastest plan follows: TP over NVLink on DGX nodes, none where it would have to cross.
TEST(Search, BestPlanKeepsTensorParallelInsideANode) {
  const ModelSpec m = load_model("gpt-30b");
  Preset inside = find_preset("megatron-lm");
  inside.sp = {SeqParallel::kNone, SeqParallel::kMegatron};
  const RunShape shape{8192, 1, 0};
  const Calibration cal = default_calibration();
  const BestPlan dgx = best_plan(m, load_cluster("dgx-h100"), 16, inside, shape, cal);
  const BestPlan single = best_plan(m, load_cluster("h100"), 16, inside, shape, cal);
  ASSERT_TRUE(dgx.found);
  ASSERT_TRUE(single.found);
  EXPECT_GT(dgx.estimate.plan.tp, 1);
  EXPECT_EQ(single.estimate.plan.tp, 1);
}

}  // namespace
}  // namespace seqscale
