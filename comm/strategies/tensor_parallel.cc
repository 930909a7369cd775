// Tensor parallel MLP (Megatron-LM, Shoeybi et al. 2019): W1 column-parallel, W2
// row-parallel, with Megatron's conjugate operators around the block:
//   f: identity forward, all-reduce of dX backward    (before the column-parallel GEMM)
//   g: all-reduce of Y forward, identity backward      (after the row-parallel GEMM)
// One parallel block of workloads/parallel/tensor_parallel_comm.h: per step on the TP
// group, 2 all-reduces of [tokens, hidden] fp32.
#include "comm/strategies/mlp_shard.h"
#include "workloads/parallel/tensor_parallel_comm.h"

namespace seqscale::comm {
namespace {

constexpr int kTokens = 6, kHidden = 8, kFfn = 16;  // kFfn % tp == 0 for tp <= 8
constexpr std::uint64_t kSeed = 100;
constexpr RunShape kShape{kTokens, 1, 1};

CommOps emit(const RankLayout& l, int) {
  CommOps ops;
  for (Phase ph : {Phase::kForward, Phase::kBackward})
    tensor_parallel_block(ops, toy_transformer(kHidden), toy_plan(l), kShape, ph);
  return ops;
}

Tensors run(Communicator& c, StrategyMath& math, const RankLayout& l) {
  const int tp = l.group_size(GroupKind::kTensor), me = c.group_rank(GroupKind::kTensor);
  auto mlp = make_mlp_shard(kTokens, kHidden, kFfn, tp, me, kSeed);
  const auto x = random_vector(kTokens * kHidden, kSeed + 3);
  const auto dy = random_vector(kTokens * kHidden, kSeed + 4);
  Tensors out;
  auto y = mlp.forward(math, x);  // f forward: identity
  c.all_reduce(GroupKind::kTensor, y.data(), y.data(), kTokens * kHidden, DType::kFp32);  // g forward
  out["y"] = y;
  c.set_phase(Phase::kBackward);
  auto dx = mlp.backward(math, x, dy, out["dw1"], out["dw2"]);  // g backward: identity
  c.all_reduce(GroupKind::kTensor, dx.data(), dx.data(), kTokens * kHidden, DType::kFp32);  // f backward
  out["dx"] = dx;
  return out;
}

Tensors reference(const RankLayout& l, int rank) {
  const int tp = l.group_size(GroupKind::kTensor), me = l.group_rank(GroupKind::kTensor, rank);
  auto full = make_mlp_shard(kTokens, kHidden, kFfn, 1, 0, kSeed);
  const auto x = random_vector(kTokens * kHidden, kSeed + 3);
  const auto dy = random_vector(kTokens * kHidden, kSeed + 4);
  Tensors out;
  out["y"] = full.forward(host_strategy_math(), x);
  std::vector<float> dw1, dw2;
  out["dx"] = full.backward(host_strategy_math(), x, dy, dw1, dw2);
  const int fs = kFfn / tp;
  out["dw1"] = slice_cols(dw1, kHidden, kFfn, me * fs, (me + 1) * fs);
  out["dw2"] = slice_rows(dw2, kHidden, me * fs, (me + 1) * fs);
  return out;
}

}  // namespace

SEQSCALE_STRATEGY(tensor_parallel, {"tensor_parallel", "column/row-parallel MLP with Megatron f/g",
                                    [](int n) { return ParallelDims{.tp = n}; }, emit, run, reference});

}  // namespace seqscale::comm
