// CPU offload of optimizer states (ZeRO-Offload, Ren et al. 2021; MindSpore's host
// optimizer: ~3x larger models per GPU count, ANCHORS section 3) on top of ZeRO-2:
// reduce-scatter(avg) of gradients over DP, then my gradient shard streams to the host in
// chunks while the host Adam updates the previous chunk (a copy thread overlaps the
// optimizer), the updated fp32 parameters stream back the same way, and the DP group
// all-gathers them. Optimizer states (m, v, fp32 master) live on the host only: the
// memory model prices them as host bytes. On the MPI backend "device" and host are both
// host memory; the copies and their overlap are real. On the wire it is ZeRO-2
// (workloads/parallel/data_parallel_comm.h): the host copies are not collectives.
#include <algorithm>
#include <cstring>
#include <thread>

#include "comm/strategies/zero.h"

namespace seqscale::comm {
namespace {

constexpr int kChunks = 4;

CommOps emit(const RankLayout& l, int) {
  CommOps ops;
  for (int step = 0; step < ZeroModel::kSteps; ++step) data_parallel_grads(ops, zero_states(l), 2);
  return ops;
}

// Chunked pipeline: copy chunk i+1 in (device -> host) while `work` runs on chunk i.
template <typename Work>
void overlapped(const float* src, float* dst, std::int64_t n, Work work) {
  const std::int64_t chunk = (n + kChunks - 1) / kChunks;
  auto copy = [&](int i) {
    const std::int64_t b = i * chunk, e = std::min(n, b + chunk);
    if (b < e) std::memcpy(dst + b, src + b, static_cast<std::size_t>(e - b) * sizeof(float));
  };
  copy(0);
  for (int i = 0; i < kChunks; ++i) {
    std::thread next;
    if (i + 1 < kChunks) next = std::thread(copy, i + 1);
    const std::int64_t b = i * chunk, e = std::min(n, b + chunk);
    if (b < e) work(b, e);
    if (next.joinable()) next.join();
  }
}

Tensors run(Communicator& c, StrategyMath& math, const RankLayout& l) {
  const int n = l.group_size(GroupKind::kData), me = c.group_rank(GroupKind::kData);
  const std::int64_t shard = ZeroModel::kParams / n;
  const int t = ZeroModel::kTokens, h = ZeroModel::kHidden;
  const auto init = zero_initial_params();
  std::vector<float> w = init;                       // "device" parameters
  std::vector<float> dev_grad(shard);                // "device" gradient shard
  std::vector<float> host_master(init.begin() + me * shard, init.begin() + (me + 1) * shard);
  std::vector<float> host_grad(shard), host_m(shard, 0.f), host_v(shard, 0.f), dev_shard(shard);
  for (int step = 0; step < ZeroModel::kSteps; ++step) {
    const auto x = zero_batch(step, me, false), dy = zero_batch(step, me, true);
    std::vector<float> g(ZeroModel::kParams);
    math.matmul_tn(x.data(), dy.data(), g.data(), t, h, h);
    c.set_phase(Phase::kBackward);
    c.reduce_scatter(GroupKind::kData, g.data(), dev_grad.data(), shard, DType::kFp32, ReduceOp::kAvg);
    // device -> host gradient copy overlapped with the host Adam of the previous chunk.
    // Host adam_step, not math.adam_step, whatever math is: running the optimizer on the
    // CPU is what this strategy is (its states never exist on the device).
    overlapped(dev_grad.data(), host_grad.data(), shard, [&](std::int64_t b, std::int64_t e) {
      adam_step(host_master.data() + b, host_grad.data() + b, host_m.data() + b, host_v.data() + b, e - b, step + 1);
    });
    // host -> device parameter copy (chunked; nothing left to overlap with on the CPU)
    overlapped(host_master.data(), dev_shard.data(), shard, [](std::int64_t, std::int64_t) {});
    c.set_phase(Phase::kOptimizer);
    c.all_gather(GroupKind::kData, dev_shard.data(), w.data(), shard, DType::kFp32);
  }
  return {{"w", w}, {"grad_shard", host_grad}};
}

Tensors reference(const RankLayout& l, int rank) {
  const int n = l.group_size(GroupKind::kData), me = l.group_rank(GroupKind::kData, rank);
  const std::int64_t shard = ZeroModel::kParams / n;
  auto w = zero_initial_params();
  std::vector<float> m(ZeroModel::kParams, 0.f), v(ZeroModel::kParams, 0.f), g;
  for (int step = 0; step < ZeroModel::kSteps; ++step) {
    g.assign(ZeroModel::kParams, 0.f);
    for (int r = 0; r < n; ++r) {
      const auto gr = zero_local_grad(step, r);
      for (std::int64_t i = 0; i < ZeroModel::kParams; ++i) g[i] += gr[i];
    }
    for (auto& x : g) x /= static_cast<float>(n);
    adam_step(w.data(), g.data(), m.data(), v.data(), ZeroModel::kParams, step + 1);
  }
  return {{"w", w}, {"grad_shard", {g.begin() + me * shard, g.begin() + (me + 1) * shard}}};
}

}  // namespace

SEQSCALE_STRATEGY(cpu_offload, {"cpu_offload", "ZeRO-2 with optimizer states and Adam on the host, overlapped copies",
                                [](int n) { return ParallelDims{.dp = n}; }, emit, run, reference, 1e-5});

}  // namespace seqscale::comm
