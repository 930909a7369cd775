// Suite "steps" on the CPU: one Evoformer block's forward and backward on the fp32 CPU
// executor (EvoformerBlockCpuExecOps) with every tensor from the harness's tracking
// allocator, so the measured peak is the executor's and can be set beside the model's
// program (metric model_peak_bytes; equal by construction, tests/model checks it). Axes as
// the CUDA body (evoformer_block_bench.cu); meant for tiny models (tiny-evoformer), dtype
// fp32 only. Each point's gradients are checked against the double reference block before
// it is timed. The axes and the model's side are shared with the CUDA body
// (evoformer_block_bench.h).
#include <initializer_list>
#include <memory>
#include <string>
#include <variant>

#include "harness/bench/registry.h"
#include "harness/steps/step_executor.h"
#include "layers/evoformer_block/evoformer_block_bench.h"
#include "layers/evoformer_block/evoformer_block_ref.h"
#include "layers/evoformer_block/evoformer_block_program.h"
#include "workloads/config_error.h"

namespace seqscale {
namespace {

SEQSCALE_BENCH(evoformer_block_cpu, "evoformer_block", "steps", Backend::kCpu, [](BenchState& s) {
  EvoformerBlockPoint pt;
  if (!setup_evoformer_block_point(s, {DType::kFp32}, pt)) return;
  EvoformerBlockCpuExecOps ops(pt.fused, [&](std::size_t bytes) { return s.alloc(bytes); }, [&](void* p) { s.release(p); });
  EvoformerBlock<EvoformerBlockCpuExecOps> block(ops, pt.dims);
  std::uint64_t seed = 1;
  for (auto* p : block.params()) {
    s.fill_random(p->w.p, p->w.n, DType::kFp32, seed++, -kEvoformerBlockWeightRange, kEvoformerBlockWeightRange);
  }
  EvoformerBlockIo<EvoformerBlockCpuExecOps> io(ops, s, pt.dims, DType::kFp32);
  const auto run = [&](void*) {
    block.forward(io.m0, io.z0);
    block.backward(io.dm, io.dz, io.dm0, io.dz0);
  };
  // The fp32 executor against the double reference: the CPU twin of the CUDA block's check.
  if (evoformer_block_checkable(s, pt)) s.check(run, [&] { return check_evoformer_block(s, pt, block, io); });
  s.exec(run);
});

}  // namespace

bool setup_evoformer_block_point(BenchState& s, std::initializer_list<DType> dtypes_allowed, EvoformerBlockPoint& out) {
  const std::string model_name = s.get_string("model");
  const ModelSpec model = load_model(model_name);
  if (!model.is_evoformer()) throw ConfigError("model: '" + model_name + "' is not an Evoformer model");
  const EvoformerSpec& spec = model.evoformer();
  const std::string stack = s.has("stack") ? s.get_string("stack") : "main";
  if (stack != "main" && stack != "extra_msa") throw ConfigError("stack: expected main or extra_msa, got '" + stack + "'");
  out.dims = stack == "main" ? EvoformerBlockDims::from_spec(spec) : EvoformerBlockDims::extra_msa_from_spec(spec);
  if (s.has("n_seq")) out.dims.n_seq = s.get_int("n_seq");
  if (s.has("n_res")) out.dims.n_res = s.get_int("n_res");
  if (out.dims.n_seq <= 0 || out.dims.n_res <= 0) throw ConfigError("n_seq, n_res: must be positive");
  const std::string attn = s.get_string("attn");
  if (attn != "naive" && attn != "fused") throw ConfigError("attn: expected naive or fused, got '" + attn + "'");
  out.fused = attn == "fused";
  out.io = s.has("dtype") ? s.get_dtype() : DType::kFp32;
  bool allowed = false;
  for (DType t : dtypes_allowed) allowed = allowed || t == out.io;
  if (!allowed) throw ConfigError("dtype: '" + std::string(dtype_name(out.io)) + "' is not run by this backend's Evoformer block");
  out.program = std::make_shared<const StepProgram>(build_evoformer_block_program(out.dims, out.io, out.fused));
  s.declare_program(out.program);
  KernelCost declared;
  for (const StepOp& op : out.program->ops) {
    if (const auto* c = std::get_if<ComputeOp>(&op)) {
      declared.flops += c->cost.flops;
      declared.bytes += c->cost.bytes;
    }
  }
  s.add_cost(declared);
  s.set_metric("model_peak_bytes", static_cast<double>(out.program->replay_memory().peak_device_bytes));
  if (s.executes()) return true;
  // The model's side: the block's memory is its program's events (weights, inputs, every
  // saved tensor and workspace), replayed through the state's allocator.
  replay_memory_events(*out.program, s);
  s.exec([](void*) {});
  return false;
}

}  // namespace seqscale
