#include "harness/steps/step_executor.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>

#include "harness/nvtx.h"

namespace seqscale {

GemmShape gemm_equivalent(const ComputeOp& op, std::int64_t tokens, std::int64_t k) {
  GemmShape g;
  g.m = std::max<std::int64_t>(1, tokens);
  g.k = std::max<std::int64_t>(1, k);
  g.n = std::max<std::int64_t>(1, std::llround(op.cost.flops / (2.0 * static_cast<double>(g.m) * static_cast<double>(g.k))));
  g.block_n = std::min(g.n, g.k);
  g.blocks = (g.n + g.block_n - 1) / g.block_n;
  return g;
}

std::int64_t replay_memory_events(const StepProgram& program, BenchState& state) {
  std::map<std::pair<std::string, std::int64_t>, std::vector<void*>> live;
  std::int64_t live_bytes = 0, peak = 0;
  for (const auto& op : program.ops) {
    const auto* e = std::get_if<MemoryEvent>(&op);
    if (!e || e->on_host || e->bytes == 0) continue;
    if (e->bytes > 0) {
      live[{e->tag, e->bytes}].push_back(state.alloc(static_cast<std::size_t>(e->bytes)));
      live_bytes += e->bytes;
      peak = std::max(peak, live_bytes);
    } else {
      auto& stack = live[{e->tag, -e->bytes}];
      if (stack.empty()) continue;  // a free without its alloc: nothing to give back
      state.release(stack.back());
      stack.pop_back();
      live_bytes += e->bytes;
    }
  }
  for (auto& [key, blocks] : live) {
    for (void* p : blocks) state.release(p);
  }
  return peak;
}

void run_compute_ops(const StepProgram& program, std::int64_t tokens, std::int64_t k,
                     const std::function<void(const GemmShape&)>& gemm) {
  // One NVTX range per run of ops of the same phase, so a trace shows forward, backward,
  // recompute and optimizer spans of the step.
  std::optional<NvtxRange> range;
  std::optional<Phase> current;
  for (const auto& op : program.ops) {
    const auto* c = std::get_if<ComputeOp>(&op);
    if (!c || c->cost.flops <= 0) continue;
    if (current != c->phase) {
      range.reset();
      range.emplace(std::string(phase_name(c->phase)));
      current = c->phase;
    }
    gemm(gemm_equivalent(*c, tokens, k));
  }
}

}  // namespace seqscale
