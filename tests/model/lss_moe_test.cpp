// LSS segmented sequence parallelism (plan sp=lss) and MoE expert parallelism (plan ep,
// model "moe") in the cost model: the plan keys, the per-step collectives (the
// workloads/parallel lss_comm.h and moe_comm.h emitters, composed per layer and step),
// the memory terms, the StepProgram replay, and the estimate's breakdown.
#include <gtest/gtest.h>

#include "model/comm_volume.h"
#include "model/estimate.h"
#include "model/memory.h"
#include "model/search.h"
#include "model/transformer_program.h"
#include "tests/consistency/consistency.h"
#include "workloads/config_error.h"

namespace seqscale {
namespace {

using consistency::by_key;
using consistency::only;

// 8 experts of width 4, top-2 (comm/strategies/moe.cc's).
TransformerSpec tiny_moe(std::int64_t layers = 1, std::int64_t every = 1) {
  TransformerSpec t = consistency::tiny_transformer(4, 1, layers);
  t.moe_experts = 8, t.moe_top_k = 2, t.moe_every = every, t.moe_capacity_factor = 1.25;
  return t;
}

TEST(Lss, PlanKeyDerivesItsDegreeAndRoundTrips) {
  const ModelSpec m = load_model("genslm-25b");
  Plan p = parse_plan("sp=lss,dp=2");
  validate_plan(p, m, 16, RunShape{65536, 1, 0});
  EXPECT_EQ(p.sp_degree, 8);
  EXPECT_EQ(p.seq_degree(), 8);
  EXPECT_EQ(p.zero_shards(), 2);  // states replicated over the segments
  EXPECT_NE(plan_to_string(p).find("sp=lss,sp_degree=8"), std::string::npos) << plan_to_string(p);
  Plan q = parse_plan(plan_to_string(p));
  EXPECT_EQ(q.sp, SeqParallel::kLss);
  EXPECT_EQ(q.sp_degree, 8);
  Plan odd = parse_plan("sp=lss,sp_degree=3");
  EXPECT_NE(check_plan(odd, m, 16, RunShape{65536, 1, 0}), "");
  Plan uneven = parse_plan("sp=lss,sp_degree=16");
  EXPECT_NE(check_plan(uneven, m, 16, RunShape{65537, 1, 0}).find("not divisible"), std::string::npos);
}

// Per layer the model gathers [k | v] of every token forward and reduce-scatters its
// gradient backward (s*b*2*kv_width*es each); per step it averages the gradients over
// the segments and then over dp (double gradient averaging, Wang et al. 2023).
TEST(Lss, PerLayerKvGatherAndDoubleGradientAveraging) {
  for (int sp : {2, 4}) {
    Plan p;
    p.sp = SeqParallel::kLss, p.sp_degree = sp, p.dp = 2;
    const TransformerSpec t = consistency::tiny_transformer(8, 1, 3);
    const RunShape shape{16, 1, p.dp};
    const auto model = transformer_step_comm(t, p, shape, 0);
    const auto seq = by_key(only(model, [](const CommOp& o) { return o.group == GroupKind::kSequence; }));
    const std::int64_t kv = 16 * 2 * 8 * 4;
    EXPECT_EQ((seq.at({GroupKind::kSequence, Phase::kForward, Collective::kAllGather})), 3 * kv) << sp;
    EXPECT_EQ((seq.at({GroupKind::kSequence, Phase::kBackward, Collective::kReduceScatter})), 3 * kv) << sp;
    const auto grads = std::llround(kGradBytes * transformer_params(t, 16));
    EXPECT_EQ((seq.at({GroupKind::kSequence, Phase::kBackward, Collective::kAllReduce})), grads) << sp;
    EXPECT_EQ((by_key(model).at({GroupKind::kData, Phase::kBackward, Collective::kAllReduce})), grads) << sp;
  }
}

TEST(Lss, SegmentsShrinkActivationsAndTheEstimatePricesTheGather) {
  const ModelSpec m = load_model("genslm-25b");
  const ClusterSpec c = load_cluster("dgx-a100-80g");
  const RunShape shape{65536, 1, 0};
  Plan none = parse_plan("recompute=full,zero=3"), lss = parse_plan("sp=lss,sp_degree=8,recompute=full,zero=3");
  validate_plan(none, m, 8, shape);
  validate_plan(lss, m, 8, shape);
  const MemoryBreakdown a = transformer_memory(m.transformer(), c, none, shape);
  const MemoryBreakdown b = transformer_memory(m.transformer(), c, lss, shape);
  EXPECT_NEAR(b[MemTerm::kActivations], a[MemTerm::kActivations] / 8, 1.0);
  EXPECT_LT(b[MemTerm::kLogits] + b[MemTerm::kBackwardWorkingSet], a[MemTerm::kLogits] + a[MemTerm::kBackwardWorkingSet]);
  // ZeRO-3 over dp only: every segment holds dp's shard of the states.
  EXPECT_NEAR(b[MemTerm::kOptimizer], a[MemTerm::kOptimizer] * 8, 1e3);
  const Estimate e = estimate(m, c, lss, 8, shape, default_calibration());
  EXPECT_GT(e.time.seq_comm, 0);
  // The segment gradient average (hidden behind the last backward here, so not exposed).
  const auto seq_avg = by_key(transformer_step_comm(m.transformer(), e.plan, e.shape, 0))
      [{GroupKind::kSequence, Phase::kBackward, Collective::kAllReduce}];
  EXPECT_EQ(seq_avg, std::llround(kGradBytes * transformer_params(m.transformer(), shape.seq)));
  EXPECT_NEAR(e.time.step, e.time.compute + e.time.tp_comm + e.time.seq_comm + e.time.ep_comm + e.time.pp_comm +
                               e.time.bubble + e.time.dp_comm + e.time.zero3_comm + e.time.optimizer + e.time.offload,
              1e-12);
}

TEST(Moe, ModelFileAndPlanErrorsNameTheField) {
  const ModelSpec m = load_model("tiny-moe");
  ASSERT_TRUE(m.transformer().is_moe());
  EXPECT_EQ(m.transformer().moe_layers(), 2);
  const RunShape shape{64, 1, 0};
  Plan ok = parse_plan("ep=4");
  EXPECT_EQ(check_plan(ok, m, 8, shape), "");
  Plan not_dp = parse_plan("ep=4,dp=2,tp=4");
  EXPECT_NE(check_plan(not_dp, m, 8, shape).find("ep=4 must divide dp=2"), std::string::npos);
  Plan not_experts = parse_plan("ep=16");
  EXPECT_NE(check_plan(not_experts, m, 16, shape).find("experts"), std::string::npos);
  Plan dense = parse_plan("ep=2");
  EXPECT_NE(check_plan(dense, load_model("tiny-gpt"), 2, shape).find("ep applies"), std::string::npos);
  EXPECT_THROW(parse_plan("ep=0"), ConfigError);
}

// Per MoE layer and micro-batch: dispatch, combine and their two mirrors, each the whole
// padded [E][C][H] buffer (C = ceil(1.25 * 6 * 2 / 8) = 2).
TEST(Moe, FourPaddedAllToAllsPerMoeLayerAndMicroBatch) {
  for (int ep : {2, 4, 8}) {
    Plan p;
    p.dp = ep, p.ep = ep;
    const TransformerSpec t = tiny_moe(4, 2);  // 2 MoE layers
    const RunShape shape{6, 1, 2 * ep};       // 2 micro-batches a replica
    EXPECT_EQ(moe_capacity(moe_layers_of(t, p, shape)), 2);
    const auto got = by_key(only(transformer_step_comm(t, p, shape, 0),
                                 [](const CommOp& o) { return o.group == GroupKind::kExpert; }));
    const std::int64_t a2a = 8 * 2 * 4 * 4;
    const std::map<consistency::Key, std::int64_t> want{
        {{GroupKind::kExpert, Phase::kForward, Collective::kAllToAll}, 2 * 2 * 2 * a2a},  // 2 layers x 2 mb x 2
        {{GroupKind::kExpert, Phase::kBackward, Collective::kAllToAll}, 2 * 2 * 2 * a2a}};
    EXPECT_EQ(got, want) << ep;
  }
}

TEST(Moe, ExpertsSplitOverEpAndTheirStatesOverTheirDataGroup) {
  const ModelSpec m = load_model("tiny-moe");
  const TransformerSpec& t = m.transformer();
  const double h = 64, ffn = 256;
  EXPECT_DOUBLE_EQ(moe_expert_params(t), 2.0 * 8 * (2 * h * ffn + ffn + h));
  TransformerSpec dense = t;
  dense.moe_experts = 0;
  EXPECT_DOUBLE_EQ(transformer_params(t, 64) - transformer_params(dense, 64),
                   2.0 * (7 * (2 * h * ffn + ffn + h) + h * 8));
  const RunShape shape{64, 1, 0};
  ClusterSpec bare;
  double prev = 1e300;
  for (int ep : {1, 2, 4, 8}) {
    Plan p = parse_plan("zero=1");
    p.ep = ep;
    validate_plan(p, m, 8, shape);
    const double params = transformer_memory(t, bare, p, shape)[MemTerm::kParameters];
    const double experts_rank = moe_expert_params(t) / ep;
    EXPECT_NEAR(params, kParamBytes * (transformer_params(t, 64) - moe_expert_params(t) + experts_rank), 1.0) << ep;
    EXPECT_LT(params, prev);
    prev = params;
  }
  // ZeRO-1: the experts' optimizer states are sharded over the dp/ep ranks that hold them.
  Plan p = parse_plan("zero=1,ep=8");
  validate_plan(p, m, 8, shape);
  EXPECT_NEAR(transformer_memory(t, bare, p, shape)[MemTerm::kOptimizer],
              kOptimizerBytes * ((transformer_params(t, 64) - moe_expert_params(t)) / 8 + moe_expert_params(t) / 8), 1.0);
}

// (The program's replay against the closed form for these plans: model_test's
// StepProgram.ClosedFormEqualsReplay.)
TEST(Moe, TheEstimateAndTheProgramCarryTheAllToAlls) {
  const ModelSpec m = load_model("tiny-moe");
  const ClusterSpec c = load_cluster("dgx-a100-80g");
  for (const char* text : {"ep=4,zero=1", "ep=8,zero=3,recompute=full", "ep=2,tp=2,sp=megatron", "sp=lss,sp_degree=2,ep=4"}) {
    Plan p = parse_plan(text);
    const RunShape shape{64, 1, 0};
    validate_plan(p, m, 8, shape);
    const Estimate e = estimate(m, c, p, 8, shape, default_calibration());
    EXPECT_GT(e.time.ep_comm, 0) << text;
    EXPECT_GT(build_transformer_program(m.transformer(), p, shape).comm_bytes(GroupKind::kExpert), 0) << text;
  }
  // More slots per expert (capacity factor) cost more FLOPs and bytes.
  TransformerSpec roomy = m.transformer();
  roomy.moe_capacity_factor = 2.0;
  Plan p = parse_plan("ep=4");
  validate_plan(p, m, 8, RunShape{64, 1, 0});
  EXPECT_GT(layer_gemm_flops(roomy, p, RunShape{64, 1, 0}), layer_gemm_flops(m.transformer(), p, RunShape{64, 1, 0}));
}

TEST(Moe, SearchTriesExpertParallelism) {
  const ModelSpec m = load_model("tiny-moe");
  int with_ep = 0;
  const ClusterSpec c = load_cluster("dgx-a100-80g");
  for (const Plan& p : enumerate_plans(find_preset("seqscale-best"), m, c, 8)) with_ep += p.ep > 1;
  EXPECT_GT(with_ep, 0);
  const MaxSeqResult r = max_sequence(m, c, 8, find_preset("seqscale-best"), 1024);
  EXPECT_GT(r.max_seq, 0);
}

}  // namespace
}  // namespace seqscale
