// Megatron's vocab-parallel embedding and cross entropy (Shoeybi et al. 2019 s3;
// VocabParallelEmbedding, vocab_parallel_cross_entropy), the collectives a TP step has
// outside its layers. The vocabulary is split over the TP group, both the input
// embedding E [V, H] and the (untied, as GPT-NeoX) output projection W [V, H]:
//   embedding  each rank looks up the ids in its vocab slice (zero rows elsewhere); the
//              partial rows are summed: an all-reduce (plain TP; backward: identity) or,
//              with Megatron-SP, a reduce-scatter to the sequence shard (backward: an
//              all-gather of dX)
//   body       Y = tanh(X), standing for the layers
//   output     logits for the rank's vocab slice, Y W_slice^T (Megatron-SP first
//              all-gathers Y; backward reduce-scatters dY, plain TP all-reduces it)
//   loss       mean cross entropy over the tokens in fp32 from 3 all-reduces of one
//              float per token: the max logit (max), the sum of exp, the target logit
// Registered twice: "vocab_parallel" (plain TP) and "vocab_parallel_sp" (Megatron-SP).
// The embedding and loss of workloads/parallel/vocab_parallel_comm.h on one stage.
#include <algorithm>
#include <cmath>

#include "comm/strategies/strategy.h"
#include "workloads/parallel/vocab_parallel_comm.h"

namespace seqscale::comm {
namespace {

constexpr int kTokens = 16, kHidden = 8, kVocab = 64;  // kTokens, kVocab % tp == 0 for tp <= 8
constexpr std::uint64_t kSeed = 1000;
constexpr RunShape kShape{kTokens, 1, 1};

template <bool kSp>
CommOps emit(const RankLayout& l, int) {
  Plan p = toy_plan(l);
  if (kSp) p.sp = SeqParallel::kMegatron;
  TransformerSpec t = toy_transformer(kHidden);
  t.vocab = kVocab;
  CommOps ops;
  vocab_embedding(ops, t, p, kShape, Phase::kForward);
  vocab_loss(ops, t, p, kShape, Phase::kForward);
  vocab_loss(ops, t, p, kShape, Phase::kBackward);
  vocab_embedding(ops, t, p, kShape, Phase::kBackward);
  return ops;
}

struct Weights {
  std::vector<float> embedding = random_vector(kVocab * kHidden, kSeed + 1),
                     out = random_vector(kVocab * kHidden, kSeed + 2, 0.5f);
};
int token_id(int t) { return static_cast<int>((t * 37 + 11) % kVocab); }
int target_id(int t) { return static_cast<int>((t * 23 + 5) % kVocab); }

// The loss gradient on one vocab slice [v0, v1) of the logits [T, V/tp], given the
// per-token max and sum of exp over the whole vocabulary: (softmax - onehot) / T.
std::vector<float> dlogits_slice(const std::vector<float>& logits, int v0, int v1, const std::vector<float>& mx,
                                 const std::vector<float>& sum_exp) {
  const int w = v1 - v0;
  std::vector<float> d(logits.size());
  for (int t = 0; t < kTokens; ++t)
    for (int j = 0; j < w; ++j) {
      const double sm = std::exp(static_cast<double>(logits[t * w + j]) - mx[t]) / sum_exp[t];
      d[t * w + j] = static_cast<float>((sm - (v0 + j == target_id(t) ? 1.0 : 0.0)) / kTokens);
    }
  return d;
}

// Rows [v0, v1) of E looked up for every token (zero where the id is outside the slice).
std::vector<float> lookup(const Weights& w, int v0, int v1) {
  std::vector<float> x(static_cast<std::size_t>(kTokens) * kHidden, 0.f);
  for (int t = 0; t < kTokens; ++t) {
    const int id = token_id(t);
    if (id >= v0 && id < v1) std::copy_n(w.embedding.begin() + id * kHidden, kHidden, x.begin() + t * kHidden);
  }
  return x;
}
// d(E) rows [v0, v1) from dX of every token.
std::vector<float> lookup_bwd(const std::vector<float>& dx, int v0, int v1) {
  std::vector<float> de(static_cast<std::size_t>(v1 - v0) * kHidden, 0.f);
  for (int t = 0; t < kTokens; ++t) {
    const int id = token_id(t);
    if (id >= v0 && id < v1)
      for (int k = 0; k < kHidden; ++k) de[(id - v0) * kHidden + k] += dx[t * kHidden + k];
  }
  return de;
}

template <bool kSp>
Tensors run(Communicator& c, StrategyMath& math, const RankLayout& l) {
  const int tp = l.group_size(GroupKind::kTensor), me = c.group_rank(GroupKind::kTensor);
  const int vs = kVocab / tp, v0 = me * vs, v1 = v0 + vs, ts = kTokens / tp;
  const Weights w;
  const GroupKind g = GroupKind::kTensor;
  // Embedding: partial rows summed over the vocab slices.
  const auto x_partial = lookup(w, v0, v1);
  std::vector<float> x(x_partial.size());
  if (kSp) {
    std::vector<float> x_shard(static_cast<std::size_t>(ts) * kHidden), y_shard(x_shard.size());
    c.reduce_scatter(g, x_partial.data(), x_shard.data(), ts * kHidden, DType::kFp32);
    for (std::size_t i = 0; i < x_shard.size(); ++i) y_shard[i] = std::tanh(x_shard[i]);
    c.all_gather(g, y_shard.data(), x.data(), ts * kHidden, DType::kFp32);  // x now holds Y
  } else {
    c.all_reduce(g, x_partial.data(), x.data(), kTokens * kHidden, DType::kFp32);
    for (auto& v : x) v = std::tanh(v);
  }
  const std::vector<float>& y = x;
  // Logits of this vocab slice and the loss from three per-token all-reduces.
  const std::vector<float> w_slice = slice_rows(w.out, kHidden, v0, v1);
  std::vector<float> logits(static_cast<std::size_t>(kTokens) * vs);
  math.matmul_nt(y.data(), w_slice.data(), logits.data(), kTokens, kHidden, vs);
  std::vector<float> mx(kTokens), sum_exp(kTokens, 0.f), target(kTokens, 0.f);
  for (int t = 0; t < kTokens; ++t) mx[t] = *std::max_element(logits.begin() + t * vs, logits.begin() + (t + 1) * vs);
  c.all_reduce(g, mx.data(), mx.data(), kTokens, DType::kFp32, ReduceOp::kMax);
  for (int t = 0; t < kTokens; ++t) {
    double s = 0;
    for (int j = 0; j < vs; ++j) s += std::exp(static_cast<double>(logits[t * vs + j]) - mx[t]);
    sum_exp[t] = static_cast<float>(s);
    if (target_id(t) >= v0 && target_id(t) < v1) target[t] = logits[t * vs + target_id(t) - v0];
  }
  c.all_reduce(g, sum_exp.data(), sum_exp.data(), kTokens, DType::kFp32);
  c.all_reduce(g, target.data(), target.data(), kTokens, DType::kFp32);
  double loss = 0;
  for (int t = 0; t < kTokens; ++t) loss += std::log(static_cast<double>(sum_exp[t])) + mx[t] - target[t];
  Tensors out;
  out["loss"] = {static_cast<float>(loss / kTokens)};
  // Backward.
  c.set_phase(Phase::kBackward);
  const auto dlogits = dlogits_slice(logits, v0, v1, mx, sum_exp);
  out["dw_out"].assign(static_cast<std::size_t>(vs) * kHidden, 0.f);
  math.matmul_tn(dlogits.data(), y.data(), out["dw_out"].data(), kTokens, vs, kHidden);
  std::vector<float> dy_partial(static_cast<std::size_t>(kTokens) * kHidden), dx(dy_partial.size());
  math.matmul(dlogits.data(), w_slice.data(), dy_partial.data(), kTokens, vs, kHidden);
  if (kSp) {
    std::vector<float> dy_shard(static_cast<std::size_t>(ts) * kHidden), dx_shard(dy_shard.size());
    c.reduce_scatter(g, dy_partial.data(), dy_shard.data(), ts * kHidden, DType::kFp32);
    for (std::size_t i = 0; i < dy_shard.size(); ++i) {
      const float yv = y[me * ts * kHidden + i];
      dx_shard[i] = dy_shard[i] * (1.f - yv * yv);
    }
    c.all_gather(g, dx_shard.data(), dx.data(), ts * kHidden, DType::kFp32);
  } else {
    c.all_reduce(g, dy_partial.data(), dx.data(), kTokens * kHidden, DType::kFp32);
    for (std::size_t i = 0; i < dx.size(); ++i) dx[i] *= 1.f - y[i] * y[i];
  }
  out["d_embedding"] = lookup_bwd(dx, v0, v1);
  return out;
}

Tensors reference(const RankLayout& l, int rank) {
  const int tp = l.group_size(GroupKind::kTensor), me = l.group_rank(GroupKind::kTensor, rank);
  const int vs = kVocab / tp;
  const Weights w;
  auto y = lookup(w, 0, kVocab);
  for (auto& v : y) v = std::tanh(v);
  std::vector<float> logits(static_cast<std::size_t>(kTokens) * kVocab);
  matmul_nt(y.data(), w.out.data(), logits.data(), kTokens, kHidden, kVocab);
  std::vector<float> mx(kTokens), sum_exp(kTokens);
  double loss = 0;
  for (int t = 0; t < kTokens; ++t) {
    mx[t] = *std::max_element(logits.begin() + t * kVocab, logits.begin() + (t + 1) * kVocab);
    double s = 0;
    for (int j = 0; j < kVocab; ++j) s += std::exp(static_cast<double>(logits[t * kVocab + j]) - mx[t]);
    sum_exp[t] = static_cast<float>(s);
    loss += std::log(s) + mx[t] - logits[t * kVocab + target_id(t)];
  }
  const auto dlogits = dlogits_slice(logits, 0, kVocab, mx, sum_exp);
  std::vector<float> dw(static_cast<std::size_t>(kVocab) * kHidden), dx(static_cast<std::size_t>(kTokens) * kHidden);
  matmul_tn(dlogits.data(), y.data(), dw.data(), kTokens, kVocab, kHidden);
  matmul(dlogits.data(), w.out.data(), dx.data(), kTokens, kVocab, kHidden);
  for (std::size_t i = 0; i < dx.size(); ++i) dx[i] *= 1.f - y[i] * y[i];
  const auto de = lookup_bwd(dx, 0, kVocab);
  return {{"loss", {static_cast<float>(loss / kTokens)}},
          {"dw_out", slice_rows(dw, kHidden, me * vs, (me + 1) * vs)},
          {"d_embedding", slice_rows(de, kHidden, me * vs, (me + 1) * vs)}};
}

}  // namespace

SEQSCALE_STRATEGY(vocab_parallel, {"vocab_parallel", "vocab-parallel embedding and cross entropy over TP",
                                   [](int n) { return ParallelDims{.tp = n}; }, emit<false>, run<false>, reference});
SEQSCALE_STRATEGY(vocab_parallel_sp,
                  {"vocab_parallel_sp", "vocab-parallel embedding and cross entropy with Megatron-SP",
                   [](int n) { return ParallelDims{.tp = n}; }, emit<true>, run<true>, reference});

}  // namespace seqscale::comm
