// DeepSpeed-Ulysses (Jacobs et al. 2023): Q, K, V arrive split along the sequence over
// the sequence group (kSequence); an all-to-all swaps that for a split along heads, each rank runs exact
// attention over the whole sequence for heads/P heads, and an all-to-all swaps back.
// Backward does the same with dO in and dQ, dK, dV out: 8 all-to-alls per layer, each
// of seq/P x heads x head_dim elements per rank, so the per-link volume 4Nh/P of the
// paper (ANCHORS section 3) stays constant as N and P grow together. heads % P == 0.
// One attention core of workloads/parallel/ulysses_comm.h.
#include "comm/strategies/strategy.h"
#include "workloads/parallel/ulysses_comm.h"

namespace seqscale::comm {
namespace {

constexpr int kSeq = 16, kHeads = 8, kDim = 4, kRow = kHeads * kDim;  // kSeq, kHeads % P == 0, P <= 8
constexpr std::uint64_t kSeed = 300;
constexpr RunShape kShape{kSeq, 1, 1};

CommOps emit(const RankLayout& l, int) {
  Plan p = toy_plan(l);
  p.sp = SeqParallel::kUlysses, p.sp_degree = l.dims().seq;
  CommOps ops;
  for (Phase ph : {Phase::kForward, Phase::kBackward})
    ulysses_attention(ops, toy_transformer(kRow, kHeads), p, kShape, ph);
  return ops;
}

// [seq/P, heads, D] (this rank's rows, all heads) -> [seq, heads/P, D] (all rows, my heads).
std::vector<float> seq_to_heads(Communicator& c, const std::vector<float>& x, int p) {
  const int sl = kSeq / p, hl = kHeads / p;
  std::vector<float> send(x.size()), recv(x.size());
  for (int j = 0; j < p; ++j)  // block j: my rows, heads of rank j
    for (int s = 0; s < sl; ++s)
      for (int h = 0; h < hl; ++h)
        for (int d = 0; d < kDim; ++d)
          send[((j * sl + s) * hl + h) * kDim + d] = x[(s * kHeads + j * hl + h) * kDim + d];
  c.all_to_all(GroupKind::kSequence, send.data(), recv.data(), sl * hl * kDim, DType::kFp32);
  // recv block j: rows of rank j, my heads -> rows j*sl.. in order: already [seq, hl, D]
  return recv;
}

// Inverse: [seq, heads/P, D] -> [seq/P, heads, D].
std::vector<float> heads_to_seq(Communicator& c, const std::vector<float>& x, int p) {
  const int sl = kSeq / p, hl = kHeads / p;
  std::vector<float> recv(x.size()), out(x.size());
  c.all_to_all(GroupKind::kSequence, x.data(), recv.data(), sl * hl * kDim, DType::kFp32);
  for (int j = 0; j < p; ++j)  // block j: my rows, heads of rank j
    for (int s = 0; s < sl; ++s)
      for (int h = 0; h < hl; ++h)
        for (int d = 0; d < kDim; ++d)
          out[(s * kHeads + j * hl + h) * kDim + d] = recv[((j * sl + s) * hl + h) * kDim + d];
  return out;
}

struct Inputs {
  std::vector<float> q, k, v, dout;  // [seq, heads, D]
};
Inputs inputs() {
  const int n = kSeq * kRow;
  return {random_vector(n, kSeed + 1), random_vector(n, kSeed + 2), random_vector(n, kSeed + 3),
          random_vector(n, kSeed + 4)};
}

// Attention for `heads` heads laid out [seq, heads, D] (row stride heads * D).
void attend(StrategyMath& math, const float* q, const float* k, const float* v, float* o, int heads) {
  for (int h = 0; h < heads; ++h)
    math.attention_fwd(q + h * kDim, k + h * kDim, v + h * kDim, o + h * kDim, kSeq, kSeq, kDim, heads * kDim);
}
void attend_bwd(StrategyMath& math, const float* q, const float* k, const float* v, const float* dout, float* dq,
                float* dk, float* dv, int heads) {
  for (int h = 0; h < heads; ++h)
    math.attention_bwd(q + h * kDim, k + h * kDim, v + h * kDim, dout + h * kDim, dq + h * kDim, dk + h * kDim,
                  dv + h * kDim, kSeq, kSeq, kDim, heads * kDim);
}

Tensors run(Communicator& c, StrategyMath& math, const RankLayout& l) {
  const int p = l.group_size(GroupKind::kSequence), me = c.group_rank(GroupKind::kSequence), sl = kSeq / p;
  const int hl = kHeads / p;
  const Inputs in = inputs();
  auto mine = [&](const std::vector<float>& t) { return slice_rows(t, kRow, me * sl, (me + 1) * sl); };
  const auto q = seq_to_heads(c, mine(in.q), p), k = seq_to_heads(c, mine(in.k), p), v = seq_to_heads(c, mine(in.v), p);
  std::vector<float> o(q.size());
  attend(math, q.data(), k.data(), v.data(), o.data(), hl);
  Tensors out;
  out["o"] = heads_to_seq(c, o, p);
  c.set_phase(Phase::kBackward);
  const auto dout = seq_to_heads(c, mine(in.dout), p);
  std::vector<float> dq(q.size(), 0.f), dk(q.size(), 0.f), dv(q.size(), 0.f);
  attend_bwd(math, q.data(), k.data(), v.data(), dout.data(), dq.data(), dk.data(), dv.data(), hl);
  out["dq"] = heads_to_seq(c, dq, p);
  out["dk"] = heads_to_seq(c, dk, p);
  out["dv"] = heads_to_seq(c, dv, p);
  return out;
}

Tensors reference(const RankLayout& l, int rank) {
  const int p = l.group_size(GroupKind::kSequence), me = l.group_rank(GroupKind::kSequence, rank), sl = kSeq / p;
  const Inputs in = inputs();
  std::vector<float> o(in.q.size()), dq(in.q.size(), 0.f), dk(in.q.size(), 0.f), dv(in.q.size(), 0.f);
  attend(host_strategy_math(), in.q.data(), in.k.data(), in.v.data(), o.data(), kHeads);
  attend_bwd(host_strategy_math(), in.q.data(), in.k.data(), in.v.data(), in.dout.data(), dq.data(), dk.data(),
             dv.data(), kHeads);
  auto mine = [&](const std::vector<float>& t) { return slice_rows(t, kRow, me * sl, (me + 1) * sl); };
  return {{"o", mine(o)}, {"dq", mine(dq)}, {"dk", mine(dk)}, {"dv", mine(dv)}};
}

}  // namespace

SEQSCALE_STRATEGY(ulysses, {"ulysses", "all-to-all swapping sequence and head sharding around attention",
                            [](int n) { return ParallelDims{.seq = n}; }, emit, run, reference});

}  // namespace seqscale::comm
