// MoE expert parallelism (GShard / DeepSpeed-MoE; MindSpore's AllToAll dispatch, ANCHORS
// section 3) on the EP group: E experts y = tanh(x W_e), E/ep per rank, a replicated
// top-k softmax router. Tokens go to their experts in a capacity-padded all-to-all
// (capacity C = ceil(1.25 T k / E) slots per source rank and expert; tokens beyond it are
// dropped, in token order), the experts run, and a second all-to-all combines the outputs
// weighted by the router probabilities. Backward mirrors both all-to-alls; the router's
// gradient, a dense weight's, is all-reduced over the data-parallel ranks (here the same
// ranks as the experts'). One MoE layer of workloads/parallel/moe_comm.h (which also
// gives C), then the data-parallel reduction of data_parallel_comm.h.
#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>

#include "comm/strategies/strategy.h"
#include "workloads/parallel/data_parallel_comm.h"
#include "workloads/parallel/moe_comm.h"

namespace seqscale::comm {
namespace {

constexpr int kExperts = 8, kTokens = 6, kHidden = 4, kTopK = 2;  // kExperts % ep == 0 for ep <= 8
constexpr std::uint64_t kSeed = 900;
constexpr RunShape kShape{kTokens, 1, 1};

TransformerSpec spec() {
  TransformerSpec t = toy_transformer(kHidden);
  t.moe_experts = kExperts, t.moe_top_k = kTopK, t.moe_capacity_factor = 1.25;
  return t;
}
// C slots per expert and source rank, from the emitter's formula (2 here); the dispatch
// buffer [E][C][H] is what each all-to-all sends.
const int kCapacity = static_cast<int>(moe_capacity(moe_shape(spec(), Plan{}, kShape)));
const int kSlotFloats = kExperts * kCapacity * kHidden;

CommOps emit(const RankLayout& l, int) {
  const Plan p = toy_plan(l);
  CommOps ops;
  for (Phase ph : {Phase::kForward, Phase::kBackward}) moe_dispatch_combine(ops, moe_shape(spec(), p, kShape), ph);
  data_parallel_grads(ops, ReplicatedStates{kHidden * kExperts, p.dp, 4.0, 4.0}, p.zero);  // the router, fp32
  return ops;
}

std::vector<float> router() { return random_vector(kHidden * kExperts, kSeed, 1.f); }
std::vector<float> expert_w(int e) { return random_vector(kHidden * kHidden, kSeed + 10 + e, 0.7f); }
std::vector<float> tokens(int rank, bool grad) { return random_vector(kTokens * kHidden, kSeed + 100 + 2 * rank + grad); }

struct Route {
  std::vector<float> prob;                          // [T, E]
  std::vector<std::array<int, kTopK>> expert, slot;  // slot -1: dropped
};
Route route(StrategyMath& math, const std::vector<float>& x, const std::vector<float>& wr) {
  Route r;
  r.prob.resize(kTokens * kExperts);
  math.matmul(x.data(), wr.data(), r.prob.data(), kTokens, kHidden, kExperts);
  for (int t = 0; t < kTokens; ++t) {
    float* p = r.prob.data() + t * kExperts;
    const float mx = *std::max_element(p, p + kExperts);
    double sum = 0;
    for (int e = 0; e < kExperts; ++e) sum += (p[e] = std::exp(p[e] - mx));
    for (int e = 0; e < kExperts; ++e) p[e] = static_cast<float>(p[e] / sum);
  }
  std::array<int, kExperts> used{};
  for (int t = 0; t < kTokens; ++t) {
    std::array<int, kExperts> order;
    std::iota(order.begin(), order.end(), 0);
    const float* p = r.prob.data() + t * kExperts;
    std::stable_sort(order.begin(), order.end(), [p](int a, int b) { return p[a] > p[b]; });
    std::array<int, kTopK> ex{}, sl{};
    for (int i = 0; i < kTopK; ++i) {
      ex[i] = order[i];
      sl[i] = used[ex[i]] < kCapacity ? used[ex[i]]++ : -1;
    }
    r.expert.push_back(ex);
    r.slot.push_back(sl);
  }
  return r;
}

// Expert e on `rows` rows: out = tanh(in W_e); backward returns d(in), accumulates dW.
void expert_fwd(StrategyMath& math, int e, const float* in, float* out, int rows) {
  const auto w = expert_w(e);
  math.matmul(in, w.data(), out, rows, kHidden, kHidden);
  for (int i = 0; i < rows * kHidden; ++i) out[i] = std::tanh(out[i]);
}
void expert_bwd(StrategyMath& math, int e, const float* in, const float* out, const float* dout, float* din, float* dw,
                int rows) {
  const auto w = expert_w(e);
  std::vector<float> da(static_cast<std::size_t>(rows) * kHidden);
  for (int i = 0; i < rows * kHidden; ++i) da[i] = dout[i] * (1.f - out[i] * out[i]);
  math.matmul_tn(in, da.data(), dw, rows, kHidden, kHidden, true);
  math.matmul_nt(da.data(), w.data(), din, rows, kHidden, kHidden);
}

// Combine weights' backward: router gradient pieces for this rank's tokens.
void router_bwd(StrategyMath& math, const Route& r, const std::vector<float>& x, const std::vector<float>& dprob,
                const std::vector<float>& wr, std::vector<float>& dx, std::vector<float>& dwr) {
  std::vector<float> dlogits(kTokens * kExperts);
  for (int t = 0; t < kTokens; ++t) {
    double dot = 0;
    for (int e = 0; e < kExperts; ++e) dot += static_cast<double>(r.prob[t * kExperts + e]) * dprob[t * kExperts + e];
    for (int e = 0; e < kExperts; ++e)
      dlogits[t * kExperts + e] = static_cast<float>(r.prob[t * kExperts + e] * (dprob[t * kExperts + e] - dot));
  }
  math.matmul_tn(x.data(), dlogits.data(), dwr.data(), kTokens, kHidden, kExperts, true);
  math.matmul_nt(dlogits.data(), wr.data(), dx.data(), kTokens, kExperts, kHidden, true);
}

// Source side of one rank, given a function that maps the dispatch buffer [E][C][H] to
// the combined expert outputs and one that maps d(outputs) back to d(inputs).
template <typename Forward, typename Backward>
Tensors source_side(StrategyMath& math, const std::vector<float>& x, const std::vector<float>& g,
                    const std::vector<float>& wr, Forward fwd, Backward bwd, std::vector<float>& dwr) {
  const Route r = route(math, x, wr);
  std::vector<float> disp(kSlotFloats, 0.f);
  for (int t = 0; t < kTokens; ++t)
    for (int i = 0; i < kTopK; ++i)
      if (r.slot[t][i] >= 0) std::copy_n(&x[t * kHidden], kHidden, &disp[(r.expert[t][i] * kCapacity + r.slot[t][i]) * kHidden]);
  const std::vector<float> comb = fwd(disp);
  std::vector<float> y(kTokens * kHidden, 0.f), dcomb(kSlotFloats, 0.f), dprob(kTokens * kExperts, 0.f);
  for (int t = 0; t < kTokens; ++t)
    for (int i = 0; i < kTopK; ++i) {
      if (r.slot[t][i] < 0) continue;
      const int e = r.expert[t][i], base = (e * kCapacity + r.slot[t][i]) * kHidden;
      const float p = r.prob[t * kExperts + e];
      double dp = 0;
      for (int h = 0; h < kHidden; ++h) {
        y[t * kHidden + h] += p * comb[base + h];
        dcomb[base + h] = p * g[t * kHidden + h];
        dp += static_cast<double>(g[t * kHidden + h]) * comb[base + h];
      }
      dprob[t * kExperts + e] = static_cast<float>(dp);
    }
  const std::vector<float> ddisp = bwd(dcomb);
  std::vector<float> dx(kTokens * kHidden, 0.f);
  for (int t = 0; t < kTokens; ++t)
    for (int i = 0; i < kTopK; ++i)
      if (r.slot[t][i] >= 0)
        for (int h = 0; h < kHidden; ++h)
          dx[t * kHidden + h] += ddisp[(r.expert[t][i] * kCapacity + r.slot[t][i]) * kHidden + h];
  router_bwd(math, r, x, dprob, wr, dx, dwr);
  return {{"y", y}, {"dx", dx}};
}

Tensors run(Communicator& c, StrategyMath& math, const RankLayout& l) {
  const int ep = l.group_size(GroupKind::kExpert), me = c.group_rank(GroupKind::kExpert);
  const int el = kExperts / ep, block = el * kCapacity * kHidden;
  const auto wr = router();
  std::vector<float> in(kSlotFloats), out(kSlotFloats), dwe(static_cast<std::size_t>(el) * kHidden * kHidden, 0.f);
  std::vector<float> dwr(kHidden * kExperts, 0.f);
  auto fwd = [&](const std::vector<float>& disp) {
    c.all_to_all(GroupKind::kExpert, disp.data(), in.data(), block, DType::kFp32);  // [src][el][C][H]
    for (int src = 0; src < ep; ++src)
      for (int e = 0; e < el; ++e)
        expert_fwd(math, me * el + e, &in[src * block + e * kCapacity * kHidden],
                   &out[src * block + e * kCapacity * kHidden], kCapacity);
    std::vector<float> comb(kSlotFloats);
    c.all_to_all(GroupKind::kExpert, out.data(), comb.data(), block, DType::kFp32);
    return comb;
  };
  auto bwd = [&](const std::vector<float>& dcomb) {
    c.set_phase(Phase::kBackward);
    std::vector<float> dout(kSlotFloats), din(kSlotFloats), ddisp(kSlotFloats);
    c.all_to_all(GroupKind::kExpert, dcomb.data(), dout.data(), block, DType::kFp32);
    for (int src = 0; src < ep; ++src)
      for (int e = 0; e < el; ++e) {
        const int off = src * block + e * kCapacity * kHidden;
        expert_bwd(math, me * el + e, &in[off], &out[off], &dout[off], &din[off], &dwe[e * kHidden * kHidden],
                   kCapacity);
      }
    c.all_to_all(GroupKind::kExpert, din.data(), ddisp.data(), block, DType::kFp32);
    return ddisp;
  };
  Tensors res = source_side(math, tokens(me, false), tokens(me, true), wr, fwd, bwd, dwr);
  c.all_reduce(GroupKind::kData, dwr.data(), dwr.data(), kHidden * kExperts, DType::kFp32);
  res["dw_experts"] = dwe;
  res["dw_router"] = dwr;
  return res;
}

Tensors reference(const RankLayout& l, int rank) {
  const int ep = l.group_size(GroupKind::kExpert), me = l.group_rank(GroupKind::kExpert, rank), el = kExperts / ep;
  StrategyMath& host = host_strategy_math();
  const auto wr = router();
  std::vector<float> dwe_all(static_cast<std::size_t>(kExperts) * kHidden * kHidden, 0.f), dwr(kHidden * kExperts, 0.f);
  Tensors mine;
  for (int r = 0; r < ep; ++r) {
    std::vector<float> out(kSlotFloats);
    std::vector<float> disp_saved;
    auto fwd = [&](const std::vector<float>& disp) {
      disp_saved = disp;
      for (int e = 0; e < kExperts; ++e)
        expert_fwd(host, e, &disp[e * kCapacity * kHidden], &out[e * kCapacity * kHidden], kCapacity);
      return out;
    };
    auto bwd = [&](const std::vector<float>& dcomb) {
      std::vector<float> ddisp(kSlotFloats);
      for (int e = 0; e < kExperts; ++e) {
        const int off = e * kCapacity * kHidden;
        expert_bwd(host, e, &disp_saved[off], &out[off], &dcomb[off], &ddisp[off], &dwe_all[e * kHidden * kHidden],
                   kCapacity);
      }
      return ddisp;
    };
    Tensors t = source_side(host, tokens(r, false), tokens(r, true), wr, fwd, bwd, dwr);
    if (r == me) mine = t;
  }
  const int per = kHidden * kHidden;
  mine["dw_experts"] = {dwe_all.begin() + me * el * per, dwe_all.begin() + (me + 1) * el * per};
  mine["dw_router"] = dwr;
  return mine;
}

}  // namespace

SEQSCALE_STRATEGY(moe, {"moe_expert_parallel", "top-k router, capacity-padded all-to-all dispatch and combine",
                        [](int n) { return ParallelDims{.dp = n, .ep = n}; }, emit, run, reference, 1e-5});

}  // namespace seqscale::comm
