#include "harness/steps/transformer_step.h"

#include <algorithm>

#include "model/estimate.h"
#include "model/memory.h"
#include "model/roofline.h"
#include "model/transformer_program.h"
#include "workloads/config_error.h"
#include "workloads/specs.h"

namespace seqscale {

TransformerStepSetup make_transformer_step(BenchState& s) {
  const ModelSpec model = load_model(s.get_string("model"));
  if (!model.is_transformer()) throw ConfigError("transformer_step: model '" + model.name + "' is not a transformer");
  const ClusterSpec cluster = load_cluster(s.has("cluster") ? s.get_string("cluster") : "h100");
  Plan plan = parse_plan(s.get_string("plan"));
  RunShape shape;
  shape.seq = s.get_int("seq");
  shape.micro_batch = s.has("micro_batch") ? s.get_int("micro_batch") : 1;
  const std::int64_t gpus = s.has("gpus") ? s.get_int("gpus") : 1;
  if (const std::string why = check_plan(plan, model, gpus, shape); !why.empty()) {
    throw ConfigError("transformer_step: plan: " + why);
  }
  const Estimate e = estimate(model, cluster, plan, gpus, shape, default_calibration());
  const TransformerSpec& t = model.transformer();
  TransformerStepSetup setup;
  setup.program = build_transformer_program(t, e.plan, e.shape);
  setup.tokens = shape.seq * shape.micro_batch;
  setup.k = std::max<std::int64_t>(1, t.hidden / (static_cast<std::int64_t>(e.plan.tp) * e.plan.ulysses()));
  s.add_cost(KernelCost{setup.program.total_flops(), 0, 0});
  // The closed form without context and fragmentation is what allocations can show.
  s.set_metric("model_live_peak_bytes", transformer_memory(model.transformer(), ClusterSpec{}, e.plan, e.shape).peak());
  s.set_metric("model_peak_bytes", e.memory.peak());
  s.set_metric("model_step_s", e.time.step);
  s.set_metric("tokens_per_step", static_cast<double>(micro_batches(e.plan, e.shape) * setup.tokens));
  // Utilisation only means something against the GPU the cluster describes.
  if (s.backend() == Backend::kCuda) s.set_metric("peak_flops", peak_flops(t.dtype, cluster));
  s.set_metric("program_replay_peak_bytes", static_cast<double>(setup.program.replay_memory().peak_device_bytes));
  return setup;
}

}  // namespace seqscale
