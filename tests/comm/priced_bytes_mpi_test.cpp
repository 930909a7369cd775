// measured == declared == priced (issue 5): each strategy runs on the MPI backend at the
// world size mpirun gives, and the bytes each group actually sent (the backend's
// counters) equal the bytes the cost model's per-step ops (model/comm_volume.h, the ops
// estimate() prices and build_transformer_program() emits) give for the same tiny model,
// plan and shape. strategies_mpi_test.cpp checks measured == declared; this closes the
// loop to the model. Each strategy's tiny model maps onto the model's description as
// follows (fp32, micro_batch 1; tests/model/comm_volume_test.cpp documents the first six):
//   tensor_parallel  tokens 6, hidden 8; one TP block per step = half a model layer
//   megatron_sp      tokens 16, hidden 8; half a layer's activations; its d(gamma)
//                    all-reduce (one fp32 norm weight, 4h bytes) is the model's per-step
//                    norm-gradient all-reduce, which covers a layer's 6h parameters
//   ulysses          seq 16, heads 8, hidden 32; one attention = one layer's all-to-alls
//   zero1..3         Psi = 64 fp32 parameters, 2 steps; compared per Psi byte per step
//   cpu_offload      the same model under ZeRO-2 with the optimizer on the host
//   pipeline_1f1b    [2, 8] fp32 messages, 2*pp micro-batches, on this rank's stage
//   pipeline_interleaved  the same with vpp = 2 model chunks per stage
//   dap              N_seq 8, N_res 8, c_m 4, one pair-bias head: the MSA half of an
//                    Evoformer block (no outer product mean, no pair stack: their dims 0)
//                    as the stack's last, so with the exit all-gathers of m and z,
//                    plus its two weight-gradient all-reduces (c + c_z fp32), which the
//                    model prices as the whole parameter set's gradient
//   lss              seq 16, k and v 8 wide, one layer; gradients of 3 8x8 fp32 weights
//   moe_expert_parallel  8 experts, top-2, hidden 4, 6 tokens a rank, fp32 router grads
//   vocab_parallel(_sp)  tokens 16, hidden 8, vocab 64: the embedding and loss ops of a
//                    TP (Megatron-SP) step, which the first two compare without
#include <gtest/gtest.h>

#include <map>
#include <tuple>

#include "comm/mpi/mpi_communicator.h"
#include "comm/strategies/strategy.h"
#include "comm/strategies/zero.h"
#include "model/comm_volume.h"
#include "tests/support/tiny_transformer.h"
#include "model/memory.h"

namespace seqscale::comm {
namespace {

TransformerSpec tiny(std::int64_t hidden, std::int64_t heads, std::int64_t layers = 1) {
  return testing_support::tiny_transformer(hidden, heads, layers);
}

double priced(const std::vector<CommOp>& ops, GroupKind g) {
  double b = 0;
  for (const auto& o : ops)
    if (o.group == g) b += static_cast<double>(o.bytes);
  return b;
}

// Bytes per (group, phase, collective): the shape of a step's ops, order aside.
using Key = std::tuple<GroupKind, Phase, Collective>;
std::map<Key, std::int64_t> by_key(const std::vector<CommOp>& ops) {
  std::map<Key, std::int64_t> m;
  for (const auto& o : ops) m[{o.group, o.phase, o.collective}] += o.bytes;
  return m;
}

// The CommOps the strategy's declare() emits on this rank.
std::vector<CommOp> declared(const std::string& name, const RankLayout& layout) {
  const StrategyDef* def = find_strategy(name);
  EXPECT_NE(def, nullptr) << name;
  StepProgram p;
  if (def) def->declare(layout, MpiSession::world_rank(), p);
  std::vector<CommOp> out;
  for (const auto& op : p.ops)
    if (const auto* c = std::get_if<CommOp>(&op)) out.push_back(*c);
  return out;
}

// Runs the strategy, returns the bytes each group sent on this rank.
std::map<GroupKind, double> measured_groups(const std::string& name, const RankLayout& layout) {
  const StrategyDef* def = find_strategy(name);
  EXPECT_NE(def, nullptr) << name;
  if (!def) return {};
  auto mpi = make_mpi_communicator(layout);
  const auto before = mpi->snapshot();
  def->run(*mpi, host_strategy_math(), layout);
  std::map<GroupKind, double> out;
  for (int k = 0; k < kNumGroupKinds; ++k) {
    const auto g = static_cast<GroupKind>(k);
    out[g] = static_cast<double>(bytes_since(before, *mpi, g));
  }
  return out;
}
double measured(const std::string& name, const RankLayout& layout, GroupKind g) {
  return measured_groups(name, layout)[g];
}

class PricedBytes : public ::testing::Test {
 protected:
  int n = MpiSession::world_size();
};

TEST_F(PricedBytes, TensorParallel) {
  Plan p;
  p.tp = n, p.dp = 1;
  const RunShape shape{6, 1, 1};
  const auto ops = transformer_step_comm(tiny(8, 8), p, shape, 0);
  const double model = priced(testing_support::without(ops, vocab_parallel_comm(tiny(8, 8), p, shape, 0)), GroupKind::kTensor);
  EXPECT_EQ(measured("tensor_parallel", RankLayout(ParallelDims{.tp = n}), GroupKind::kTensor), model / 2);
}

// The embedding and loss of a TP step: plain and with Megatron-SP (16 tokens, hidden 8).
TEST_F(PricedBytes, VocabParallelEmbeddingAndLoss) {
  for (bool sp : {false, true}) {
    Plan p;
    p.tp = n, p.dp = 1, p.sp = sp ? SeqParallel::kMegatron : SeqParallel::kNone;
    const auto ops = vocab_parallel_comm(tiny(8, 8), p, RunShape{16, 1, 1}, 0);
    const std::string name = sp ? "vocab_parallel_sp" : "vocab_parallel";
    const RankLayout layout(ParallelDims{.tp = n});
    EXPECT_EQ(measured(name, layout, GroupKind::kTensor), priced(ops, GroupKind::kTensor)) << name;
    EXPECT_EQ(by_key(ops), by_key(declared(name, layout))) << name;
  }
}

TEST_F(PricedBytes, MegatronSp) {
  Plan p;
  p.tp = n, p.dp = 1, p.sp = SeqParallel::kMegatron;
  const auto ops = testing_support::without(transformer_step_comm(tiny(8, 8), p, RunShape{16, 1, 1}, 0),
                                            vocab_parallel_comm(tiny(8, 8), p, RunShape{16, 1, 1}, 0));
  // The activations' all-gathers and reduce-scatters, and the one norm-gradient
  // all-reduce: 2 LayerNorms + 2 row-parallel biases (6h) + the final LayerNorm (2h).
  std::vector<CommOp> acts, norms;
  for (const auto& o : ops) (o.collective == Collective::kAllReduce ? norms : acts).push_back(o);
  ASSERT_EQ(norms.size(), 1u);
  EXPECT_EQ(norms[0].bytes, static_cast<std::int64_t>(kGradBytes * 8 * 8));
  EXPECT_EQ(measured("megatron_sp", RankLayout(ParallelDims{.tp = n}), GroupKind::kTensor),
            priced(acts, GroupKind::kTensor) / 2 + 8 * 4);
}

TEST_F(PricedBytes, Ulysses) {
  Plan p;
  p.dp = 1, p.sp = SeqParallel::kUlysses, p.sp_degree = n;
  const double model = priced(transformer_step_comm(tiny(32, 8), p, RunShape{16, 1, 1}, 0), GroupKind::kSequence);
  EXPECT_EQ(measured("ulysses", RankLayout(ParallelDims{.sp = n}), GroupKind::kSequence), model);
}

TEST_F(PricedBytes, ZeroStages) {
  for (int stage = 1; stage <= 3; ++stage) {
    Plan p;
    p.dp = n, p.zero = stage;
    const RunShape shape{6, 1, n};  // one micro-batch per rank, as the strategy's step
    const auto t = tiny(8, 8);
    const double model = priced(transformer_step_comm(t, p, shape, 0), GroupKind::kData) /
                         (kParamBytes * transformer_params(t, shape.seq));
    const double got = measured("zero" + std::to_string(stage), RankLayout(ParallelDims{.dp = n}), GroupKind::kData) /
                       (ZeroModel::kParams * 4.0) / ZeroModel::kSteps;
    EXPECT_NEAR(got, model, 1e-9) << "zero=" << stage;
  }
}

TEST_F(PricedBytes, CpuOffloadIsZero2OnTheWire) {
  // ZeRO-Offload (Ren et al. 2021) moves the optimizer to the host; the DP group still
  // sees ZeRO-2's reduce-scatter and all-gather (the host copies are not collectives).
  Plan p;
  p.dp = n, p.zero = 2, p.offload = Offload::kOptimizer;
  const RunShape shape{6, 1, n};
  const auto t = tiny(8, 8);
  const double model = priced(transformer_step_comm(t, p, shape, 0), GroupKind::kData) /
                       (kParamBytes * transformer_params(t, shape.seq));
  const double got = measured("cpu_offload", RankLayout(ParallelDims{.dp = n}), GroupKind::kData) /
                     (ZeroModel::kParams * 4.0) / ZeroModel::kSteps;
  EXPECT_NEAR(got, model, 1e-9);
}

TEST_F(PricedBytes, Pipeline1F1B) {
  Plan p;
  p.pp = n, p.dp = 1;
  const RankLayout layout(ParallelDims{.pp = n});
  const int stage = layout.coord(MpiSession::world_rank()).pp;
  const double model = priced(transformer_step_comm(tiny(8, 8, n), p, RunShape{2, 1, 2 * n}, stage), GroupKind::kPipeline);
  EXPECT_EQ(measured("pipeline_1f1b", layout, GroupKind::kPipeline), model) << "stage " << stage;
}

TEST_F(PricedBytes, PipelineInterleaved) {
  // Narayanan et al. 2021 s2.2.2: v chunks per stage, v times the point-to-point messages.
  Plan p;
  p.pp = n, p.dp = 1, p.vpp = 2, p.schedule = PipeSchedule::kInterleaved;
  const RankLayout layout(ParallelDims{.pp = n});
  const int stage = layout.coord(MpiSession::world_rank()).pp;
  const auto ops = transformer_step_comm(tiny(8, 8, 2 * n), p, RunShape{2, 1, 2 * n}, stage);
  EXPECT_EQ(measured("pipeline_interleaved", layout, GroupKind::kPipeline), priced(ops, GroupKind::kPipeline))
      << "stage " << stage;
  EXPECT_EQ(by_key(ops), by_key(declared("pipeline_interleaved", layout))) << "stage " << stage;
  // Per micro-batch: 4 messages a chunk, less the first virtual stage's forward receive
  // and backward send and the last one's forward send and backward receive.
  const bool edge = stage == 0 || stage == n - 1;
  EXPECT_EQ(priced(ops, GroupKind::kPipeline), 2.0 * n * (4 * 2 - (edge ? 2 : 0)) * 2 * 8 * 4) << "stage " << stage;
}

EvoformerSpec dap_tiny() {
  EvoformerSpec e;
  e.n_seq = 8, e.n_res = 8, e.c_m = 4;
  e.c_z = 0, e.c_hidden_opm = 0, e.c_hidden_tri_mul = 0;  // no pair stack, no outer product mean
  e.msa = {1, 4};                                          // one pair-bias channel
  e.blocks = 1;
  e.dtype = DType::kFp32;
  return e;
}

TEST_F(PricedBytes, EvoformerDap) {
  Plan p;
  p.dap = n, p.dp = 1;
  const EvoformerSpec e = dap_tiny();
  const auto ops = evoformer_step_comm(e, p, RunShape{8, 1, 1});
  // The model's one weight-gradient all-reduce is the whole parameter set's; the strategy
  // reduces its two weights (c = 4 and c_z = 4 fp32) one by one.
  std::vector<CommOp> acts, grads;
  for (const auto& o : ops) (o.collective == Collective::kAllReduce ? grads : acts).push_back(o);
  ASSERT_EQ(grads.size(), 1u);
  EXPECT_EQ(grads[0].bytes, static_cast<std::int64_t>(kGradBytes * evoformer_params(e)));
  const double strategy_grads = (4 + 4) * 4;
  // The exit all-gather of z: the strategy's z has 4 channels, the spec's c_z is 0 (it has
  // no pair stack), so the model's exit gathers m only.
  const std::int64_t z_exit = 8 * 8 * 4 * 4;
  const RankLayout layout(ParallelDims{.sp = n});
  EXPECT_EQ(measured("dap", layout, GroupKind::kDap), priced(acts, GroupKind::kDap) + strategy_grads + z_exit);
  std::vector<CommOp> declared_acts;
  for (const auto& o : declared("dap", layout))
    if (o.collective != Collective::kAllReduce) declared_acts.push_back(o);
  auto want = by_key(acts);
  want[{GroupKind::kDap, Phase::kForward, Collective::kAllGather}] += z_exit;
  EXPECT_EQ(want, by_key(declared_acts));
  EXPECT_EQ(want.at({GroupKind::kDap, Phase::kForward, Collective::kAllGather}),
            8 * 8 * 4 /* pair bias */ + 8 * 8 * 4 * 4 /* m */ + z_exit);
}

TEST_F(PricedBytes, EvoformerDapFullBlockCounts) {
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
  for (const auto& o : evoformer_step_comm(e, p, RunShape{256, 1, 1})) count[{o.phase, o.collective}] += 1;
  EXPECT_EQ((count[{Phase::kRecompute, Collective::kAllToAll}]), 12);
  // One MSA all-to-all sends the rank's shard: N_seq N_res c_m / dap bf16 elements.
  bool found = false;
  for (const auto& o : evoformer_step_comm(e, p, RunShape{256, 1, 1}))
    found |= o.collective == Collective::kAllToAll && o.bytes == 128 * 256 * 256 * 2 / 4;
  EXPECT_TRUE(found);
}

TEST_F(PricedBytes, LssSegmentedAttention) {
  const RankLayout layout(find_strategy("lss")->dims(n));
  LssAttention a;
  a.seq = 16, a.kv_width = 8;
  a.sp = layout.dims().sp, a.dp = layout.dims().dp;
  a.dtype = DType::kFp32;
  a.weight_grad_bytes = 3 * 8 * 8 * 4;  // [dWq | dWk | dWv], fp32
  const auto ops = lss_attention_comm(a);
  auto got = measured_groups("lss", layout);
  EXPECT_EQ(got[GroupKind::kSequence], priced(ops, GroupKind::kSequence));
  // The strategy averages over the DP group even when it is one rank (a copy); the model
  // issues no collective on a one-rank group.
  EXPECT_EQ(got[GroupKind::kData], a.dp > 1 ? priced(ops, GroupKind::kData) : a.weight_grad_bytes);
  EXPECT_EQ((by_key(ops)[{GroupKind::kSequence, Phase::kForward, Collective::kAllGather}]), 16 * 2 * 8 * 4);
}

TEST_F(PricedBytes, MoeExpertParallel) {
  MoeLayers m;
  m.experts = 8, m.top_k = 2, m.hidden = 4, m.tokens = 6, m.ep = n;
  m.dtype = DType::kFp32;
  m.router_grad_bytes_per_param = 4;
  EXPECT_EQ(moe_capacity(m), 2);  // ceil(1.25 * 6 * 2 / 8)
  const auto ops = moe_comm(m);
  const RankLayout layout(ParallelDims{.dp = n, .ep = n});
  EXPECT_EQ(measured("moe_expert_parallel", layout, GroupKind::kExpert), priced(ops, GroupKind::kExpert));
  EXPECT_EQ(by_key(ops), by_key(declared("moe_expert_parallel", layout)));
}

}  // namespace
}  // namespace seqscale::comm
