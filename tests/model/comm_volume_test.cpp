// The model's per-step collectives (model/comm_volume.h): transformer_step_comm is the
// strategies' emitters (workloads/parallel/) composed in step order, op for op, and the
// composed step has the published closed forms: Megatron-SP's bus volume equals plain
// TP's, Ulysses sends 4Nh/P per link per pass (ANCHORS.md s3, Jacobs et al. 2023), ZeRO
// moves 2 Psi (3 Psi for ZeRO-3) per link per step (Rajbhandari et al. 2020 s7.2), the
// pipeline's boundary goes in Megatron's scatter/gather form (Narayanan et al. 2021
// s4.1). That the strategies run what the emitters emit is tests/consistency/.
#include <gtest/gtest.h>

#include "model/comm_volume.h"
#include "model/memory.h"
#include "model/transformer_program.h"
#include "tests/consistency/consistency.h"
#include "workloads/parallel/data_parallel_comm.h"
#include "workloads/parallel/lss_comm.h"
#include "workloads/parallel/tensor_parallel_comm.h"
#include "workloads/parallel/ulysses_comm.h"
#include "workloads/parallel/vocab_parallel_comm.h"

namespace seqscale {
namespace {

using consistency::by_key;
using consistency::first_difference;
using consistency::tiny_transformer;

RunShape shape_of(std::int64_t seq, std::int64_t global_batch = 1) { return RunShape{seq, 1, global_batch}; }

Plan plan_of(int tp, int dp, int pp, SeqParallel sp = SeqParallel::kNone, int sp_degree = 1, int zero = 0) {
  Plan p;
  p.tp = tp, p.dp = dp, p.pp = pp, p.sp = sp, p.sp_degree = sp_degree, p.zero = zero;
  return p;
}

// One step of a 2-layer Megatron-SP model, one micro-batch on one stage, written out
// emitter by emitter in the order the header gives.
TEST(StepComm, IsThePerLayerEmitterOpsInOrder) {
  const TransformerSpec t = tiny_transformer(8, 2, 2);
  const Plan p = plan_of(2, 2, 1, SeqParallel::kMegatron, 1, 1);
  const RunShape s = shape_of(16, 2);
  CommOps want;
  vocab_embedding(want, t, p, s, Phase::kForward);
  for (int layer = 0; layer < 2; ++layer)
    for (int block = 0; block < 2; ++block) tensor_parallel_block(want, t, p, s, Phase::kForward);  // attention, MLP
  vocab_loss(want, t, p, s, Phase::kForward);
  vocab_loss(want, t, p, s, Phase::kBackward);
  for (int layer = 0; layer < 2; ++layer)
    for (int block = 0; block < 2; ++block) tensor_parallel_block(want, t, p, s, Phase::kBackward);  // MLP, attention
  vocab_embedding(want, t, p, s, Phase::kBackward);
  sequence_parallel_grads(want, p, 6.0 * 8 * 2 + 2.0 * 8, kGradBytes);  // 2 LayerNorms + 2 biases a layer, final norm
  data_parallel_grads(want, ReplicatedStates{transformer_params(t, 16) / 2, 2, kParamBytes, kGradBytes}, 1);
  const auto got = transformer_step_comm(t, p, s, 0);
  EXPECT_EQ(first_difference(got, want), "");
  // The transformer StepProgram carries the same ops.
  EXPECT_EQ(first_difference(consistency::comm_ops(build_transformer_program(t, p, s)), got), "");
}

// Ulysses around attention (its 4 all-to-alls inside the TP block) and ZeRO-3's gathers
// before each pass, the recompute pass before each layer's backward.
TEST(StepComm, UlyssesZero3AndRecomputeInOrder) {
  const TransformerSpec t = tiny_transformer(32, 8, 1);
  Plan p = plan_of(2, 2, 1, SeqParallel::kUlysses, 2, 3);
  p.recompute = Recompute::kFull;
  const RunShape s = shape_of(16, 2);
  const ReplicatedStates weights{transformer_params(t, 16) / 2, 4, kParamBytes, kGradBytes};  // dp x Ulysses
  CommOps want;
  auto layer = [&](Phase ph) {
    auto attention = [&] { tensor_parallel_block(want, t, p, s, ph, [&] { ulysses_attention(want, t, p, s, ph); }); };
    if (ph == Phase::kBackward) tensor_parallel_block(want, t, p, s, ph);  // MLP first
    attention();
    if (ph != Phase::kBackward) tensor_parallel_block(want, t, p, s, ph);
  };
  zero3_param_gather(want, weights, 3, Phase::kForward);
  vocab_embedding(want, t, p, s, Phase::kForward);
  layer(Phase::kForward);
  vocab_loss(want, t, p, s, Phase::kForward);
  zero3_param_gather(want, weights, 3, Phase::kBackward);
  zero3_param_gather(want, weights, 3, Phase::kRecompute);
  vocab_loss(want, t, p, s, Phase::kBackward);
  layer(Phase::kRecompute);
  layer(Phase::kBackward);
  vocab_embedding(want, t, p, s, Phase::kBackward);
  data_parallel_grads(want, weights, 3);
  EXPECT_EQ(first_difference(transformer_step_comm(t, p, s, 0), want), "");
}

// ANCHORS s3: an all-reduce is a reduce-scatter plus an all-gather, so Megatron-SP's
// activation collectives put on each link what plain TP's all-reduces do. One layer,
// 16 tokens of width 8 (A bytes): plain TP all-reduces A 6 times (2 blocks x 2 passes, the
// embedding, the loss's backward), Megatron-SP gathers or reduce-scatters it 12 times, and
// its backward gathers each block's input again for the weight gradient (Korthikanti et
// al. 2022 s4.2.2): 2 more all-gathers, the only overlappable activation ops.
TEST(StepComm, MegatronSpHasPlainTpsBusVolumePlusTheBackwardRegathers) {
  const double a = 16 * 8 * 4;
  for (int tp : {2, 4, 8}) {
    auto activation_ops = [&](SeqParallel sp) {
      const auto ops = transformer_step_comm(tiny_transformer(8, 8), plan_of(tp, 1, 1, sp), shape_of(16), 0);
      return consistency::only(ops, [&](const CommOp& o) { return o.bytes == a; });
    };
    const auto plain = activation_ops(SeqParallel::kNone), megatron = activation_ops(SeqParallel::kMegatron);
    EXPECT_DOUBLE_EQ(consistency::link_bytes(plain), 6 * 2.0 * (tp - 1.0) / tp * a) << tp;
    const auto regathers = consistency::only(megatron, [](const CommOp& o) { return o.overlappable; });
    ASSERT_EQ(regathers.size(), 2u) << tp;
    for (const CommOp& o : regathers) {
      EXPECT_EQ(o.collective, Collective::kAllGather);
      EXPECT_EQ(o.phase, Phase::kBackward);
    }
    EXPECT_DOUBLE_EQ(consistency::link_bytes(megatron),
                     consistency::link_bytes(plain) + consistency::link_bytes(regathers)) << tp;
  }
}

TEST(StepComm, UlyssesSends4NhOverPPerPass) {
  for (int u : {2, 4, 8}) {
    const auto ops = transformer_step_comm(tiny_transformer(32, 8), plan_of(1, 1, 1, SeqParallel::kUlysses, u),
                                           shape_of(16), 0);
    const auto seq = consistency::only(ops, [](const CommOp& o) { return o.group == GroupKind::kSequence; });
    EXPECT_EQ(seq.size(), 8u);
    // Jacobs et al. 2023: 4 all-to-alls of N h / P elements sent per rank per pass.
    EXPECT_EQ((by_key(seq).at({GroupKind::kSequence, Phase::kForward, Collective::kAllToAll})), 4 * 16 * 32 * 4 / u);
  }
}

TEST(StepComm, ZeroStagesPerLinkVolume) {
  const TransformerSpec t = tiny_transformer(8, 8);
  const RunShape shape = shape_of(6, 4);  // m = 1 on each of 4 dp ranks
  const double psi_bytes = kParamBytes * transformer_params(t, shape.seq);
  // ZeRO paper s7.2 (ring, per link, in units of (N-1)/N Psi): DP 2, ZeRO-3 3; this repo's
  // stage 1 all-reduces then gathers (3), stage 2 reduce-scatters then gathers (2).
  const double per_link[] = {2.0, 3.0, 2.0, 3.0};
  for (int stage = 0; stage <= 3; ++stage) {
    const auto ops = transformer_step_comm(t, plan_of(1, 4, 1, SeqParallel::kNone, 1, stage), shape, 0);
    EXPECT_NEAR(consistency::link_bytes(ops) / psi_bytes / (3.0 / 4.0), per_link[stage], 1e-6) << "zero=" << stage;
  }
}

// Megatron's vocab-parallel embedding sits on the first stage, the loss on the last.
TEST(StepComm, VocabParallelAtThePipelinesEnds) {
  const Plan piped = plan_of(2, 1, 2);
  const TransformerSpec t = tiny_transformer(8, 8, 2);
  auto tensor_ars = [&](int stage) {
    return by_key(consistency::only(transformer_step_comm(t, piped, shape_of(16, 2), stage), [](const CommOp& o) {
      return o.group == GroupKind::kTensor && o.collective == Collective::kAllReduce;
    }));
  };
  const std::int64_t layer_ar = 16 * 8 * 4;
  const auto first = tensor_ars(0), last = tensor_ars(1);
  // Stage 0: per micro-batch 2 blocks' ARs each pass, and the embedding's forward AR.
  EXPECT_EQ((first.at({GroupKind::kTensor, Phase::kForward, Collective::kAllReduce})), 2 * (2 + 1) * layer_ar);
  EXPECT_EQ((first.at({GroupKind::kTensor, Phase::kBackward, Collective::kAllReduce})), 2 * 2 * layer_ar);
  // Last stage: the loss's 3 fp32 per token forward, d(norm output) backward.
  EXPECT_EQ((last.at({GroupKind::kTensor, Phase::kForward, Collective::kAllReduce})), 2 * (2 * layer_ar + 3 * 16 * 4));
  EXPECT_EQ((last.at({GroupKind::kTensor, Phase::kBackward, Collective::kAllReduce})), 2 * 3 * layer_ar);
  EXPECT_TRUE(transformer_step_comm(t, plan_of(1, 1, 1), shape_of(16), 0).empty());
}

// Narayanan et al. 2021 s4.1: with tp > 1 each TP rank sends 1/tp of the boundary and
// the receiver all-gathers it over NVLink; Megatron-SP's boundary is already a 1/tp
// sequence shard. p2p_overlap=1 marks the interleaved schedule's transfers overlappable.
TEST(StepComm, PipelineBoundaryInScatterGatherForm) {
  const TransformerSpec t = tiny_transformer(8, 8, 4);
  const std::int64_t boundary = 16 * 8 * 4;  // [s, b, h] fp32
  for (SeqParallel sp : {SeqParallel::kNone, SeqParallel::kMegatron}) {
    const Plan p = plan_of(4, 1, 2, sp);
    const auto ops = transformer_step_comm(t, p, shape_of(16, 4), 1);  // last stage: receives activations
    int receives = 0, gathers = 0;
    for (std::size_t i = 0; i < ops.size(); ++i) {
      if (ops[i].group == GroupKind::kTensor && ops[i].collective == Collective::kAllGather && ops[i].phase == Phase::kForward)
        ++gathers;
      if (ops[i].group != GroupKind::kPipeline) continue;
      EXPECT_EQ(ops[i].bytes, boundary / 4);
      EXPECT_FALSE(ops[i].overlappable);  // older Megatron waits on every transfer
      if (ops[i].phase != Phase::kForward) continue;
      ++receives;
      if (sp == SeqParallel::kNone) {  // the boundary rebuilt right after its receive
        ASSERT_LT(i + 1, ops.size());
        EXPECT_EQ(ops[i + 1].group, GroupKind::kTensor);
        EXPECT_EQ(ops[i + 1].collective, Collective::kAllGather);
        EXPECT_EQ(ops[i + 1].bytes, boundary);
      }
    }
    EXPECT_EQ(receives, 4);  // one a micro-batch
    // Per micro-batch: the boundary's gather (plain TP), or Megatron-SP's own gathers only
    // (2 layers x 2 blocks, the final norm's output) and none for the boundary.
    EXPECT_EQ(gathers, sp == SeqParallel::kNone ? 4 : 4 * (2 * 2 + 1));
  }
  Plan overlap = plan_of(2, 1, 2);
  overlap.schedule = PipeSchedule::kInterleaved, overlap.vpp = 2, overlap.p2p_overlap = true;
  for (const CommOp& o : transformer_step_comm(t, overlap, shape_of(16, 4), 0))
    EXPECT_EQ(o.overlappable, o.group == GroupKind::kPipeline || o.group == GroupKind::kData) << comm::describe(o);
}

TEST(StepComm, P2pOverlapIsAnInterleavedPlanKey) {
  const ModelSpec m = load_model("genslm-25b");
  Plan p = parse_plan("pp=2,schedule=interleaved,vpp=2,p2p_overlap=1");
  EXPECT_TRUE(p.p2p_overlap);
  EXPECT_EQ(check_plan(p, m, 2, RunShape{64, 1, 4}), "");
  EXPECT_NE(plan_to_string(p).find(",p2p_overlap=1"), std::string::npos) << plan_to_string(p);
  EXPECT_TRUE(parse_plan(plan_to_string(p)).p2p_overlap);
  Plan one_f_one_b = parse_plan("pp=2,p2p_overlap=1");
  EXPECT_NE(check_plan(one_f_one_b, m, 2, RunShape{64, 1, 4}).find("p2p_overlap=1 needs schedule=interleaved"),
            std::string::npos);
  EXPECT_EQ(plan_to_string(parse_plan("pp=2")).find("p2p_overlap"), std::string::npos);  // default 0, unprinted
}

// FastFold's last EvoformerBlock and ExtraMSABlock each all-gather their m and z whole.
TEST(StepComm, EvoformerStacksEndWithTheirMAndZGathered) {
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

TEST(StepComm, EvoformerDapFullBlockCounts) {
  // AlphaFold2 dims (ANCHORS s1): per block 6 all-to-alls and 6 all-gathers forward
  // (FastFold's fastnn EvoformerBlock), mirrored backward, re-run under recompute.
  EvoformerSpec e;
  e.n_seq = 128, e.n_res = 256, e.c_m = 256, e.c_z = 128, e.c_e = 64;
  e.msa = {8, 32}, e.triangle = {4, 32}, e.extra_msa = {8, 8};
  e.blocks = 2;
  e.dtype = DType::kBf16;
  Plan p;
  p.dap = 4, p.dp = 1;
  std::map<std::tuple<Phase, Collective>, int> count;
  for (const auto& o : evoformer_step_comm(e, p, RunShape{256, 1, 1})) count[{o.phase, o.collective}] += 1;
  EXPECT_EQ((count[{Phase::kForward, Collective::kAllToAll}]), 12);
  EXPECT_EQ((count[{Phase::kForward, Collective::kAllGather}]), 12 + 2);  // + the stack's exit m and z
  EXPECT_EQ((count[{Phase::kBackward, Collective::kAllToAll}]), 12);
  EXPECT_EQ((count[{Phase::kBackward, Collective::kReduceScatter}]), 12);
  EXPECT_EQ((count[{Phase::kBackward, Collective::kAllReduce}]), 1);
  p.recompute = Recompute::kFull;
  count.clear();
  bool found = false;
  for (const auto& o : evoformer_step_comm(e, p, RunShape{256, 1, 1})) {
    count[{o.phase, o.collective}] += 1;
    // One MSA all-to-all sends the rank's shard: N_seq N_res c_m / dap bf16 elements.
    found |= o.collective == Collective::kAllToAll && o.bytes == 128 * 256 * 256 * 2 / 4;
  }
  EXPECT_EQ((count[{Phase::kRecompute, Collective::kAllToAll}]), 12);
  EXPECT_TRUE(found);
}

TEST(StepComm, RecomputeAndCheckpointsReCommunicate) {
  const TransformerSpec t = tiny_transformer(8, 8, 2);
  Plan plan = plan_of(2, 1, 1);
  plan.recompute = Recompute::kFull;
  auto full = by_key(transformer_step_comm(t, plan, shape_of(16), 0));
  EXPECT_EQ((full[{GroupKind::kTensor, Phase::kRecompute, Collective::kAllReduce}]), 2 * 2 * 16 * 8 * 4);  // 2 blocks a layer
  plan.ckpt_partitioned = true;
  full = by_key(transformer_step_comm(t, plan, shape_of(16), 0));
  EXPECT_EQ((full[{GroupKind::kTensor, Phase::kRecompute, Collective::kAllGather}]), 2 * 16 * 8 * 4);  // one a layer
}

}  // namespace
}  // namespace seqscale
