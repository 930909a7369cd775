// Pipeline parallelism over send/recv: 1F1B (PipeDream-Flush / Megatron, Narayanan et al.
// 2021) and the interleaved schedule with v model chunks per stage, as
// workloads/parallel/pipeline_comm.h defines them (its schedule, its transfers). The
// model is pp * v * kLayersPerChunk layers y = tanh(x W); virtual stage k = chunk * pp +
// stage holds kLayersPerChunk consecutive layers, so activations go stage s -> (s+1) % pp
// and gradients back. Bubble fraction (ANCHORS section 4): (p-1)/m for 1F1B, (p-1)/(v m)
// interleaved. Sends are async (their handles kept to the end of the step), receives
// wait, and messages are matched by a tag naming direction, micro-batch and virtual stage.
// With tp > 1 (4 ranks or more: tp 2) every TP rank of a stage holds the whole boundary
// tensor, as after Megatron's g all-reduce, and the boundary goes in Megatron's
// scatter/gather form (s4.1): each TP rank sends its 1/tp slice to the same TP rank of the
// next stage, which all-gathers the slices over its TP group.
#include "comm/strategies/pipeline.h"

#include <cmath>
#include <deque>

#include "workloads/parallel/pipeline_comm.h"

namespace seqscale::comm {

namespace {
constexpr int kHidden = 8, kBatch = 2, kLayersPerChunk = 2;
constexpr int kMsg = kBatch * kHidden;  // boundary elements; kMsg % tp == 0 for tp <= 8
constexpr std::uint64_t kSeed = 600;
int microbatches(int pp) { return 2 * pp; }
}  // namespace

PipelineStep pipeline_step(const RankLayout& l, int rank, int chunks) {
  PipelineStep s;
  s.plan = toy_plan(l);
  if (chunks > 1) s.plan.schedule = PipeSchedule::kInterleaved, s.plan.vpp = chunks;
  s.spec = toy_transformer(kHidden);
  s.spec.layers = s.plan.pp * chunks * kLayersPerChunk;
  // The boundary [kBatch, kHidden]: kBatch tokens of one sequence.
  s.shape = RunShape{kBatch, 1, static_cast<std::int64_t>(s.plan.dp) * microbatches(s.plan.pp)};
  s.stage = l.group_rank(GroupKind::kPipeline, rank);
  return s;
}

namespace {

ParallelDims dims(int world) { return world >= 4 ? ParallelDims{.tp = 2, .pp = world / 2} : ParallelDims{.pp = world}; }

CommOps emit(int chunks, const RankLayout& l, int rank) {
  const PipelineStep s = pipeline_step(l, rank, chunks);
  const int m = static_cast<int>(micro_batches(s.plan, s.shape));
  CommOps ops;
  for_each_pipeline_slot(s.plan.pp, s.stage, m, chunks, [&](const PipelineSlot& slot) {
    const Phase ph = slot.forward ? Phase::kForward : Phase::kBackward;
    const VirtualStage vs = virtual_stage(s.plan, s.stage, slot.chunk);
    pipeline_pass_open(ops, s.spec, s.plan, s.shape, vs, ph);
    pipeline_pass_close(ops, s.spec, s.plan, s.shape, vs, ph);
  });
  return ops;
}

std::vector<float> layer_weight(int layer) { return random_vector(kHidden * kHidden, kSeed + layer, 0.6f); }
std::vector<float> micro_input(int mb, bool grad) { return random_vector(kMsg, kSeed + 500 + 2 * mb + grad); }

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

// The boundary transfers of one rank, in scatter/gather form when tp > 1.
class Boundary {
 public:
  Boundary(Communicator& c, int tp) : c_(c), tp_(tp), slice_(kMsg / tp), me_(c.group_rank(GroupKind::kTensor)) {}
  // Sends this TP rank's slice of `x` to pipeline rank `peer`; the send completes by wait_all().
  void send(std::vector<float> x, int peer, int tag) {
    bufs_.emplace_back(x.begin() + me_ * slice_, x.begin() + (me_ + 1) * slice_);
    sends_.push_back(c_.isend(GroupKind::kPipeline, bufs_.back().data(), slice_, DType::kFp32, peer, tag));
  }
  // Receives this TP rank's slice from pipeline rank `peer` and rebuilds the whole tensor.
  std::vector<float> recv(int peer, int tag) {
    std::vector<float> mine(static_cast<std::size_t>(slice_)), whole(kMsg);
    c_.recv(GroupKind::kPipeline, mine.data(), slice_, DType::kFp32, peer, tag);
    if (tp_ == 1) return mine;
    c_.all_gather(GroupKind::kTensor, mine.data(), whole.data(), slice_, DType::kFp32);
    return whole;
  }
  void wait_all() { comm::wait_all(sends_); }

 private:
  Communicator& c_;
  const int tp_, slice_, me_;
  std::deque<std::vector<float>> bufs_;  // stable addresses until the sends finish
  std::vector<WorkPtr> sends_;
};

Tensors run(int chunks, Communicator& c, StrategyMath& math, const RankLayout& l) {
  const int pp = l.group_size(GroupKind::kPipeline), stage = c.group_rank(GroupKind::kPipeline);
  const int vstages = pp * chunks, m = microbatches(pp);
  const int next = (stage + 1) % pp, prev = (stage + pp - 1) % pp;
  std::vector<std::vector<std::vector<std::vector<float>>>> saved(chunks, std::vector<std::vector<std::vector<float>>>(m));
  std::vector<std::vector<float>> dw(chunks, std::vector<float>(kLayersPerChunk * kHidden * kHidden, 0.f));
  Tensors out;
  Boundary boundary(c, l.group_size(GroupKind::kTensor));
  for (const auto& s : pipeline_schedule(pp, stage, m, chunks)) {
    const int k = s.chunk * pp + stage, l0 = k * kLayersPerChunk, l1 = l0 + kLayersPerChunk;
    c.set_phase(s.forward ? Phase::kForward : Phase::kBackward);
    if (s.forward) {
      const auto x = k == 0 ? micro_input(s.microbatch, false) : boundary.recv(prev, tag(true, s.microbatch, k));
      saved[s.chunk][s.microbatch] = forward_layers(math, x, l0, l1);
      const auto& y = saved[s.chunk][s.microbatch].back();
      if (k == vstages - 1) out["y_mb" + std::to_string(s.microbatch)] = y;
      else boundary.send(y, next, tag(true, s.microbatch, k + 1));
    } else {
      const auto dy = k == vstages - 1 ? micro_input(s.microbatch, true) : boundary.recv(next, tag(false, s.microbatch, k));
      auto dx = backward_layers(math, saved[s.chunk][s.microbatch], dy, l0, l1, dw[s.chunk]);
      saved[s.chunk][s.microbatch].clear();  // activations freed after backward
      if (k == 0) out["dx_mb" + std::to_string(s.microbatch)] = dx;
      else boundary.send(std::move(dx), prev, tag(false, s.microbatch, k - 1));
    }
  }
  boundary.wait_all();
  for (int ch = 0; ch < chunks; ++ch) out["dw_chunk" + std::to_string(ch)] = dw[ch];
  return out;
}

// Every TP rank of a stage holds the same tensors.
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
  return {name, summary, dims, [chunks](const RankLayout& l, int r) { return emit(chunks, l, r); },
          [chunks](Communicator& c, StrategyMath& math, const RankLayout& l) { return run(chunks, c, math, l); },
          [chunks](const RankLayout& l, int r) { return reference(chunks, l, r); }, 1e-5};
}

}  // namespace

SEQSCALE_STRATEGY(pipeline_1f1b, pipeline_def("pipeline_1f1b", "1F1B schedule over send/recv, scatter/gather over TP",
                                              1));
SEQSCALE_STRATEGY(pipeline_interleaved,
                  pipeline_def("pipeline_interleaved", "interleaved 1F1B, 2 model chunks per stage", 2));

}  // namespace seqscale::comm
