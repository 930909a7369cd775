// Suite "steps": one transformer training step on one rank, as the cost model describes
// it (model/transformer_program.h), executed on the CPU: real allocations for every memory
// event, FLOP-equivalent fp32 GEMMs for every compute op. Axes: model, cluster, gpus, plan,
// seq, micro_batch. Metrics: tokens/s, TFLOP/s, the model's predicted peak and step time
// beside the measured ones. Meant for tiny models (workloads/models/tiny-gpt.json): it is
// the CPU executor the model's memory accounting is checked against.
#include "harness/steps/transformer_step.h"

#include <vector>

#include "harness/steps/step_executor.h"
#include "kernels/gemm/gemm_cpu.h"

namespace seqscale {
namespace {

SEQSCALE_BENCH(transformer_step_cpu, "transformer_step", "steps", Backend::kCpu, [](BenchState& s) {
  const TransformerStepSetup setup = make_transformer_step(s);
  // Memory first, alone: the allocator's high-water mark is then the replay's peak.
  s.set_metric("replay_peak_bytes", static_cast<double>(replay_memory_events(setup.program, s)));
  auto* a = s.alloc_array<float>(setup.tokens * setup.k);
  auto* b = s.alloc_array<float>(setup.k * setup.k);
  auto* c = s.alloc_array<float>(setup.tokens * setup.k);
  s.fill_random(a, setup.tokens * setup.k, DType::kFp32, 1);
  s.fill_random(b, setup.k * setup.k, DType::kFp32, 2);
  s.no_check("synthetic step: FLOP-equivalent GEMMs with no reference output (the real layer is issue 14)");
  s.exec([&](void*) {
    run_compute_ops(setup.program, setup.tokens, setup.k, [&](const GemmShape& g) {
      for (std::int64_t blk = 0; blk < g.blocks; ++blk) gemm_cpu(a, b, c, g.m, g.block_n, g.k);
    });
  });
});

}  // namespace
}  // namespace seqscale
