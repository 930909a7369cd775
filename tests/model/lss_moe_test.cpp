// LSS segmented sequence parallelism (plan sp=lss) and MoE expert parallelism (plan ep,
// model "moe") in the cost model: the plan keys, the per-step collectives against the
// strategies' (comm/strategies/lss.cc, moe.cc) and the stand-alone lss_attention_comm /
// moe_comm, the memory terms, the StepProgram replay, and the estimate's breakdown.
#include <gtest/gtest.h>

#include <map>
#include <tuple>

#include "comm/groups.h"
#include "comm/strategies/strategy.h"
#include "model/comm_volume.h"
#include "model/estimate.h"
#include "model/memory.h"
#include "model/search.h"
#include "model/transformer_program.h"
#include "tests/support/tiny_transformer.h"
#include "workloads/config_error.h"

namespace seqscale {
namespace {

using Key = std::tuple<GroupKind, Phase, Collective>;
std::map<Key, std::int64_t> by_key(const std::vector<CommOp>& ops) {
  std::map<Key, std::int64_t> m;
  for (const auto& o : ops) m[{o.group, o.phase, o.collective}] += o.bytes;
  return m;
}
std::vector<CommOp> only(const std::vector<CommOp>& ops, GroupKind g, Collective skip = Collective::kSendRecv) {
  std::vector<CommOp> out;
  for (const auto& o : ops)
    if (o.group == g && o.collective != skip) out.push_back(o);
  return out;
}
std::vector<CommOp> declared(const std::string& name, const comm::RankLayout& layout) {
  StepProgram p;
  comm::find_strategy(name)->declare(layout, 0, p);
  std::vector<CommOp> out;
  for (const auto& op : p.ops)
    if (const auto* c = std::get_if<CommOp>(&op)) out.push_back(*c);
  return out;
}

// The tiny MoE transformer of comm/strategies/moe.cc: 8 experts of width 4, top-2, 6 tokens.
TransformerSpec tiny_moe(std::int64_t layers = 1, std::int64_t every = 1) {
  TransformerSpec t = testing_support::tiny_transformer(4, 1, layers);
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

// Per layer the model gathers [k | v] forward and reduce-scatters it backward, as the
// strategy does for its one layer; per step it averages the gradients over the segments
// and then over dp (double gradient averaging) -- exactly lss_attention_comm's ops.
TEST(Lss, CollectivesAreTheStrategysAndLssAttentionComms) {
  for (int world : {2, 4, 8}) {
    const comm::RankLayout layout(comm::find_strategy("lss")->dims(world));
    Plan p;
    p.sp = SeqParallel::kLss, p.sp_degree = layout.dims().sp, p.dp = layout.dims().dp;
    const TransformerSpec t = testing_support::tiny_transformer(8, 1, 3);
    const RunShape shape{16, 1, p.dp};
    const auto model = transformer_step_comm(t, p, shape, 0);
    // Activations: 3 layers of the strategy's one.
    const auto strat = by_key(only(declared("lss", layout), GroupKind::kSequence, Collective::kAllReduce));
    const auto act = by_key(only(model, GroupKind::kSequence, Collective::kAllReduce));
    ASSERT_EQ(act.size(), strat.size()) << world;
    for (const auto& [k, bytes] : strat) EXPECT_EQ(act.at(k), 3 * bytes) << world;
    // The whole step against the stand-alone function.
    LssAttention a;
    a.seq = 16, a.kv_width = 8, a.layers = 3, a.sp = p.sp_degree, a.dp = p.dp, a.dtype = DType::kFp32;
    a.weight_grad_bytes = kGradBytes * transformer_params(t, 16);
    EXPECT_EQ(by_key(model), by_key(lss_attention_comm(a))) << world;
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
  EXPECT_GT(e.time.sp_comm, 0);
  // The segment gradient average (hidden behind the last backward here, so not exposed).
  const auto seq_avg = by_key(transformer_step_comm(m.transformer(), e.plan, e.shape, 0))
      [{GroupKind::kSequence, Phase::kBackward, Collective::kAllReduce}];
  EXPECT_EQ(seq_avg, std::llround(kGradBytes * transformer_params(m.transformer(), shape.seq)));
  EXPECT_NEAR(e.time.step, e.time.compute + e.time.tp_comm + e.time.sp_comm + e.time.ep_comm + e.time.pp_comm +
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
// padded [E][C][H] buffer -- the strategy's four all-to-alls and moe_comm's.
TEST(Moe, AllToAllsAreTheStrategysAndMoeComms) {
  for (int ep : {2, 4, 8}) {
    Plan p;
    p.dp = ep, p.ep = ep;
    const TransformerSpec t = tiny_moe(4, 2);  // 2 MoE layers
    const RunShape shape{6, 1, 2 * ep};       // 2 micro-batches a replica
    const auto model = only(transformer_step_comm(t, p, shape, 0), GroupKind::kExpert);
    const comm::RankLayout layout(comm::ParallelDims{.dp = ep, .ep = ep});
    const auto strat = by_key(only(declared("moe_expert_parallel", layout), GroupKind::kExpert, Collective::kAllReduce));
    const auto got = by_key(model);
    ASSERT_EQ(got.size(), strat.size()) << ep;
    for (const auto& [k, bytes] : strat) EXPECT_EQ(got.at(k), 2 * 2 * bytes) << ep;  // 2 layers x 2 micro-batches
    MoeLayers ml = moe_layers_of(t, p, shape);
    EXPECT_EQ(moe_capacity(ml), 2);
    EXPECT_EQ(got, by_key(only(moe_comm(ml), GroupKind::kExpert, Collective::kAllReduce))) << ep;
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
  for (const Plan& p : enumerate_plans(find_preset("seqscale-best"), m, 8)) with_ep += p.ep > 1;
  EXPECT_GT(with_ep, 0);
  const MaxSeqResult r = max_sequence(m, load_cluster("dgx-a100-80g"), 8, find_preset("seqscale-best"), 1024);
  EXPECT_GT(r.max_seq, 0);
}

}  // namespace
}  // namespace seqscale
