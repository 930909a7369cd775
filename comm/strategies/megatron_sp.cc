// Megatron sequence parallelism (Korthikanti et al. 2022): outside the tensor-parallel
// block the activations are split along the sequence over the TP group. The block is
//   X_shard -> scale by gamma (a LayerNorm-like non-parallel op, weights replicated)
//   -> all-gather (sequence) -> column/row-parallel MLP -> reduce-scatter (sequence)
// and backward mirrors it (all-gather of dY, the input all-gathered again for the weight
// gradient, reduce-scatter of dX). The replicated gamma's gradient is all-reduced over
// the TP group, as Megatron does for LayerNorm. Volume is plain TP's (an all-reduce is a
// reduce-scatter plus an all-gather) plus the backward re-gather, while
// activations outside the block shrink by tp. One Megatron-SP block and the per-step
// norm-gradient all-reduce of workloads/parallel/tensor_parallel_comm.h.
#include "comm/strategies/mlp_shard.h"
#include "workloads/parallel/tensor_parallel_comm.h"

namespace seqscale::comm {
namespace {

constexpr int kTokens = 16, kHidden = 8, kFfn = 16;  // kTokens, kFfn % tp == 0 for tp <= 8
constexpr std::uint64_t kSeed = 200;
constexpr RunShape kShape{kTokens, 1, 1};

Plan plan(const RankLayout& l) {
  Plan p = toy_plan(l);
  p.sp = SeqParallel::kMegatron;
  return p;
}

CommOps emit(const RankLayout& l, int) {
  CommOps ops;
  for (Phase ph : {Phase::kForward, Phase::kBackward})
    tensor_parallel_block(ops, toy_transformer(kHidden), plan(l), kShape, ph);
  sequence_parallel_grads(ops, plan(l), kHidden, 4.0);  // d(gamma): one fp32 norm weight
  return ops;
}

struct Inputs {
  std::vector<float> x, dy, gamma;
};
Inputs inputs() {
  return {random_vector(kTokens * kHidden, kSeed + 3), random_vector(kTokens * kHidden, kSeed + 4),
          random_vector(kHidden, kSeed + 5)};
}

Tensors run(Communicator& c, StrategyMath& math, const RankLayout& l) {
  const int tp = l.group_size(GroupKind::kTensor), me = c.group_rank(GroupKind::kTensor);
  const int ts = kTokens / tp;
  const Inputs in = inputs();
  auto mlp = make_mlp_shard(kTokens, kHidden, kFfn, tp, me, kSeed);
  const auto x_shard = slice_rows(in.x, kHidden, me * ts, (me + 1) * ts);
  std::vector<float> xn_shard(x_shard.size());
  for (std::size_t i = 0; i < xn_shard.size(); ++i) xn_shard[i] = x_shard[i] * in.gamma[i % kHidden];
  std::vector<float> xn(static_cast<std::size_t>(kTokens) * kHidden);
  c.all_gather(GroupKind::kTensor, xn_shard.data(), xn.data(), ts * kHidden, DType::kFp32);
  const auto y_partial = mlp.forward(math, xn);
  Tensors out;
  out["y"].resize(static_cast<std::size_t>(ts) * kHidden);
  c.reduce_scatter(GroupKind::kTensor, y_partial.data(), out["y"].data(), ts * kHidden, DType::kFp32);

  c.set_phase(Phase::kBackward);
  const auto dy_shard = slice_rows(in.dy, kHidden, me * ts, (me + 1) * ts);
  std::vector<float> dy(static_cast<std::size_t>(kTokens) * kHidden);
  c.all_gather(GroupKind::kTensor, dy_shard.data(), dy.data(), ts * kHidden, DType::kFp32);
  // Forward kept only the shard (Megatron saves it, not the gathered input): gathered
  // again for the column-parallel weight gradient.
  std::vector<float> xn_again(xn.size());
  c.all_gather(GroupKind::kTensor, xn_shard.data(), xn_again.data(), ts * kHidden, DType::kFp32);
  const auto dxn_partial = mlp.backward(math, xn_again, dy, out["dw1"], out["dw2"]);
  std::vector<float> dxn(static_cast<std::size_t>(ts) * kHidden);
  c.reduce_scatter(GroupKind::kTensor, dxn_partial.data(), dxn.data(), ts * kHidden, DType::kFp32);
  auto& dx = out["dx"];
  auto& dgamma = out["dgamma"];
  dx.resize(dxn.size());
  dgamma.assign(kHidden, 0.f);
  for (std::size_t i = 0; i < dxn.size(); ++i) {
    dx[i] = dxn[i] * in.gamma[i % kHidden];
    dgamma[i % kHidden] += dxn[i] * x_shard[i];
  }
  c.all_reduce(GroupKind::kTensor, dgamma.data(), dgamma.data(), kHidden, DType::kFp32);
  return out;
}

Tensors reference(const RankLayout& l, int rank) {
  const int tp = l.group_size(GroupKind::kTensor), me = l.group_rank(GroupKind::kTensor, rank);
  const int ts = kTokens / tp, fs = kFfn / tp;
  const Inputs in = inputs();
  auto full = make_mlp_shard(kTokens, kHidden, kFfn, 1, 0, kSeed);
  std::vector<float> xn(in.x.size());
  for (std::size_t i = 0; i < xn.size(); ++i) xn[i] = in.x[i] * in.gamma[i % kHidden];
  const auto y = full.forward(host_strategy_math(), xn);
  std::vector<float> dw1, dw2;
  const auto dxn = full.backward(host_strategy_math(), xn, in.dy, dw1, dw2);
  std::vector<float> dx(dxn.size()), dgamma(kHidden, 0.f);
  for (std::size_t i = 0; i < dxn.size(); ++i) {
    dx[i] = dxn[i] * in.gamma[i % kHidden];
    dgamma[i % kHidden] += dxn[i] * in.x[i];
  }
  return {{"y", slice_rows(y, kHidden, me * ts, (me + 1) * ts)},
          {"dx", slice_rows(dx, kHidden, me * ts, (me + 1) * ts)},
          {"dw1", slice_cols(dw1, kHidden, kFfn, me * fs, (me + 1) * fs)},
          {"dw2", slice_rows(dw2, kHidden, me * fs, (me + 1) * fs)},
          {"dgamma", dgamma}};
}

}  // namespace

SEQSCALE_STRATEGY(megatron_sp, {"megatron_sp", "Megatron sequence parallel around a TP MLP",
                                [](int n) { return ParallelDims{.tp = n}; }, emit, run, reference});

}  // namespace seqscale::comm
