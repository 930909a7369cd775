// ZeRO data parallelism (Rajbhandari et al. 2020) with sharded Adam, stages 1-3, on a
// linear layer Y = X W (Psi = hidden^2 parameters) whose data-parallel ranks see
// different micro-batches; loss = mean over ranks, two optimizer steps.
//   stage 1: all-reduce(avg) of gradients; Adam on my 1/N_d of the states; all-gather W
//   stage 2: reduce-scatter(avg) of gradients; Adam on my shard; all-gather W
//   stage 3: parameters sharded too: all-gather W before forward and again before
//            backward (freed in between); reduce-scatter(avg) of gradients; Adam on my
//            shard; W stays sharded
// Model-state memory per rank (ANCHORS section 4, mixed precision): 4Psi + 12Psi/N_d,
// 2Psi + 14Psi/N_d, 16Psi/N_d; here all fp32, the communication pattern is the point:
// per step, workloads/parallel/data_parallel_comm.h's ZeRO stage.
#include "comm/strategies/zero.h"

#include <algorithm>

namespace seqscale::comm {

std::vector<float> zero_batch(int step, int dp_rank, bool grad) {
  return random_vector(ZeroModel::kTokens * ZeroModel::kHidden,
                       ZeroModel::kSeed + 1000 * step + 10 * dp_rank + (grad ? 1 : 0));
}

std::vector<float> zero_initial_params() {
  return random_vector(ZeroModel::kParams, ZeroModel::kSeed, 0.5f);
}

// Gradient of the mean loss over dp ranks of sum(Y_r * G_r) w.r.t. W, for one rank: X_r^T G_r.
std::vector<float> zero_local_grad(int step, int dp_rank) {
  std::vector<float> g(ZeroModel::kParams);
  const auto x = zero_batch(step, dp_rank, false), dy = zero_batch(step, dp_rank, true);
  matmul_tn(x.data(), dy.data(), g.data(), ZeroModel::kTokens, ZeroModel::kHidden, ZeroModel::kHidden);
  return g;
}

ReplicatedStates zero_states(const RankLayout& l) {
  return ReplicatedStates{static_cast<double>(ZeroModel::kParams), l.group_size(GroupKind::kData), 4.0, 4.0};
}

namespace {

CommOps emit(int stage, const RankLayout& l) {
  CommOps ops;
  for (int step = 0; step < ZeroModel::kSteps; ++step) {
    for (Phase ph : {Phase::kForward, Phase::kBackward}) zero3_param_gather(ops, zero_states(l), stage, ph);
    data_parallel_grads(ops, zero_states(l), stage);
  }
  return ops;
}

Tensors run(int stage, Communicator& c, StrategyMath& math, const RankLayout& l) {
  const int n = l.group_size(GroupKind::kData), me = c.group_rank(GroupKind::kData);
  const std::int64_t shard = ZeroModel::kParams / n;
  const auto init = zero_initial_params();
  std::vector<float> w = init;  // full copy (stages 1, 2) or gather buffer (stage 3)
  std::vector<float> w_shard(init.begin() + me * shard, init.begin() + (me + 1) * shard);
  std::vector<float> m(shard, 0.f), v(shard, 0.f), g_shard(shard), dx;
  const int t = ZeroModel::kTokens, h = ZeroModel::kHidden;
  for (int step = 0; step < ZeroModel::kSteps; ++step) {
    const auto x = zero_batch(step, c.group_rank(GroupKind::kData), false);
    const auto dy = zero_batch(step, c.group_rank(GroupKind::kData), true);
    c.set_phase(Phase::kForward);
    if (stage == 3) c.all_gather(GroupKind::kData, w_shard.data(), w.data(), shard, DType::kFp32);
    std::vector<float> y(static_cast<std::size_t>(t) * h);
    math.matmul(x.data(), w.data(), y.data(), t, h, h);
    c.set_phase(Phase::kBackward);
    if (stage == 3) {  // parameters freed after forward, gathered again for backward
      std::fill(w.begin(), w.end(), 0.f);
      c.all_gather(GroupKind::kData, w_shard.data(), w.data(), shard, DType::kFp32);
    }
    dx.assign(static_cast<std::size_t>(t) * h, 0.f);
    math.matmul_nt(dy.data(), w.data(), dx.data(), t, h, h);
    std::vector<float> g(ZeroModel::kParams);
    math.matmul_tn(x.data(), dy.data(), g.data(), t, h, h);
    if (stage == 1) {
      c.all_reduce(GroupKind::kData, g.data(), g.data(), ZeroModel::kParams, DType::kFp32, ReduceOp::kAvg);
      std::copy(g.begin() + me * shard, g.begin() + (me + 1) * shard, g_shard.begin());
    } else {
      c.reduce_scatter(GroupKind::kData, g.data(), g_shard.data(), shard, DType::kFp32, ReduceOp::kAvg);
    }
    math.adam_step(w_shard.data(), g_shard.data(), m.data(), v.data(), shard, step + 1);
    c.set_phase(Phase::kOptimizer);
    if (stage != 3) c.all_gather(GroupKind::kData, w_shard.data(), w.data(), shard, DType::kFp32);
  }
  Tensors out{{"w_shard", w_shard}, {"grad_shard", g_shard}, {"dx_last", dx}};
  if (stage != 3) out["w"] = w;
  return out;
}

Tensors reference(int stage, const RankLayout& l, int rank) {
  const int n = l.group_size(GroupKind::kData), me = l.group_rank(GroupKind::kData, rank);
  const std::int64_t shard = ZeroModel::kParams / n;
  auto w = zero_initial_params();
  std::vector<float> m(ZeroModel::kParams, 0.f), v(ZeroModel::kParams, 0.f), g, dx;
  const int t = ZeroModel::kTokens, h = ZeroModel::kHidden;
  for (int step = 0; step < ZeroModel::kSteps; ++step) {
    g.assign(ZeroModel::kParams, 0.f);
    for (int r = 0; r < n; ++r) {
      const auto gr = zero_local_grad(step, r);
      for (std::int64_t i = 0; i < ZeroModel::kParams; ++i) g[i] += gr[i];
    }
    for (auto& x : g) x /= static_cast<float>(n);
    const auto dy = zero_batch(step, me, true);
    dx.assign(static_cast<std::size_t>(t) * h, 0.f);
    matmul_nt(dy.data(), w.data(), dx.data(), t, h, h);
    adam_step(w.data(), g.data(), m.data(), v.data(), ZeroModel::kParams, step + 1);
  }
  Tensors out{{"w_shard", {w.begin() + me * shard, w.begin() + (me + 1) * shard}},
              {"grad_shard", {g.begin() + me * shard, g.begin() + (me + 1) * shard}},
              {"dx_last", dx}};
  if (stage != 3) out["w"] = w;
  return out;
}

StrategyDef zero_def(int stage) {
  return {"zero" + std::to_string(stage), "ZeRO stage " + std::to_string(stage) + " with sharded Adam",
          [](int n) { return ParallelDims{.dp = n}; },
          [stage](const RankLayout& l, int) { return emit(stage, l); },
          [stage](Communicator& c, StrategyMath& math, const RankLayout& l) { return run(stage, c, math, l); },
          [stage](const RankLayout& l, int r) { return reference(stage, l, r); }, 1e-5};
}

}  // namespace

SEQSCALE_STRATEGY(zero1, zero_def(1));
SEQSCALE_STRATEGY(zero2, zero_def(2));
SEQSCALE_STRATEGY(zero3, zero_def(3));

}  // namespace seqscale::comm
