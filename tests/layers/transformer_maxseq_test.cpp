// The measured longest sequence on the CPU executor against the model's, as
// `SEQSCALE_CPU_MEMORY_BUDGET=B seqscale bench --maxseq seq --cluster <B-byte cluster>` finds
// them, in process and at a budget small enough for CI: the executor runs the stack under
// an allocator that throws past the budget (OOM as data), the model replays the recorded
// program; both bisect the same grid (harness/measured_max_seq.h) and must agree.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <stdexcept>
#include <vector>

#include "harness/measured_max_seq.h"
#include "layers/transformer_layer/transformer_layer_cpu.h"
#include "layers/transformer_layer/transformer_layer_program.h"

namespace seqscale {
namespace {

struct Oom : std::runtime_error {
  Oom() : std::runtime_error("over budget") {}
};

TEST(TransformerMaxSeq, MeasuredEqualsPredictedOnEveryPlan) {
  constexpr std::int64_t kBudget = 6'000'000;  // 6 MB: the materialized plans stop near 300 tokens
  const TransformerSpec t = load_model("tiny-gpt").transformer();
  std::vector<std::int64_t> grid;
  for (std::int64_t s = 64; s <= 1024; s += 32) grid.push_back(s);
  const auto t0 = std::chrono::steady_clock::now();
  for (const char* text : {"attn=materialized,recompute=none", "attn=materialized,recompute=selective,mask=bool",
                           "attn=materialized,recompute=full", "attn=fused,recompute=none"}) {
    SCOPED_TRACE(text);
    const Plan plan = parse_plan(text);
    auto dims = [&](std::int64_t seq) {
      TransformerStackDims d;
      d.layer = TransformerLayerDims::from(t, plan, seq, 1);
      d.layers = t.layers;
      d.vocab = t.vocab;
      d.vocab_chunk = 128;
      d.learned_positions = t.position == PositionEmbedding::kLearned;
      d.mask = plan.mask;
      return d;
    };
    auto measured = [&](std::size_t i) -> std::optional<bool> {
      std::int64_t live = 0;
      std::map<void*, std::int64_t> sizes;
      TransformerExecOps ops(
          [&](std::size_t bytes) -> void* {
            if (live + static_cast<std::int64_t>(bytes) > kBudget) throw Oom();
            void* p = ::operator new(bytes);
            sizes[p] = static_cast<std::int64_t>(bytes);
            live += static_cast<std::int64_t>(bytes);
            return p;
          },
          [&](void* p) {
            live -= sizes[p];
            sizes.erase(p);
            ::operator delete(p);
          });
      try {
        TransformerStackStep<TransformerExecOps> step(ops, dims(grid[i]));
        step.run();
      } catch (const Oom&) {
        return false;
      }
      return true;
    };
    auto predicted = [&](std::size_t i) -> std::optional<bool> {
      return build_transformer_stack_program(dims(grid[i]), DType::kFp32).replay_memory().peak_device_bytes <= kBudget;
    };
    const auto m = bisect_largest_feasible(grid.size(), measured);
    const auto p = bisect_largest_feasible(grid.size(), predicted);
    ASSERT_TRUE(m.has_value());
    ASSERT_TRUE(p.has_value());
    std::printf("%-50s measured max %lld, predicted %lld\n", text, (long long)grid[*m], (long long)grid[*p]);
    EXPECT_EQ(grid[*m], grid[*p]);  // within 5% by construction of the grid; equal in fact
    EXPECT_LT(*m, grid.size() - 1) << "the grid should bracket the limit";
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 60.0);
}

}  // namespace
}  // namespace seqscale
