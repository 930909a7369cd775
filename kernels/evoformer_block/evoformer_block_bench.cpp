// Suite "steps" on the CPU: one Evoformer block's forward and backward on the fp32 CPU
// executor (EvoformerBlockCpuExecOps) with every tensor from the harness's tracking
// allocator, so the measured peak is the executor's and can be set beside the model's
// program (metric model_peak_bytes; equal by construction, tests/model checks it). Axes as
// the CUDA body (evoformer_block_bench.cu); meant for tiny models (tiny-evoformer), dtype
// fp32 only.
#include <memory>
#include <string>

#include "harness/bench/registry.h"
#include "harness/steps/step_executor.h"
#include "kernels/evoformer_block/evoformer_block_ref.h"
#include "model/evoformer_block_program.h"
#include "workloads/config_error.h"

namespace seqscale {
namespace {

SEQSCALE_BENCH(evoformer_block_cpu, "evoformer_block", "steps", Backend::kCpu, [](BenchState& s) {
  const EvoformerSpec spec = load_model(s.get_string("model")).evoformer();
  const std::string stack = s.has("stack") ? s.get_string("stack") : "main";
  if (stack != "main" && stack != "extra_msa") throw ConfigError("stack: expected main or extra_msa, got '" + stack + "'");
  EvoformerBlockDims d = stack == "main" ? EvoformerBlockDims::from_spec(spec) : EvoformerBlockDims::extra_msa_from_spec(spec);
  if (s.has("n_seq")) d.n_seq = s.get_int("n_seq");
  if (s.has("n_res")) d.n_res = s.get_int("n_res");
  const std::string attn = s.get_string("attn");
  if (attn != "naive" && attn != "fused") throw ConfigError("attn: expected naive or fused, got '" + attn + "'");
  if (s.has("dtype") && s.get_dtype() != DType::kFp32) throw ConfigError("dtype: the CPU block executor is fp32");
  const bool fused = attn == "fused";
  const auto program = std::make_shared<const StepProgram>(build_evoformer_block_program(d, DType::kFp32, fused));
  s.declare_program(program);
  KernelCost declared;
  for (const StepOp& op : program->ops) {
    if (const auto* c = std::get_if<ComputeOp>(&op)) {
      declared.flops += c->cost.flops;
      declared.bytes += c->cost.bytes;
    }
  }
  s.add_cost(declared);
  s.set_metric("model_peak_bytes", static_cast<double>(program->replay_memory().peak_device_bytes));
  if (!s.executes()) {
    replay_memory_events(*program, s);
    s.exec([](void*) {});
    return;
  }
  EvoformerBlockCpuExecOps ops(fused, [&](std::size_t bytes) { return s.alloc(bytes); }, [&](void* p) { s.release(p); });
  EvoformerBlock<EvoformerBlockCpuExecOps> block(ops, d);
  std::uint64_t seed = 1;
  for (auto* p : block.params()) s.fill_random(p->w.p, p->w.n, DType::kFp32, seed++);
  const std::int64_t nm = d.n_seq * d.n_res * d.c_m, nz = d.n_res * d.n_res * d.c_z;
  auto m0 = ops.alloc(nm, MemoryKind::kActivations, "m0"), z0 = ops.alloc(nz, MemoryKind::kActivations, "z0");
  auto dm = ops.alloc(nm, MemoryKind::kActivations, "dm_out"), dz = ops.alloc(nz, MemoryKind::kActivations, "dz_out");
  auto dm0 = ops.alloc(nm, MemoryKind::kActivations, "dm0"), dz0 = ops.alloc(nz, MemoryKind::kActivations, "dz0");
  s.fill_random(m0.p, nm, DType::kFp32, 101);
  s.fill_random(z0.p, nz, DType::kFp32, 102);
  s.fill_random(dm.p, nm, DType::kFp32, 103);
  s.fill_random(dz.p, nz, DType::kFp32, 104);
  s.exec([&](void*) {
    block.forward(m0, z0);
    block.backward(dm, dz, dm0, dz0);
  });
});

}  // namespace
}  // namespace seqscale
