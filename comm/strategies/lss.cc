// LSS Transformer-style segmented attention (Wang et al. 2023, "Ultra-Long Sequence
// Distributed Transformer"; ANCHORS section 3). The sequence is cut into segments over
// the sequence group (kSequence); each rank projects its segment to q, k, v with
// replicated weights.
//   fused communication: k and v travel in one all-gather ([k | v] per token) forward and
//                        their gradients in one reduce-scatter backward
//   double gradient averaging: the weight gradients (fused into one buffer) are averaged
//                        over the sequence group, then over the DP group, instead of one
//                        all-reduce over all seq x dp ranks
// Each DP replica sees its own sequence. Per-rank loss: mean over its segment's tokens,
// so the two averages give the gradient of the mean over all tokens and sequences.
// One attention layer of workloads/parallel/lss_comm.h, then the data-parallel average of
// data_parallel_comm.h.
#include <algorithm>

#include "comm/strategies/strategy.h"
#include "workloads/parallel/data_parallel_comm.h"
#include "workloads/parallel/lss_comm.h"

namespace seqscale::comm {
namespace {

constexpr int kSeq = 16, kHidden = 8, kW = kHidden * kHidden;  // kSeq % seq == 0 for seq <= 8
constexpr std::uint64_t kSeed = 800;
constexpr RunShape kShape{kSeq, 1, 1};

ParallelDims dims(int world) {
  const int seq = world >= 4 ? world / 2 : world;
  return ParallelDims{.seq = seq, .dp = world / seq};
}

CommOps emit(const RankLayout& l, int) {
  Plan p = toy_plan(l);
  p.sp = SeqParallel::kLss, p.sp_degree = l.dims().seq;
  const ReplicatedStates weights{3.0 * kW, p.dp, 4.0, 4.0};  // [Wq | Wk | Wv], fp32
  CommOps ops;
  for (Phase ph : {Phase::kForward, Phase::kBackward}) lss_attention(ops, toy_transformer(kHidden), p, kShape, ph);
  lss_grad_average(ops, p, weights.grad_bytes * weights.params);
  data_parallel_grads(ops, weights, p.zero);
  return ops;
}

struct Model {
  std::vector<float> wq = random_vector(kW, kSeed + 1, 0.5f), wk = random_vector(kW, kSeed + 2, 0.5f),
                     wv = random_vector(kW, kSeed + 3, 0.5f);
};
std::vector<float> sample(int dp_rank, bool grad) {
  return random_vector(kSeq * kHidden, kSeed + 100 + 2 * dp_rank + grad);
}

// Gradients of sum(O * dO) for local queries x_q [lq] against keys/values from x_kv
// computed by the caller; shared by run and reference through this struct.
struct Proj {
  std::vector<float> q, k, v;
};
Proj project(StrategyMath& math, const Model& m, const std::vector<float>& x, int rows) {
  Proj p{std::vector<float>(x.size()), std::vector<float>(x.size()), std::vector<float>(x.size())};
  math.matmul(x.data(), m.wq.data(), p.q.data(), rows, kHidden, kHidden);
  math.matmul(x.data(), m.wk.data(), p.k.data(), rows, kHidden, kHidden);
  math.matmul(x.data(), m.wv.data(), p.v.data(), rows, kHidden, kHidden);
  return p;
}
// dx and the fused weight gradient [dWq | dWk | dWv] from dq, dk, dv on the same rows.
std::vector<float> project_bwd(StrategyMath& math, const Model& m, const std::vector<float>& x,
                               const std::vector<float>& dq, const std::vector<float>& dk, const std::vector<float>& dv,
                               int rows, std::vector<float>& dx) {
  std::vector<float> dw(3 * kW);
  math.matmul_tn(x.data(), dq.data(), dw.data(), rows, kHidden, kHidden);
  math.matmul_tn(x.data(), dk.data(), dw.data() + kW, rows, kHidden, kHidden);
  math.matmul_tn(x.data(), dv.data(), dw.data() + 2 * kW, rows, kHidden, kHidden);
  dx.assign(x.size(), 0.f);
  math.matmul_nt(dq.data(), m.wq.data(), dx.data(), rows, kHidden, kHidden, true);
  math.matmul_nt(dk.data(), m.wk.data(), dx.data(), rows, kHidden, kHidden, true);
  math.matmul_nt(dv.data(), m.wv.data(), dx.data(), rows, kHidden, kHidden, true);
  return dw;
}

Tensors run(Communicator& c, StrategyMath& math, const RankLayout& l) {
  const int segments = l.group_size(GroupKind::kSequence), me = c.group_rank(GroupKind::kSequence);
  const int seg = kSeq / segments, d = kHidden;
  const Model m;
  const auto x = slice_rows(sample(c.group_rank(GroupKind::kData), false), d, me * seg, (me + 1) * seg);
  auto dout = slice_rows(sample(c.group_rank(GroupKind::kData), true), d, me * seg, (me + 1) * seg);
  for (auto& g : dout) g /= static_cast<float>(seg);  // loss: mean over my segment
  const Proj p = project(math, m, x, seg);
  std::vector<float> kv_local(static_cast<std::size_t>(seg) * 2 * d), kv(static_cast<std::size_t>(kSeq) * 2 * d);
  for (int t = 0; t < seg; ++t) {
    std::copy_n(p.k.begin() + t * d, d, kv_local.begin() + t * 2 * d);
    std::copy_n(p.v.begin() + t * d, d, kv_local.begin() + t * 2 * d + d);
  }
  c.all_gather(GroupKind::kSequence, kv_local.data(), kv.data(), seg * 2 * d, DType::kFp32);  // fused k|v
  // q rows use stride d; k|v rows stride 2d: copy q into the 2d-strided layout for the kernel.
  std::vector<float> q2(static_cast<std::size_t>(seg) * 2 * d, 0.f), o2(q2.size()), do2(q2.size(), 0.f);
  for (int t = 0; t < seg; ++t) {
    std::copy_n(p.q.begin() + t * d, d, q2.begin() + t * 2 * d);
    std::copy_n(dout.begin() + t * d, d, do2.begin() + t * 2 * d);
  }
  math.attention_fwd(q2.data(), kv.data(), kv.data() + d, o2.data(), seg, kSeq, d, 2 * d);
  Tensors out;
  auto& o = out["o"];
  for (int t = 0; t < seg; ++t) o.insert(o.end(), o2.begin() + t * 2 * d, o2.begin() + t * 2 * d + d);
  c.set_phase(Phase::kBackward);
  std::vector<float> dq2(q2.size(), 0.f), dkv(kv.size(), 0.f), dkv_local(kv_local.size());
  math.attention_bwd(q2.data(), kv.data(), kv.data() + d, do2.data(), dq2.data(), dkv.data(), dkv.data() + d, seg,
                     kSeq, d, 2 * d);
  c.reduce_scatter(GroupKind::kSequence, dkv.data(), dkv_local.data(), seg * 2 * d, DType::kFp32);  // fused dk|dv
  std::vector<float> dq(p.q.size()), dk(p.q.size()), dv(p.q.size());
  for (int t = 0; t < seg; ++t) {
    std::copy_n(dq2.begin() + t * 2 * d, d, dq.begin() + t * d);
    std::copy_n(dkv_local.begin() + t * 2 * d, d, dk.begin() + t * d);
    std::copy_n(dkv_local.begin() + t * 2 * d + d, d, dv.begin() + t * d);
  }
  auto dw = project_bwd(math, m, x, dq, dk, dv, seg, out["dx"]);
  c.all_reduce(GroupKind::kSequence, dw.data(), dw.data(), 3 * kW, DType::kFp32, ReduceOp::kAvg);  // average 1
  c.all_reduce(GroupKind::kData, dw.data(), dw.data(), 3 * kW, DType::kFp32, ReduceOp::kAvg);      // average 2
  out["dw"] = dw;
  return out;
}

Tensors reference(const RankLayout& l, int rank) {
  const int segments = l.group_size(GroupKind::kSequence), dp = l.group_size(GroupKind::kData);
  const int me = l.group_rank(GroupKind::kSequence, rank), my_dp = l.group_rank(GroupKind::kData, rank);
  const int seg = kSeq / segments, d = kHidden;
  const Model m;
  std::vector<float> dw_mean(3 * kW, 0.f);
  Tensors out;
  for (int r = 0; r < dp; ++r) {
    const auto x = sample(r, false);
    auto dout = sample(r, true);
    const Proj p = project(host_strategy_math(), m, x, kSeq);
    std::vector<float> o(x.size()), dq(x.size(), 0.f), dk(x.size(), 0.f), dv(x.size(), 0.f);
    attention_fwd(p.q.data(), p.k.data(), p.v.data(), o.data(), kSeq, kSeq, d, d);
    // Every segment's loss is a mean over seg tokens; the step's loss their mean over the segments.
    for (auto& g : dout) g /= static_cast<float>(seg);
    attention_bwd(p.q.data(), p.k.data(), p.v.data(), dout.data(), dq.data(), dk.data(), dv.data(), kSeq, kSeq, d, d);
    std::vector<float> dx;
    const auto dw = project_bwd(host_strategy_math(), m, x, dq, dk, dv, kSeq, dx);
    for (int i = 0; i < 3 * kW; ++i) dw_mean[i] += dw[i] / static_cast<float>(segments * dp);
    if (r == my_dp) {
      out["o"] = slice_rows(o, d, me * seg, (me + 1) * seg);
      out["dx"] = slice_rows(dx, d, me * seg, (me + 1) * seg);  // gradient of the sum of segment losses
    }
  }
  out["dw"] = dw_mean;
  return out;
}

}  // namespace

SEQSCALE_STRATEGY(lss, {"lss", "LSS segmented attention: fused k|v all-gather, double gradient averaging", dims,
                        emit, run, reference, 1e-5});

}  // namespace seqscale::comm
