// Suite "steps" on the CPU: the GPT layer ("transformer_layer": one layer's forward and
// backward) and a training step of a stack of them ("transformer_stack": embedding, k
// layers, chunked cross-entropy, Adam), run for real on the fp32 executor
// (TransformerExecOps) with every tensor from the harness's tracking allocator. So
// metrics.peak_bytes is a measurement, set beside model_peak_bytes, the replay of the
// recorded program of the same point (transformer_layer_program.h): they agree because
// both run transformer_layer_def.h, and a change to one that the other does not see
// breaks tests/layers/. Each point's gradients (and the stack's loss) are checked against
// the double reference before it is timed, within the reference's budget.
//
// Axes: transformer_layer_bench.h (dtype fp32 only here: the CPU executor runs fp32). tp > 1
// and sp run one rank's shard with the collectives as copies: its memory is the shard's,
// its numbers are not checked. The CUDA bodies: transformer_layer_bench.cu.
//
//   seqscale bench --matrix transformer --filter 'transformer_layer/cpu'
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <variant>

#include "harness/bench/registry.h"
#include "harness/steps/step_executor.h"
#include "layers/transformer_layer/transformer_layer_bench.h"
#include "layers/transformer_layer/transformer_layer_cpu.h"
#include "workloads/config_error.h"
#include "layers/transformer_layer/transformer_layer_program.h"

namespace seqscale {
namespace {

TransformerSpec model_with_overrides(BenchState& s) {
  const std::string name = s.get_string("model");
  const ModelSpec model = load_model(name);
  if (!model.is_transformer()) throw ConfigError("model: '" + name + "' is not a transformer model");
  TransformerSpec t = model.transformer();
  if (s.has("mlp")) {
    const std::string v = s.get_string("mlp");
    if (v != "gelu" && v != "swiglu") throw ConfigError("mlp: expected gelu or swiglu, got '" + v + "'");
    t.mlp = v == "gelu" ? MlpKind::kGelu : MlpKind::kSwiglu;
  }
  if (s.has("norm")) {
    const std::string v = s.get_string("norm");
    if (v != "layernorm" && v != "rmsnorm") throw ConfigError("norm: expected layernorm or rmsnorm, got '" + v + "'");
    t.norm = v == "layernorm" ? NormKind::kLayerNorm : NormKind::kRmsNorm;
  }
  if (s.has("residual")) {
    const std::string v = s.get_string("residual");
    if (v != "sequential" && v != "parallel") throw ConfigError("residual: expected sequential or parallel, got '" + v + "'");
    t.parallel_residual = v == "parallel";
  }
  // Shape overrides: the same family at another width (head size = hidden / heads).
  const auto positive = [&](const char* axis) {
    const std::int64_t v = s.get_int(axis);
    if (v < 1) throw ConfigError(std::string(axis) + ": must be positive, got " + std::to_string(v));
    return v;
  };
  if (s.has("hidden")) t.hidden = positive("hidden");
  if (s.has("heads")) {
    const bool mha = t.kv_heads == 0 || t.kv_heads == t.heads;
    t.heads = positive("heads");
    if (mha) t.kv_heads = t.heads;
  }
  if (s.has("ffn_hidden")) t.ffn_hidden = positive("ffn_hidden");
  if (t.hidden % t.heads != 0) {
    throw ConfigError("heads: hidden " + std::to_string(t.hidden) + " is not divisible by heads " + std::to_string(t.heads));
  }
  if (t.kv_heads > 0 && t.heads % t.kv_heads != 0) {
    throw ConfigError("heads: " + std::to_string(t.heads) + " is not a multiple of kv_heads " + std::to_string(t.kv_heads));
  }
  return t;
}

using Ops = TransformerExecOps;

std::vector<double> read(BenchState& s, const Ops::Tensor& t) {
  return s.read_back(t.raw, t.n, t.elem == Elem::kInt32 ? DType::kInt32 : DType::kFp32);
}

template <class Params>
void fill_weights(BenchState& s, Params& params) {
  std::uint64_t seed = 1;
  for (auto* p : params) {
    s.fill_random(p->w.p, p->w.n, DType::kFp32, seed++, -static_cast<float>(kTransformerWeightRange),
                  static_cast<float>(kTransformerWeightRange));
  }
}

SEQSCALE_BENCH(transformer_layer_cpu, "transformer_layer", "steps", Backend::kCpu, [](BenchState& s) {
  TransformerBenchPoint pt;
  if (!setup_transformer_point(s, /*stack=*/false, {DType::kFp32}, pt)) return;
  Ops ops([&](std::size_t bytes) { return s.alloc(bytes); }, [&](void* p) { s.release(p); });
  TransformerLayerStep<Ops> step(ops, pt.dims.layer, pt.mask);
  fill_weights(s, step.layer.params());
  s.fill_random(step.x.p, step.x.n, DType::kFp32, 101);
  s.fill_random(step.dy.p, step.dy.n, DType::kFp32, 102);
  const auto run = [&](void*) { step.run(); };
  if (pt.checkable && s.checks()) {
    TransformerLayerInputs in;
    in.x = read(s, step.x);
    in.dy = read(s, step.dy);
    for (auto* p : step.layer.params()) in.params.push_back(read(s, p->w));
    s.check(run, [&] {
      const std::vector<double> dx = read(s, step.dx);  // outputs first: the test hook perturbs the first read
      std::vector<std::vector<double>> grads;
      for (auto* p : step.layer.params()) grads.push_back(read(s, p->dw));
      return check_layer_outputs(pt, in, dx, grads);
    });
  }
  s.exec(run);
});

SEQSCALE_BENCH(transformer_stack_cpu, "transformer_stack", "steps", Backend::kCpu, [](BenchState& s) {
  TransformerBenchPoint pt;
  if (!setup_transformer_point(s, /*stack=*/true, {DType::kFp32}, pt)) return;
  Ops ops([&](std::size_t bytes) { return s.alloc(bytes); }, [&](void* p) { s.release(p); });
  TransformerStackStep<Ops> step(ops, pt.dims);
  fill_weights(s, step.stack.params());
  step.stack.sync_master();
  const float vocab = static_cast<float>(pt.dims.vocab);
  s.fill_random(step.tokens.raw, step.tokens.n, DType::kInt32, 201, 0.f, vocab);
  s.fill_random(step.targets.raw, step.targets.n, DType::kInt32, 202, 0.f, vocab);
  const auto run = [&](void*) { step.run(); };
  if (pt.checkable && s.checks()) {
    // The weights before the checked step: its gradients are of these (Adam runs after).
    TransformerStackInputs in;
    for (double v : read(s, step.tokens)) in.tokens.push_back(static_cast<std::int32_t>(v));
    for (double v : read(s, step.targets)) in.targets.push_back(static_cast<std::int32_t>(v));
    for (auto* p : step.stack.params()) in.params.push_back(read(s, p->w));
    s.check(run, [&] {
      const std::vector<double> loss = read(s, step.loss);
      std::vector<std::vector<double>> grads;
      for (auto* p : step.stack.params()) grads.push_back(read(s, p->dw));
      return check_stack_outputs(pt, in, loss, grads);
    });
  }
  s.exec(run);
});

}  // namespace

bool setup_transformer_point(BenchState& s, bool stack, std::initializer_list<DType> dtypes, TransformerBenchPoint& pt) {
  const TransformerSpec t = model_with_overrides(s);
  Plan plan = parse_plan(s.has("plan") ? s.get_string("plan") : "");
  const DType dtype = s.has("dtype") ? s.get_dtype() : *dtypes.begin();
  bool allowed = false;
  std::string names;
  for (DType d : dtypes) {
    allowed = allowed || d == dtype;
    names += (names.empty() ? "" : ", ") + std::string(dtype_name(d));
  }
  if (!allowed) {
    throw ConfigError("dtype: the " + std::string(backend_name(s.backend())) + " transformer layer runs " + names + ", got '" +
                      std::string(dtype_name(dtype)) + "'");
  }
  pt.io = dtype;
  const std::int64_t batch = s.has("micro_batch") ? s.get_int("micro_batch") : 1;
  pt.dims.layer = TransformerLayerDims::from(t, plan, s.get_int("seq"), batch, s.backend() == Backend::kCuda);
  pt.dims.layers = s.has("layers") ? s.get_int("layers") : t.layers;
  pt.dims.vocab = t.vocab;
  pt.dims.vocab_chunk = s.has("vocab_chunk") ? s.get_int("vocab_chunk") : 128;
  pt.dims.learned_positions = t.position == PositionEmbedding::kLearned;
  pt.dims.mask = pt.mask = plan.mask;
  if (pt.dims.layers < 1) throw ConfigError("layers: must be at least 1");
  if (pt.dims.vocab_chunk < 1) throw ConfigError("vocab_chunk: must be at least 1");
  pt.program = std::make_shared<const StepProgram>(stack ? build_transformer_stack_program(pt.dims, dtype)
                                                         : build_transformer_layer_program(pt.dims.layer, pt.mask, dtype));
  s.declare_program(pt.program);
  KernelCost declared;
  for (const StepOp& op : pt.program->ops) {
    if (const auto* c = std::get_if<ComputeOp>(&op)) {
      declared.flops += c->cost.flops;
      declared.bytes += c->cost.bytes;
    }
  }
  s.add_cost(declared);
  s.set_metric("model_peak_bytes", static_cast<double>(pt.program->replay_memory().peak_device_bytes));
  s.set_metric("tokens_per_step", static_cast<double>(batch * pt.dims.layer.seq));
  // The double reference costs about the declared FLOPs / 2 multiply-adds (as the block's).
  const TransformerLayerDims& d = pt.dims.layer;
  const bool one_rank = d.tp == 1 && d.ulysses() == 1;
  pt.checkable = one_rank && declared.flops / 2 <= 4 * kCheckReferenceBudget;
  if (!one_rank) s.no_check("one rank's shard with the collectives as copies: its numbers are not a layer's");
  else if (!pt.checkable) {
    s.no_check("the double reference would take " + std::to_string(static_cast<long long>(declared.flops / 2e9)) +
               " G multiply-adds (check budget " + std::to_string(static_cast<long long>(4 * kCheckReferenceBudget / 1e9)) +
               " G); tests/layers/ check it at small sizes");
  }
  if (s.executes()) return true;
  replay_memory_events(*pt.program, s);
  s.exec([](void*) {});
  return false;
}


CheckResult check_layer_outputs(const TransformerBenchPoint& pt, const TransformerLayerInputs& in,
                                const std::vector<double>& dx, const std::vector<std::vector<double>>& grads) {
  const TransformerLayerRun ref = run_transformer_layer_ref(pt.dims.layer, pt.mask, in);
  const CheckTolerance tol = transformer_layer_tolerance(pt.io);
  CheckResult r = compare_values("dx", dx, ref.dx, tol);
  r.merge(compare_transformer_grads(grads, ref.param_grads, tol));
  return r;
}

CheckResult check_stack_outputs(const TransformerBenchPoint& pt, const TransformerStackInputs& in,
                                const std::vector<double>& loss, const std::vector<std::vector<double>>& grads) {
  const TransformerStackRun ref = run_transformer_stack_ref(pt.dims, in);
  const CheckTolerance tol = transformer_layer_tolerance(pt.io);
  CheckResult r = compare_values("loss", loss, std::vector<double>{ref.loss}, tol);
  r.merge(compare_transformer_grads(grads, ref.param_grads, tol));
  return r;
}

}  // namespace seqscale
