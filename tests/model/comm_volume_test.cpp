// The model's per-step collectives (model/comm_volume.h), as they appear in the transformer
// StepProgram, against (a) what comm/strategies declare() emits for the same tiny model,
// plan and shape (whose measured bytes tests/comm/strategies_mpi_test.cpp checks), and
// (b) the published closed forms: Megatron-SP's volume equals plain TP's, Ulysses sends
// 4Nh/P per link per pass (ANCHORS.md s3, Jacobs et al. 2023), ZeRO-2 moves 2 Psi and
// ZeRO-3 3 Psi per step (Rajbhandari et al. 2020 s7.2). measured == declared == priced.
//
// Mapping of the strategies' tiny models onto TransformerSpec (fp32, micro_batch 1):
//   tensor_parallel  tokens 6, hidden 8: ONE MLP block per step; a model layer has two TP
//                    blocks (attention, MLP), so the layer's bytes per pass are 2x
//   megatron_sp      tokens 16, hidden 8: one AG/RS pair per pass around one block (2x per
//                    layer); its d(gamma) all-reduce (one norm weight, 4h bytes) stands for
//                    the model's per-step norm-gradient all-reduce (6h a layer + 2h final
//                    LayerNorm), compared apart from the activations
//   ulysses          seq 16, heads 8, head_dim 4 (hidden 32): one attention per layer, equal
//   zero1..3         Psi = 64 fp32 parameters, 2 steps; compared in units of Psi bytes
//   pipeline_1f1b    message [batch 2, hidden 8] fp32, 2*pp micro-batches: seq 2
#include <gtest/gtest.h>

#include <map>
#include <tuple>

#include "comm/groups.h"
#include "comm/strategies/strategy.h"
#include "comm/strategies/zero.h"
#include "model/comm_volume.h"
#include "tests/support/tiny_transformer.h"
#include "model/memory.h"
#include "model/transformer_program.h"

namespace seqscale {
namespace {

TransformerSpec tiny(std::int64_t hidden, std::int64_t heads, std::int64_t layers = 1) {
  return testing_support::tiny_transformer(hidden, heads, layers);
}

RunShape shape_of(std::int64_t seq, std::int64_t global_batch = 1) { return RunShape{seq, 1, global_batch}; }

std::vector<CommOp> comm_ops(const StepProgram& p) {
  std::vector<CommOp> out;
  for (const auto& op : p.ops)
    if (const auto* c = std::get_if<CommOp>(&op)) out.push_back(*c);
  return out;
}
// A TP step's layer ops: without the vocab-parallel embedding and loss (compared apart).
std::vector<CommOp> layer_ops(const std::vector<CommOp>& ops, const TransformerSpec& t, const Plan& p,
                              const RunShape& shape, int stage = 0) {
  return testing_support::without(ops, vocab_parallel_comm(t, p, shape, stage));
}

// Bytes per (group, phase, collective).
using Key = std::tuple<GroupKind, Phase, Collective>;
std::map<Key, std::int64_t> by_key(const std::vector<CommOp>& ops, std::int64_t skip_bytes = -1) {
  std::map<Key, std::int64_t> m;
  for (const auto& o : ops)
    if (o.bytes != skip_bytes) m[{o.group, o.phase, o.collective}] += o.bytes;
  return m;
}

std::vector<CommOp> declared(const std::string& name, const Plan& plan, int rank = 0) {
  const comm::StrategyDef* def = comm::find_strategy(name);
  EXPECT_NE(def, nullptr) << name;
  StepProgram p;
  if (def) def->declare(comm::layout_from_plan(plan), rank, p);
  return comm_ops(p);
}

Plan plan_of(int tp, int dp, int pp, SeqParallel sp = SeqParallel::kNone, int sp_degree = 1, int zero = 0) {
  Plan p;
  p.tp = tp;
  p.dp = dp;
  p.pp = pp;
  p.sp = sp;
  p.sp_degree = sp_degree;
  p.zero = zero;
  return p;
}

// Ring bus-bandwidth factor (nccl-tests PERFORMANCE.md): what crosses each link per byte.
double bus(const CommOp& o) {
  const double n = o.group_size;
  switch (o.collective) {
    case Collective::kAllReduce: return 2.0 * (n - 1) / n;
    case Collective::kAllGather:
    case Collective::kReduceScatter:
    case Collective::kAllToAll: return (n - 1) / n;
    default: return 1.0;
  }
}

TEST(CommVolume, TensorParallelMatchesStrategyPerBlock) {
  for (int tp : {2, 4, 8}) {
    const Plan plan = plan_of(tp, 1, 1);
    const auto model = by_key(layer_ops(comm_ops(build_transformer_program(tiny(8, 8), plan, shape_of(6))), tiny(8, 8),
                                        plan, shape_of(6)));
    const auto strat = by_key(declared("tensor_parallel", plan));
    ASSERT_EQ(model.size(), strat.size()) << "tp=" << tp;
    for (const auto& [k, bytes] : strat) EXPECT_EQ(model.at(k), 2 * bytes) << "tp=" << tp;  // two blocks a layer
  }
}

TEST(CommVolume, MegatronSpMatchesStrategyAndPlainTpVolume) {
  for (int tp : {2, 4, 8}) {
    const Plan plan = plan_of(tp, 1, 1, SeqParallel::kMegatron);
    // The activations' collectives, and apart the norm gradients' one all-reduce per step.
    std::vector<CommOp> ops, norms;
    for (const auto& o :
         layer_ops(comm_ops(build_transformer_program(tiny(8, 8), plan, shape_of(16))), tiny(8, 8), plan, shape_of(16)))
      (o.collective == Collective::kAllReduce ? norms : ops).push_back(o);
    ASSERT_EQ(norms.size(), 1u) << "tp=" << tp;
    EXPECT_EQ(norms[0].bytes, static_cast<std::int64_t>(kGradBytes * 8 * 8)) << "tp=" << tp;  // (6h + 2h) grads
    const auto model = by_key(ops);
    const auto strat = by_key(declared("megatron_sp", plan), 8 * 4);  // without d(gamma)
    ASSERT_EQ(model.size(), strat.size()) << "tp=" << tp;
    for (const auto& [k, bytes] : strat) EXPECT_EQ(model.at(k), 2 * bytes) << "tp=" << tp;
    // ANCHORS s3: an all-reduce is a reduce-scatter plus an all-gather, so Megatron-SP's
    // per-link volume equals plain TP's: 4 x (t-1)/t x sbh per layer per pass.
    const auto plain = layer_ops(comm_ops(build_transformer_program(tiny(8, 8), plan_of(tp, 1, 1), shape_of(16))),
                                 tiny(8, 8), plan_of(tp, 1, 1), shape_of(16));
    double sp_link = 0, tp_link = 0;
    for (const auto& o : ops) sp_link += bus(o) * static_cast<double>(o.bytes);
    for (const auto& o : plain) tp_link += bus(o) * static_cast<double>(o.bytes);
    EXPECT_DOUBLE_EQ(sp_link, tp_link);
    const double sbh_bytes = 16.0 * 8.0 * 4.0;
    EXPECT_DOUBLE_EQ(tp_link, 2.0 /*passes*/ * 4.0 * (tp - 1.0) / tp * sbh_bytes);
  }
}

TEST(CommVolume, UlyssesMatchesStrategyAnd4NhOverP) {
  for (int u : {2, 4, 8}) {
    const Plan plan = plan_of(1, 1, 1, SeqParallel::kUlysses, u);
    const auto ops = comm_ops(build_transformer_program(tiny(32, 8), plan, shape_of(16)));
    // The strategy is the attention core alone (no weights): its all-to-alls only. The
    // model also reduces the replicated weights' gradients over the dp x sp ranks.
    std::vector<CommOp> seq_ops;
    for (const auto& o : ops)
      if (o.group == GroupKind::kSequence) seq_ops.push_back(o);
    EXPECT_EQ(by_key(seq_ops), by_key(declared("ulysses", plan))) << "P=" << u;
    EXPECT_EQ(seq_ops.size(), 8u);
    // Jacobs et al. 2023 (ANCHORS s3): 4 all-to-alls of N h / P elements sent per rank per pass.
    std::int64_t fwd = 0;
    for (const auto& o : seq_ops)
      if (o.phase == Phase::kForward) fwd += o.bytes;
    EXPECT_EQ(fwd, 4 * 16 * 32 * 4 / u);
  }
}

TEST(CommVolume, ZeroStagesMatchStrategyPerParameterByte) {
  const auto t = tiny(8, 8);
  const RunShape shape = shape_of(6, 4);  // m = 1 on each of 4 dp ranks
  for (int stage = 0; stage <= 3; ++stage) {
    const Plan plan = plan_of(1, 4, 1, SeqParallel::kNone, 1, stage);
    const double psi_bytes = kParamBytes * transformer_params(t, shape.seq);
    std::map<Key, double> model;
    for (const auto& o : transformer_step_comm(t, plan, shape, 0)) model[{o.group, o.phase, o.collective}] += o.bytes / psi_bytes;
    double link = 0;
    for (const auto& o : transformer_step_comm(t, plan, shape, 0)) link += bus(o) * o.bytes / psi_bytes;
    // ZeRO paper s7.2 (ring, per link, in units of (N-1)/N Psi): DP 2, ZeRO-3 3; this repo's
    // stage 1 all-reduces then gathers (3), stage 2 reduce-scatters then gathers (2).
    const double per_link[] = {2.0, 3.0, 2.0, 3.0};
    EXPECT_NEAR(link / (3.0 / 4.0), per_link[stage], 1e-9) << "zero=" << stage;
    if (stage == 0) continue;
    std::map<Key, double> strat;
    const double s_psi = static_cast<double>(comm::ZeroModel::kParams) * 4.0;
    for (const auto& o : declared("zero" + std::to_string(stage), plan))
      strat[{o.group, o.phase, o.collective}] += o.bytes / s_psi / comm::ZeroModel::kSteps;
    ASSERT_EQ(model.size(), strat.size()) << "zero=" << stage;
    for (const auto& [k, v] : strat) EXPECT_NEAR(model.at(k), v, 1e-6) << "zero=" << stage;
  }
}

TEST(CommVolume, PipelineMatchesStrategyOnEveryStage) {
  for (int pp : {2, 4, 8}) {
    const Plan plan = plan_of(1, 1, pp);
    const auto t = tiny(8, 8, pp);
    const RunShape shape = shape_of(2, 2 * pp);  // the strategy's 2*pp micro-batches
    const auto layout = comm::layout_from_plan(plan);
    for (int stage = 0; stage < pp; ++stage) {
      const int rank = layout.rank_of(comm::RankCoord{0, 0, 0, stage});
      const auto model = transformer_step_comm(t, plan, shape, stage);
      const auto strat = declared("pipeline_1f1b", plan, rank);
      EXPECT_EQ(by_key(model), by_key(strat)) << "pp=" << pp << " stage=" << stage;
      EXPECT_EQ(model.size(), strat.size()) << "pp=" << pp << " stage=" << stage;
    }
  }
}

// Megatron's vocab-parallel embedding and loss: the strategy's ops for the same tiny model
// (tokens 16, hidden 8, vocab 64), plain TP and Megatron-SP, on a one-stage step; with
// pp > 1 the embedding's ops sit on the first stage and the loss's on the last.
TEST(CommVolume, VocabParallelMatchesStrategy) {
  for (int tp : {2, 4, 8}) {
    for (bool sp : {false, true}) {
      const Plan plan = plan_of(tp, 1, 1, sp ? SeqParallel::kMegatron : SeqParallel::kNone);
      const auto model = vocab_parallel_comm(tiny(8, 8), plan, shape_of(16), 0);
      EXPECT_EQ(by_key(model), by_key(declared(sp ? "vocab_parallel_sp" : "vocab_parallel", plan))) << tp << sp;
      // They are part of the step the estimate prices.
      const auto step = transformer_step_comm(tiny(8, 8), plan, shape_of(16), 0);
      EXPECT_EQ(step.size(), layer_ops(step, tiny(8, 8), plan, shape_of(16)).size() + model.size());
    }
  }
  const Plan piped = plan_of(2, 1, 2);
  const auto t = tiny(8, 8, 2);
  const auto first = by_key(vocab_parallel_comm(t, piped, shape_of(16, 2), 0));
  const auto last = by_key(vocab_parallel_comm(t, piped, shape_of(16, 2), 1));
  EXPECT_EQ((first.at({GroupKind::kTensor, Phase::kForward, Collective::kAllReduce})), 2 * 16 * 8 * 4);  // 2 micro-batches
  EXPECT_EQ(first.count({GroupKind::kTensor, Phase::kBackward, Collective::kAllReduce}), 0u);
  EXPECT_EQ((last.at({GroupKind::kTensor, Phase::kForward, Collective::kAllReduce})), 2 * 3 * 16 * 4);
  EXPECT_EQ((last.at({GroupKind::kTensor, Phase::kBackward, Collective::kAllReduce})), 2 * 16 * 8 * 4);
  EXPECT_TRUE(vocab_parallel_comm(t, plan_of(1, 1, 1), shape_of(16), 0).empty());
}

// FastFold's last EvoformerBlock and ExtraMSABlock each all-gather their m and z whole.
TEST(CommVolume, EvoformerStacksEndWithTheirMAndZGathered) {
  EvoformerSpec e;
  e.n_seq = 8, e.n_extra = 16, e.n_res = 12, e.c_m = 4, e.c_e = 3, e.c_z = 3;
  e.msa = {2, 2}, e.extra_msa = {2, 1}, e.triangle = {1, 3};
  e.blocks = 2, e.extra_blocks = 1;
  e.dtype = DType::kFp32;
  Plan p;
  p.dap = 4, p.dp = 1;
  std::map<std::int64_t, int> gathers;  // forward all-gathers by size
  for (const auto& o : evoformer_step_comm(e, p, RunShape{12, 1, 1}))
    if (o.phase == Phase::kForward && o.collective == Collective::kAllGather) gathers[o.bytes] += 1;
  EXPECT_EQ(gathers[8 * 12 * 4 * 4], 1);   // main m
  EXPECT_EQ(gathers[16 * 12 * 3 * 4], 1);  // extra-MSA m
  EXPECT_EQ(gathers[12 * 12 * 3 * 4], 2);  // z after each stack
}

TEST(CommVolume, RecomputeAndCheckpointsReCommunicate) {
  const auto t = tiny(8, 8, 2);
  Plan plan = plan_of(2, 1, 1);
  const auto base = by_key(layer_ops(transformer_step_comm(t, plan, shape_of(16), 0), t, plan, shape_of(16)));
  plan.recompute = Recompute::kFull;
  auto full = by_key(transformer_step_comm(t, plan, shape_of(16), 0));
  EXPECT_EQ((full[{GroupKind::kTensor, Phase::kRecompute, Collective::kAllReduce}]),
            (base.at({GroupKind::kTensor, Phase::kForward, Collective::kAllReduce})));
  plan.ckpt_partitioned = true;
  full = by_key(transformer_step_comm(t, plan, shape_of(16), 0));
  EXPECT_EQ((full[{GroupKind::kTensor, Phase::kRecompute, Collective::kAllGather}]), 2 * 16 * 8 * 4);  // one a layer
}

}  // namespace
}  // namespace seqscale
