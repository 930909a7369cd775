// The GPT layer and stack (layers/transformer_layer/*_def.h) on several ranks: the fp32
// executor over the MPI Communicator, for tp, tp + Megatron-SP and Ulysses plans at tiny
// random dimensions (hidden not a power of two, GQA, every MLP / norm / residual /
// attention / recompute path). On every rank:
//   numbers   its gradients (and the stack's loss) equal the one-rank double reference's,
//             on the shard the rank holds (reduced over the ranks that hold partial sums)
//   memory    the executor's measured peak equals the replay of the program the recorder
//             records for the same plan and TP rank, byte for byte
//   bytes     the collectives the Communicator recorded equal, op by op, the CommOps of
//             that program, which are the emitters' (workloads/parallel/); and those
//             equal what the model prices: per layer the emitters composed as
//             model/comm_volume.cc composes them, per stack step transformer_step_comm
//             itself (less the data-parallel reduction, which is the step's)
// Plans by world size: 2 ranks tp=2, tp=2 sp=megatron, ulysses 2; 4 ranks tp=4, tp=4
// sp=megatron, tp=2 x ulysses 2, ulysses 4; 8 ranks tp=2 x ulysses 4.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "comm/mpi/mpi_communicator.h"
#include "layers/transformer_layer/transformer_layer_cpu.h"
#include "layers/transformer_layer/transformer_layer_program.h"
#include "model/comm_volume.h"
#include "model/memory.h"
#include "tests/consistency/consistency.h"
#include "tests/support/seed.h"

namespace seqscale::comm {
namespace {

// The executor's collectives on a Communicator (layers/ does not include comm/).
class CommunicatorCollectives final : public HostCollectives {
 public:
  explicit CommunicatorCollectives(Communicator& c) : c_(c) {}
  int group_rank(GroupKind g) const override { return c_.group_rank(g); }
  int group_size(GroupKind g) const override { return c_.group_size(g); }
  void set_phase(Phase p) override { c_.set_phase(p); }
  void run(const CommOp& op, const float* send, float* recv, std::int64_t send_count, std::int64_t recv_count,
           Reduction reduction) override {
    switch (op.collective) {
      case Collective::kAllReduce:
        c_.all_reduce(op.group, send, recv, send_count, DType::kFp32,
                      reduction == Reduction::kMax ? ReduceOp::kMax : ReduceOp::kSum);
        return;
      case Collective::kAllGather: c_.all_gather(op.group, send, recv, send_count, DType::kFp32); return;
      case Collective::kReduceScatter: c_.reduce_scatter(op.group, send, recv, recv_count, DType::kFp32); return;
      case Collective::kAllToAll: c_.all_to_all(op.group, send, recv, send_count / op.group_size, DType::kFp32); return;
      default: break;
    }
    throw std::logic_error("no host collective " + std::string(collective_name(op.collective)));
  }

 private:
  Communicator& c_;
};

struct MultiRankPlan {
  int tp = 1;
  SeqParallel sp = SeqParallel::kNone;
  int ulysses = 1;
  std::string describe() const {
    return "tp=" + std::to_string(tp) + (sp == SeqParallel::kMegatron ? " sp=megatron" : "") +
           (ulysses > 1 ? " ulysses=" + std::to_string(ulysses) : "");
  }
};

std::vector<MultiRankPlan> plans_for(int world) {
  if (world == 2) return {{2, SeqParallel::kNone, 1}, {2, SeqParallel::kMegatron, 1}, {1, SeqParallel::kUlysses, 2}};
  if (world == 4) {
    return {{4, SeqParallel::kNone, 1}, {4, SeqParallel::kMegatron, 1}, {2, SeqParallel::kUlysses, 2},
            {1, SeqParallel::kUlysses, 4}};
  }
  if (world == 8) return {{2, SeqParallel::kUlysses, 4}};
  return {};
}

// Random tiny dimensions the plan can shard: heads and kv_heads multiples of tp x ulysses
// (GQA half the time), head sizes 3..7 (hidden never a power of two), the sequence a
// multiple of its shards. The one-rank model is the same with tp = 1, sp = none.
TransformerLayerDims random_layer(const MultiRankPlan& p, std::mt19937_64& rng) {
  auto pick = [&](std::int64_t lo, std::int64_t hi) { return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng); };
  TransformerLayerDims d;
  d.tp = p.tp;
  d.sp = p.sp;
  d.sp_degree = p.ulysses;
  const std::int64_t shards = std::int64_t{p.tp} * p.ulysses;
  d.kv_heads = shards;
  d.heads = d.kv_heads * pick(1, 2);
  d.head_dim = pick(3, 7);
  d.hidden = d.heads * d.head_dim;
  if ((d.hidden & (d.hidden - 1)) == 0) d.hidden = d.heads * ++d.head_dim;  // 4 x 4, 8 x 4: 5 instead
  d.ffn = p.tp * pick(3, 6);
  d.batch = pick(1, 2);
  d.seq = std::int64_t{p.ulysses} * (d.megatron_sp() ? p.tp : 1) * pick(1, 3);
  if (d.seq < 3) d.seq *= 2;
  d.rotary_dims = pick(0, 1) ? 2 * pick(0, d.head_dim / 2) : 0;
  d.mlp = static_cast<MlpKind>(pick(0, 1));
  d.norm = static_cast<NormKind>(pick(0, 1));
  d.parallel_residual = pick(0, 1);
  d.attn = static_cast<AttentionImpl>(pick(0, 1));
  d.recompute = static_cast<Recompute>(pick(0, 2));
  return d;
}

TransformerLayerDims one_rank(TransformerLayerDims d) {
  d.tp = 1;
  d.sp = SeqParallel::kNone;
  d.sp_degree = 1;
  return d;
}

std::string describe(const TransformerLayerDims& d) {
  char buf[200];
  std::snprintf(buf, sizeof buf, "b%lld s%lld h%lld H%lld kv%lld ffn%lld rot%lld %s %s %s %s %s",
                static_cast<long long>(d.batch), static_cast<long long>(d.seq), static_cast<long long>(d.hidden),
                static_cast<long long>(d.heads), static_cast<long long>(d.kv_heads), static_cast<long long>(d.ffn),
                static_cast<long long>(d.rotary_dims), std::string(attn_name(d.attn)).c_str(),
                std::string(recompute_name(d.recompute)).c_str(), d.parallel_residual ? "parallel" : "sequential",
                d.mlp == MlpKind::kGelu ? "gelu" : "swiglu", d.norm == NormKind::kLayerNorm ? "layernorm" : "rmsnorm");
  return buf;
}

// Rows of the whole [b, s] activation a rank holds, in its order: a Ulysses rank its
// s/P positions of every sequence, a Megatron-SP rank a contiguous block of those.
std::vector<std::int64_t> rank_rows(const TransformerLayerDims& d, int tp_rank, int seq_rank, bool residual_stream) {
  const std::int64_t sl = d.seq / d.ulysses();
  std::vector<std::int64_t> rows;
  for (std::int64_t b = 0; b < d.batch; ++b)
    for (std::int64_t i = 0; i < sl; ++i) rows.push_back(b * d.seq + seq_rank * sl + i);
  if (!residual_stream || !d.megatron_sp()) return rows;
  const std::int64_t ro = d.rows_out();
  return {rows.begin() + tp_rank * ro, rows.begin() + (tp_rank + 1) * ro};
}

template <typename V>
std::vector<V> pick_rows(const std::vector<V>& whole, const std::vector<std::int64_t>& rows, std::int64_t width) {
  std::vector<V> out;
  for (std::int64_t r : rows) out.insert(out.end(), whole.begin() + r * width, whole.begin() + (r + 1) * width);
  return out;
}

std::vector<double> widen(const float* p, std::int64_t n) { return {p, p + n}; }

// Sums a gradient over a group (recording off: the test's own traffic is not the layer's).
std::vector<double> sum_over(Communicator& c, GroupKind g, const std::vector<double>& v) {
  if (c.group_size(g) == 1) return v;
  std::vector<float> f(v.begin(), v.end());
  c.all_reduce(g, f.data(), f.data(), static_cast<std::int64_t>(f.size()), DType::kFp32);
  return {f.begin(), f.end()};
}

// The model prices gradients at kGradBytes (ZeRO's 2 B accounting); the program keeps
// fp32 gradients (Megatron's main_grad; layers/transformer_layer/README.md NOTE 4), so its
// Megatron-SP per-step gradient all-reduce (the one overlappable TP all-reduce) moves
// 4 / kGradBytes times the model's bytes.
std::vector<CommOp> with_fp32_grads(std::vector<CommOp> ops) {
  for (CommOp& o : ops)
    if (o.group == GroupKind::kTensor && o.collective == Collective::kAllReduce && o.overlappable)
      o.bytes = static_cast<std::int64_t>(std::llround(static_cast<double>(o.bytes) * 4.0 / kGradBytes));
  return ops;
}

// One seed for all ranks: rank 0 draws (and prints) it.
std::uint64_t shared_seed(Communicator& c) {
  std::int64_t seed = c.rank() == 0 ? static_cast<std::int64_t>(testing_support::test_seed()) : 0;
  c.broadcast(GroupKind::kWorld, &seed, 1, DType::kInt64, 0);
  return static_cast<std::uint64_t>(seed);
}

struct Rank {
  RankLayout layout;
  std::unique_ptr<Communicator> comm;
  CommunicatorCollectives collectives;
  int tp_rank, seq_rank;
  explicit Rank(const MultiRankPlan& p)
      : layout(ParallelDims{.tp = p.tp, .seq = p.ulysses}),
        comm(make_mpi_communicator(layout)),
        collectives(*comm),
        tp_rank(comm->group_rank(GroupKind::kTensor)),
        seq_rank(comm->group_rank(GroupKind::kSequence)) {}
};

// What the model composes for one layer (model/comm_volume.cc TransformerStep::layer):
// forward, the recompute pass (recompute=full), backward; its attention block is the TP
// collectives around Ulysses'.
CommOps priced_layer(const TransformerLayerDims& d) {
  const LayerEmitterArgs e = LayerEmitterArgs::from(d, DType::kFp32);
  CommOps ops;
  auto pass = [&](Phase ph) {
    auto attention = [&] {
      tensor_parallel_block(ops, e.spec, e.plan, e.shape, ph, [&] { ulysses_attention(ops, e.spec, e.plan, e.shape, ph); });
    };
    auto mlp = [&] { tensor_parallel_block(ops, e.spec, e.plan, e.shape, ph); };
    if (ph == Phase::kBackward) {
      mlp();
      attention();
    } else {
      attention();
      mlp();
    }
  };
  pass(Phase::kForward);
  if (d.recompute == Recompute::kFull) pass(Phase::kRecompute);
  pass(Phase::kBackward);
  return ops;
}

TEST(TransformerLayerMpi, GradientsPeakAndBytesMatchTheOneRankReferenceAndTheModel) {
  const auto plans = plans_for(MpiSession::world_size());
  if (plans.empty()) GTEST_SKIP() << "no plan for " << MpiSession::world_size() << " ranks";
  for (const MultiRankPlan& plan : plans) {
    Rank rank(plan);
    std::mt19937_64 rng(shared_seed(*rank.comm));
    for (int c = 0; c < 3; ++c) {
      const TransformerLayerDims d = random_layer(plan, rng);
      const MaskKind mask = d.attn == AttentionImpl::kMaterialized ? static_cast<MaskKind>(rng() % 3) : MaskKind::kNone;
      SCOPED_TRACE(plan.describe() + " " + describe(d) + " mask=" + std::string(mask_name(mask)) + " rank " +
                   std::to_string(rank.comm->rank()));
      const TransformerLayerDims d1 = one_rank(d);
      const TransformerLayerInputs in = make_transformer_layer_inputs(d1, rng());
      const TransformerLayerRun want = run_transformer_layer_ref(d1, mask, in);

      TransformerExecOps ops({}, {}, &rank.collectives);
      TransformerLayerStep<TransformerExecOps> step(ops, d, mask);
      const auto rows = rank_rows(d, rank.tp_rank, rank.seq_rank, /*residual_stream=*/true);
      const auto x = pick_rows(in.x, rows, d.hidden), dy = pick_rows(in.dy, rows, d.hidden);
      std::copy(x.begin(), x.end(), step.x.p);
      std::copy(dy.begin(), dy.end(), step.dy.p);
      auto& params = step.layer.params();
      const auto& splits = step.layer.param_splits();
      for (std::size_t i = 0; i < params.size(); ++i) {
        const auto w = tp_shard(in.params[i], splits[i], d.tp, rank.tp_rank);
        ASSERT_EQ(static_cast<std::int64_t>(w.size()), params[i]->w.n) << "param " << i;
        std::copy(w.begin(), w.end(), params[i]->w.p);
      }
      std::vector<CommOp> executed;
      rank.comm->record_into(&executed);
      step.run();
      rank.comm->record_into(nullptr);

      // Memory: the measured peak is the recorded program's, on every rank.
      const StepProgram prog = build_transformer_layer_program(d, mask, DType::kFp32, rank.tp_rank);
      EXPECT_EQ(ops.peak_bytes(), prog.replay_memory().peak_device_bytes);
      // Bytes: executed == the program's CommOps == the model's composition of the emitters.
      const auto recorded = consistency::comm_ops(prog);
      EXPECT_EQ(consistency::first_difference(recorded, executed), "");
      EXPECT_EQ(consistency::first_difference(priced_layer(d), recorded), "");
      EXPECT_EQ(executed.empty(), d.tp == 1 && d.ulysses() == 1);

      // Numbers: dx on the rank's rows; each weight's gradient on the rank's shard, summed
      // over the ranks that saw other rows (the Ulysses ranks; Megatron-SP's TP ranks for
      // the replicated weights, which the per-step reduction sums in a stack).
      CheckResult r = compare_values("dx", widen(step.dx.p, step.dx.n), pick_rows(want.dx, rows, d.hidden),
                                     transformer_layer_tolerance(DType::kFp32));
      std::vector<std::vector<double>> got, ref;
      for (std::size_t i = 0; i < params.size(); ++i) {
        auto g = sum_over(*rank.comm, GroupKind::kSequence, widen(params[i]->dw.p, params[i]->dw.n));
        if (d.megatron_sp() && splits[i].split == TpSplit::kReplicated) g = sum_over(*rank.comm, GroupKind::kTensor, g);
        got.push_back(g);
        ref.push_back(tp_shard(want.param_grads[i], splits[i], d.tp, rank.tp_rank));
      }
      r.merge(compare_transformer_grads(got, ref, transformer_layer_tolerance(DType::kFp32)));
      EXPECT_TRUE(r.ok) << r.worst;
    }
  }
}

TEST(TransformerStackMpi, LossGradientsPeakAndBytesMatchTheOneRankReferenceAndTheModel) {
  const auto plans = plans_for(MpiSession::world_size());
  if (plans.empty()) GTEST_SKIP() << "no plan for " << MpiSession::world_size() << " ranks";
  for (const MultiRankPlan& plan : plans) {
    Rank rank(plan);
    std::mt19937_64 rng(shared_seed(*rank.comm));
    for (int c = 0; c < 2; ++c) {
      TransformerStackDims d;
      d.layer = random_layer(plan, rng);
      // GPT's layer (bias + GELU, LayerNorm): the model prices Megatron-SP's per-step
      // reduction at its 6h replicated weights a layer.
      d.layer.mlp = MlpKind::kGelu;
      d.layer.norm = NormKind::kLayerNorm;
      d.layers = 1 + static_cast<std::int64_t>(rng() % 2);
      d.vocab = plan.tp * (3 + static_cast<std::int64_t>(rng() % 6));
      d.vocab_chunk = 1 + static_cast<std::int64_t>(rng() % (d.vocab / plan.tp + 2));
      d.learned_positions = d.layer.rotary_dims == 0;
      d.mask = d.layer.attn == AttentionImpl::kMaterialized ? MaskKind::kBool : MaskKind::kNone;
      SCOPED_TRACE(plan.describe() + " " + describe(d.layer) + " L" + std::to_string(d.layers) + " V" +
                   std::to_string(d.vocab) + "/" + std::to_string(d.vocab_chunk) + " rank " +
                   std::to_string(rank.comm->rank()));
      TransformerStackDims d1 = d;
      d1.layer = one_rank(d.layer);
      const TransformerStackInputs in = make_transformer_stack_inputs(d1, rng());
      const TransformerStackRun want = run_transformer_stack_ref(d1, in);

      TransformerExecOps ops({}, {}, &rank.collectives);
      TransformerStackStep<TransformerExecOps> step(ops, d);
      const auto tokens = rank_rows(d.layer, rank.tp_rank, rank.seq_rank, /*residual_stream=*/false);
      const auto tok = pick_rows(in.tokens, tokens, 1), tgt = pick_rows(in.targets, tokens, 1);
      ASSERT_EQ(static_cast<std::int64_t>(tok.size()), step.tokens.n);
      std::copy(tok.begin(), tok.end(), step.tokens.i32());
      std::copy(tgt.begin(), tgt.end(), step.targets.i32());
      auto& params = step.stack.params();
      const auto splits = step.stack.param_splits();
      const std::int64_t sl = d.layer.seq / d.layer.ulysses(), h = d.layer.hidden;
      auto shard = [&](std::size_t i, const std::vector<double>& whole) {
        // The position table: the rows of the rank's Ulysses positions.
        if (d.learned_positions && i == 1) return std::vector<double>(whole.begin() + rank.seq_rank * sl * h,
                                                                      whole.begin() + (rank.seq_rank + 1) * sl * h);
        return tp_shard(whole, splits[i], d.layer.tp, rank.tp_rank);
      };
      for (std::size_t i = 0; i < params.size(); ++i) {
        const auto w = shard(i, in.params[i]);
        ASSERT_EQ(static_cast<std::int64_t>(w.size()), params[i]->w.n) << "param " << i;
        std::copy(w.begin(), w.end(), params[i]->w.p);
      }
      step.stack.sync_master();
      std::vector<CommOp> executed;
      rank.comm->record_into(&executed);
      step.run();  // Adam too: the gradients stay as backward wrote them
      rank.comm->record_into(nullptr);

      const StepProgram prog = build_transformer_stack_program(d, DType::kFp32, rank.tp_rank);
      EXPECT_EQ(ops.peak_bytes(), prog.replay_memory().peak_device_bytes);
      const auto recorded = consistency::comm_ops(prog);
      EXPECT_EQ(consistency::first_difference(recorded, executed), "");
      // The model's step for the same model and plan (one micro-batch, one stage).
      TransformerSpec t;
      t.layers = d.layers;
      t.hidden = h;
      t.heads = d.layer.heads;
      t.kv_heads = d.layer.kv_heads;
      t.ffn_hidden = d.layer.ffn;
      t.vocab = d.vocab;
      t.dtype = DType::kFp32;
      t.position = d.learned_positions ? PositionEmbedding::kLearned : PositionEmbedding::kRotary;
      Plan p;
      p.tp = plan.tp;
      p.sp = plan.sp;
      p.sp_degree = plan.ulysses;
      p.dp = 1;
      p.recompute = d.layer.recompute;
      p.attn = d.layer.attn;
      const auto model = with_fp32_grads(consistency::only(
          transformer_step_comm(t, p, RunShape{d.layer.seq, d.layer.batch, d.layer.batch}, 0),
          [](const CommOp& o) { return o.group != GroupKind::kData; }));
      EXPECT_EQ(consistency::first_difference(model, recorded), "");

      // Each rank's loss is the mean over its tokens; the reference's over all of them,
      // so the Ulysses ranks' losses and gradients are averaged (the data-parallel-like
      // reduction of a step). The position table is partitioned: its slice's gradient is
      // complete on its rank.
      const double u = plan.ulysses;
      std::vector<double> loss{static_cast<double>(step.loss.p[0])};
      CheckResult r = compare_values("loss", std::vector<double>{sum_over(*rank.comm, GroupKind::kSequence, loss)[0] / u},
                                     std::vector<double>{want.loss}, transformer_layer_tolerance(DType::kFp32));
      std::vector<std::vector<double>> got, ref;
      for (std::size_t i = 0; i < params.size(); ++i) {
        auto g = widen(params[i]->dw.p, params[i]->dw.n);
        if (!(d.learned_positions && i == 1)) g = sum_over(*rank.comm, GroupKind::kSequence, g);
        for (double& v : g) v /= u;
        got.push_back(g);
        ref.push_back(shard(i, want.param_grads[i]));
      }
      r.merge(compare_transformer_grads(got, ref, transformer_layer_tolerance(DType::kFp32)));
      EXPECT_TRUE(r.ok) << r.worst;
    }
  }
}

}  // namespace
}  // namespace seqscale::comm
