// Suite "steps": one Evoformer block training step (forward + backward) on the GPU with
// naive or fused attention. Axes: model (an Evoformer model file: the crop and channel
// sizes), attn (naive | fused), optional stack (main | extra_msa: the extra-MSA stack's
// block, N_extra rows with global column attention), dtype (fp32 | bf16, default fp32) and
// n_seq / n_res overrides. Every tensor comes from
// the harness's pool, so peak_bytes is the block's measured high-water mark; the model's
// StepProgram of the same block (model/evoformer_block_program.h) is recorded beside it.
#include <cuda_runtime.h>

#include <memory>
#include <string>

#include "harness/bench/registry.h"
#include "harness/steps/step_executor.h"
#include "workloads/config_error.h"
#include "kernels/evoformer_block/evoformer_block.cuh"
#include "model/evoformer_block_program.h"

namespace seqscale {
namespace {

EvoformerBlockDims dims_of(BenchState& s) {
  const EvoformerSpec spec = load_model(s.get_string("model")).evoformer();
  const std::string stack = s.has("stack") ? s.get_string("stack") : "main";
  if (stack != "main" && stack != "extra_msa") throw ConfigError("stack: expected main or extra_msa, got '" + stack + "'");
  EvoformerBlockDims d = stack == "main" ? EvoformerBlockDims::from_spec(spec) : EvoformerBlockDims::extra_msa_from_spec(spec);
  if (s.has("n_seq")) d.n_seq = s.get_int("n_seq");
  if (s.has("n_res")) d.n_res = s.get_int("n_res");
  return d;
}

SEQSCALE_BENCH(evoformer_block_cuda, "evoformer_block", "steps", Backend::kCuda, [](BenchState& s) {
  const EvoformerBlockDims d = dims_of(s);
  const std::string attn = s.get_string("attn");
  if (attn != "naive" && attn != "fused") throw ConfigError("attn: expected naive or fused, got '" + attn + "'");
  const bool fused = attn == "fused";
  const DType io = s.has("dtype") ? s.get_dtype() : DType::kFp32;
  if (io != DType::kFp32 && io != DType::kBf16) throw ConfigError("dtype: the Evoformer block runs in fp32 or bf16");
  const auto program_ptr = std::make_shared<const StepProgram>(build_evoformer_block_program(d, io, fused));
  const StepProgram& program = *program_ptr;
  s.declare_program(program_ptr);
  KernelCost declared;
  for (const StepOp& op : program.ops) {
    if (const auto* c = std::get_if<ComputeOp>(&op)) {
      declared.flops += c->cost.flops;
      declared.bytes += c->cost.bytes;
    }
  }
  s.add_cost(declared);
  s.set_metric("model_peak_bytes", static_cast<double>(program.replay_memory().peak_device_bytes));
  if (!s.executes()) {
    // The model's side: the block's memory is its program's events (weights, inputs,
    // every saved tensor and workspace), replayed through the state's allocator.
    replay_memory_events(program, s);
    s.exec([](void*) {});
    return;
  }

  EvoformerBlockCudaOps ops(nullptr, fused, io, [&](std::size_t bytes) { return s.alloc(bytes); },
                            [&](void* p) { s.release(p); });
  EvoformerBlock<EvoformerBlockCudaOps> block(ops, d);
  std::uint64_t seed = 1;
  for (auto* p : block.params()) s.fill_random(p->w.p, p->w.n, p->w.t, seed++);
  const std::int64_t nm = d.n_seq * d.n_res * d.c_m, nz = d.n_res * d.n_res * d.c_z;
  auto m0 = ops.alloc(nm, MemoryKind::kActivations, "m0"), z0 = ops.alloc(nz, MemoryKind::kActivations, "z0");
  auto dm = ops.alloc(nm, MemoryKind::kActivations, "dm_out"), dz = ops.alloc(nz, MemoryKind::kActivations, "dz_out");
  auto dm0 = ops.alloc(nm, MemoryKind::kActivations, "dm0"), dz0 = ops.alloc(nz, MemoryKind::kActivations, "dz0");
  s.fill_random(m0.p, nm, io, 101);
  s.fill_random(z0.p, nz, io, 102);
  s.fill_random(dm.p, nm, io, 103);
  s.fill_random(dz.p, nz, io, 104);
  s.exec([&](void* stream) {
    ops.set_stream(static_cast<cudaStream_t>(stream));
    block.forward(m0, z0);
    block.backward(dm, dz, dm0, dz0);
  });
});

}  // namespace
}  // namespace seqscale
