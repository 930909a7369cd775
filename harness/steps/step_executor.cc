#include "harness/steps/step_executor.h"

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace seqscale {

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

}  // namespace seqscale
