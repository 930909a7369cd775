// Pipeline parallelism over send/recv: 1F1B (PipeDream-Flush / Megatron, Narayanan et al.
// 2021) and the interleaved schedule with v model chunks per stage. The model is
// pp * v * kLayersPerChunk layers y = tanh(x W); virtual stage k = chunk * pp + stage
// holds kLayersPerChunk consecutive layers, so activations go stage s -> (s+1) % pp and
// gradients back. Bubble fraction (ANCHORS section 4): (p-1)/m for 1F1B, (p-1)/(v m)
// interleaved. Sends are async (their handles kept to the end of the step), receives wait,
// and messages are matched by a tag naming direction, micro-batch and virtual stage.
#include "comm/strategies/pipeline.h"

#include <algorithm>
#include <cmath>
#include <deque>

namespace seqscale::comm {

std::vector<PipelineSlot> pipeline_schedule(int pp, int stage, int microbatches, int chunks) {
  const int total = microbatches * chunks;
  int warmup = chunks == 1 ? pp - stage - 1 : (pp - stage - 1) * 2 + (chunks - 1) * pp;
  warmup = std::min(warmup, total);
  auto slot = [&](int k, bool fwd) {
    const int group = pp * chunks, in_group = k % group;
    int chunk = in_group / pp;
    if (!fwd) chunk = chunks - 1 - chunk;
    return PipelineSlot{fwd, (k / group) * pp + in_group % pp, chunk};
  };
  std::vector<PipelineSlot> out;
  for (int k = 0; k < warmup; ++k) out.push_back(slot(k, true));
  for (int i = 0; i < total - warmup; ++i) {
    out.push_back(slot(warmup + i, true));
    out.push_back(slot(i, false));
  }
  for (int k = total - warmup; k < total; ++k) out.push_back(slot(k, false));
  return out;
}

namespace {

constexpr int kHidden = 8, kBatch = 2, kLayersPerChunk = 2;
constexpr std::uint64_t kSeed = 600;
constexpr std::int64_t kMsgBytes = std::int64_t{kBatch} * kHidden * 4;

int microbatches(int pp) { return 2 * pp; }
std::vector<float> layer_weight(int layer) { return random_vector(kHidden * kHidden, kSeed + layer, 0.6f); }
std::vector<float> micro_input(int mb, bool grad) { return random_vector(kBatch * kHidden, kSeed + 500 + 2 * mb + grad); }

// Forward through layers [l0, l1): keeps every layer's output for backward.
std::vector<std::vector<float>> forward_layers(StrategyMath& math, std::vector<float> x, int l0, int l1) {
  std::vector<std::vector<float>> acts{x};
  for (int l = l0; l < l1; ++l) {
    const auto w = layer_weight(l);
    std::vector<float> y(x.size());
    math.matmul(x.data(), w.data(), y.data(), kBatch, kHidden, kHidden);
    for (auto& a : y) a = std::tanh(a);
    acts.push_back(y);
    x = y;
  }
  return acts;
}
// Backward through layers [l0, l1) given the saved activations; accumulates dW.
std::vector<float> backward_layers(StrategyMath& math, const std::vector<std::vector<float>>& acts,
                                   std::vector<float> dy, int l0, int l1,
                                   std::vector<float>& dw /* [(l1-l0), H, H] */) {
  for (int l = l1 - 1; l >= l0; --l) {
    const auto& x = acts[l - l0];
    const auto& y = acts[l - l0 + 1];
    for (std::size_t i = 0; i < dy.size(); ++i) dy[i] *= 1.f - y[i] * y[i];
    math.matmul_tn(x.data(), dy.data(), dw.data() + (l - l0) * kHidden * kHidden, kBatch, kHidden, kHidden, true);
    const auto w = layer_weight(l);
    std::vector<float> dx(x.size());
    math.matmul_nt(dy.data(), w.data(), dx.data(), kBatch, kHidden, kHidden);
    dy = dx;
  }
  return dy;
}

int tag(bool fwd, int mb, int vstage) { return (fwd ? 0 : 1) + 2 * (vstage + 64 * mb); }

void declare(int chunks, const RankLayout& l, int rank, StepProgram& p) {
  const int pp = l.group_size(GroupKind::kPipeline), stage = l.group_rank(GroupKind::kPipeline, rank);
  const int vstages = pp * chunks;
  for (const auto& s : pipeline_schedule(pp, stage, microbatches(pp), chunks)) {
    const int k = s.chunk * pp + stage;
    const Phase ph = s.forward ? Phase::kForward : Phase::kBackward;
    const bool has_recv = s.forward ? k > 0 : k < vstages - 1;
    const bool has_send = s.forward ? k < vstages - 1 : k > 0;
    if (has_recv) declare_comm(p, l, Collective::kSendRecv, GroupKind::kPipeline, kMsgBytes, ph);
    if (has_send) declare_comm(p, l, Collective::kSendRecv, GroupKind::kPipeline, kMsgBytes, ph, true);
  }
}

Tensors run(int chunks, Communicator& c, StrategyMath& math, const RankLayout& l) {
  const int pp = l.group_size(GroupKind::kPipeline), stage = c.group_rank(GroupKind::kPipeline);
  const int vstages = pp * chunks, m = microbatches(pp);
  const int next = (stage + 1) % pp, prev = (stage + pp - 1) % pp;
  std::vector<std::vector<std::vector<std::vector<float>>>> saved(chunks, std::vector<std::vector<std::vector<float>>>(m));
  std::vector<std::vector<float>> dw(chunks, std::vector<float>(kLayersPerChunk * kHidden * kHidden, 0.f));
  Tensors out;
  std::deque<std::vector<float>> send_bufs;  // stable addresses until the sends finish
  std::vector<WorkPtr> sends;
  for (const auto& s : pipeline_schedule(pp, stage, m, chunks)) {
    const int k = s.chunk * pp + stage, l0 = k * kLayersPerChunk, l1 = l0 + kLayersPerChunk;
    std::vector<float> buf(kBatch * kHidden);
    if (s.forward) {
      if (k == 0) buf = micro_input(s.microbatch, false);
      else c.recv(GroupKind::kPipeline, buf.data(), kBatch * kHidden, DType::kFp32, prev, tag(true, s.microbatch, k));
      saved[s.chunk][s.microbatch] = forward_layers(math, buf, l0, l1);
      const auto& y = saved[s.chunk][s.microbatch].back();
      if (k == vstages - 1) {
        out["y_mb" + std::to_string(s.microbatch)] = y;
      } else {
        send_bufs.push_back(y);
        sends.push_back(c.isend(GroupKind::kPipeline, send_bufs.back().data(), kBatch * kHidden, DType::kFp32, next,
                                tag(true, s.microbatch, k + 1)));
      }
    } else {
      if (k == vstages - 1) buf = micro_input(s.microbatch, true);
      else c.recv(GroupKind::kPipeline, buf.data(), kBatch * kHidden, DType::kFp32, next, tag(false, s.microbatch, k));
      auto dx = backward_layers(math, saved[s.chunk][s.microbatch], buf, l0, l1, dw[s.chunk]);
      saved[s.chunk][s.microbatch].clear();  // activations freed after backward
      if (k == 0) {
        out["dx_mb" + std::to_string(s.microbatch)] = dx;
      } else {
        send_bufs.push_back(std::move(dx));
        sends.push_back(c.isend(GroupKind::kPipeline, send_bufs.back().data(), kBatch * kHidden, DType::kFp32, prev,
                                tag(false, s.microbatch, k - 1)));
      }
    }
  }
  wait_all(sends);
  for (int ch = 0; ch < chunks; ++ch) out["dw_chunk" + std::to_string(ch)] = dw[ch];
  return out;
}

Tensors reference(int chunks, const RankLayout& l, int rank) {
  const int pp = l.group_size(GroupKind::kPipeline), stage = l.group_rank(GroupKind::kPipeline, rank);
  const int vstages = pp * chunks, layers = vstages * kLayersPerChunk;
  std::vector<float> dw_all(static_cast<std::size_t>(layers) * kHidden * kHidden, 0.f);
  Tensors out;
  for (int mb = 0; mb < microbatches(pp); ++mb) {
    const auto acts = forward_layers(host_strategy_math(), micro_input(mb, false), 0, layers);
    if (stage == (vstages - 1) % pp) out["y_mb" + std::to_string(mb)] = acts.back();
    auto dx = backward_layers(host_strategy_math(), acts, micro_input(mb, true), 0, layers, dw_all);
    if (stage == 0) out["dx_mb" + std::to_string(mb)] = dx;
  }
  const int per = kLayersPerChunk * kHidden * kHidden;
  for (int ch = 0; ch < chunks; ++ch) {
    const int k = ch * pp + stage;
    out["dw_chunk" + std::to_string(ch)] = {dw_all.begin() + k * per, dw_all.begin() + (k + 1) * per};
  }
  return out;
}

StrategyDef pipeline_def(const char* name, const char* summary, int chunks) {
  return {name, summary, [](int n) { return ParallelDims{.pp = n}; },
          [chunks](const RankLayout& l, int r, StepProgram& p) { declare(chunks, l, r, p); },
          [chunks](Communicator& c, StrategyMath& math, const RankLayout& l) { return run(chunks, c, math, l); },
          [chunks](const RankLayout& l, int r) { return reference(chunks, l, r); }, 1e-5};
}

}  // namespace

SEQSCALE_STRATEGY(pipeline_1f1b, pipeline_def("pipeline_1f1b", "1F1B schedule over send/recv", 1));
SEQSCALE_STRATEGY(pipeline_interleaved,
                  pipeline_def("pipeline_interleaved", "interleaved 1F1B, 2 model chunks per stage", 2));

}  // namespace seqscale::comm
