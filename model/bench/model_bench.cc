// model_bench: how fast the cost model is. The targets: >= 1,000,000 plan
// evaluations per second on one core, and the whole Figure 9 search (2 models x 3 GPU
// counts x 4 presets, every feasible plan, every length on a 1K grid) under one second.
//   build-model/model/model_bench --benchmark_format=json > results/model/model_bench_<host>.json
#include <benchmark/benchmark.h>

#include "model/estimate.h"
#include "model/search.h"
#include "workloads/specs.h"

namespace seqscale {
namespace {

// One memory evaluation (the search's inner loop) of a checked plan.
void BM_MemoryEvaluation(benchmark::State& state) {
  const ModelSpec m = load_model("genslm-25b");
  const ClusterSpec c = load_cluster("dgx-a100-40g");
  Plan p = parse_plan("tp=8,pp=2,sp=megatron,zero=1,recompute=full,attn=fused,mask=none");
  validate_plan(p, m, 16, RunShape{8192});
  std::int64_t i = 0;
  for (auto _ : state) {
    const MemoryBreakdown mb = estimate_memory(m, c, p, RunShape{1024 * (1 + (i++ & 255)), 1, 0});
    benchmark::DoNotOptimize(mb);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MemoryEvaluation);

// A full estimate: plan check, memory and time breakdowns, throughput.
void BM_FullEstimate(benchmark::State& state) {
  const ModelSpec m = load_model("genslm-25b");
  const ClusterSpec c = load_cluster("dgx-a100-40g");
  const Calibration cal = default_calibration();
  const Plan p = parse_plan("tp=8,pp=2,sp=megatron,zero=1,recompute=full,attn=fused,mask=none");
  std::int64_t i = 0;
  for (auto _ : state) {
    const Estimate e = estimate(m, c, p, 16, RunShape{1024 * (1 + (i++ & 255)), 1, 0}, cal);
    benchmark::DoNotOptimize(e);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_FullEstimate);

// Figure 9 search, bisection per plan (what maxseq does).
void BM_Figure9Search(benchmark::State& state) {
  const ModelSpec models[] = {load_model("genslm-25b"), load_model("genslm-33b")};
  const ClusterSpec c = load_cluster("dgx-a100-40g");
  for (auto _ : state) {
    std::int64_t evals = 0;
    for (const ModelSpec& m : models) {
      for (std::int64_t g : {16, 32, 64}) {
        for (const Preset& p : presets()) evals += max_sequence(m, c, g, p, 1024).plans_evaluated;
      }
    }
    state.counters["evaluations"] = static_cast<double>(evals);
  }
}
BENCHMARK(BM_Figure9Search)->Unit(benchmark::kMillisecond);

// Figure 9 search, brute force: every feasible plan x every length on the 1K grid until it
// stops fitting (up to 2M tokens).
void BM_Figure9ExhaustiveSweep(benchmark::State& state) {
  const ModelSpec models[] = {load_model("genslm-25b"), load_model("genslm-33b")};
  const ClusterSpec c = load_cluster("dgx-a100-40g");
  std::int64_t total = 0;  // over all iterations: a kIsRate counter divides by their total time
  for (auto _ : state) {
    std::int64_t evals = 0;
    for (const ModelSpec& m : models) {
      for (std::int64_t g : {16, 32, 64}) {
        for (const Preset& p : presets()) evals += exhaustive_sweep(m, c, g, p, 1024, 1 << 21, nullptr);
      }
    }
    total += evals;
    state.counters["evaluations"] = static_cast<double>(evals);
  }
  state.counters["evals_per_s"] = benchmark::Counter(static_cast<double>(total), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Figure9ExhaustiveSweep)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace seqscale

BENCHMARK_MAIN();
