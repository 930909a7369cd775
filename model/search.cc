#include "model/search.h"

#include <algorithm>

#include "workloads/config_error.h"
#include "workloads/placement.h"

namespace seqscale {

namespace {

std::vector<std::int32_t> divisors(std::int64_t n) {
  std::vector<std::int32_t> d;
  for (std::int64_t i = 1; i <= n; ++i) {
    if (n % i == 0) d.push_back(static_cast<std::int32_t>(i));
  }
  return d;
}

Preset make(std::string name, std::string summary) {
  Preset p;
  p.name = std::move(name);
  p.summary = std::move(summary);
  return p;
}

}  // namespace

const std::vector<Preset>& presets() {
  static const std::vector<Preset> all = [] {
    std::vector<Preset> v;
    Preset old = make("megatron-deepspeed-old", "Megatron-DeepSpeed before DS4Sci: fp32 mask, replicated position table, no SP");
    old.max_tp = 64;
    old.tp_across_nodes = true;  // the published old GPT-30B runs used TP=32 over 4 nodes
    old.sp = {SeqParallel::kNone};
    old.recompute = {Recompute::kFull};
    old.attn = {AttentionImpl::kFused};
    old.mask = {MaskKind::kFp32};
    old.pos = {PosTable::kReplicated};
    old.zero = {0, 1, 2, 3};  // ZeRO-2/3 only without PP (DeepSpeed pipeline engine: ZeRO-1)
    old.offload = {Offload::kNone, Offload::kOptimizer};
    // DeepSpeed could partition checkpoints across TP ranks, but the DS4Sci sweep scripts leave
    // --distribute-checkpointed-activations off (and with it the old column would be ~2x
    // higher than published), so the old plan space keeps checkpoints local.
    v.push_back(old);

    Preset mlm = make("megatron-lm", "Megatron-LM: TP+PP+Megatron-SP, selective recompute, distributed optimizer");
    mlm.max_tp = 8;
    mlm.sp = {SeqParallel::kMegatron};
    mlm.recompute = {Recompute::kSelective, Recompute::kFull};
    mlm.attn = {AttentionImpl::kFused};
    mlm.mask = {MaskKind::kFp32};
    mlm.pos = {PosTable::kReplicated};
    mlm.zero = {0, 1};
    mlm.offload = {Offload::kNone};
    mlm.zero_with_pp_above_1 = true;
    mlm.interleaved = true;
    v.push_back(mlm);

    Preset neu = make("megatron-deepspeed-new", "Megatron-DeepSpeed with the DS4Sci long-sequence changes");
    neu.max_tp = 32;
    neu.tp_across_nodes = true;
    neu.sp = {SeqParallel::kMegatron};
    neu.recompute = {Recompute::kFull};
    neu.attn = {AttentionImpl::kFused};
    neu.mask = {MaskKind::kNone};
    neu.pos = {PosTable::kPartitioned};
    // Megatron-DeepSpeed builds GPT as a DeepSpeed PipelineModule unless --no-pipeline-parallel,
    // and the pipeline engine takes ZeRO-1 at most; the GenSLM long-sequence launch scripts
    // run ZERO_STAGE=1. With offload the fp16 gradients therefore stay on the device.
    neu.zero = {0, 1};
    neu.offload = {Offload::kNone, Offload::kOptimizer};
    v.push_back(neu);

    Preset best = make("seqscale-best", "every technique seqscale models, searched freely");
    best.max_tp = 1 << 20;
    best.tp_across_nodes = true;
    best.sp = {SeqParallel::kNone, SeqParallel::kMegatron, SeqParallel::kUlysses, SeqParallel::kLss};
    best.recompute = {Recompute::kNone, Recompute::kSelective, Recompute::kFull};
    best.attn = {AttentionImpl::kFused, AttentionImpl::kMaterialized};
    best.mask = {MaskKind::kNone};
    best.pos = {PosTable::kPartitioned};
    best.zero = {0, 1, 2, 3};
    best.offload = {Offload::kNone, Offload::kOptimizer, Offload::kParams, Offload::kAll};
    best.ckpt_partitioned = {false, true};
    best.interleaved = true;
    best.zero_with_pp_above_1 = true;
    v.push_back(best);
    return v;
  }();
  return all;
}

const Preset& find_preset(const std::string& name) {
  std::string known;
  for (const Preset& p : presets()) {
    if (p.name == name) return p;
    known += (known.empty() ? "" : ", ") + p.name;
  }
  throw ConfigError("--preset: unknown preset '" + name + "' (known: " + known + ")");
}

namespace {

// ---- the plan space: a cartesian product of option lists, then one filter ----------------

// One axis of a preset's plan space sets one field to each of its options in turn and
// hands each plan to `rest` (the axes after it). Options may depend on the fields set by
// earlier axes: pp divides what tp leaves of the GPUs, Megatron-SP needs tp > 1.
struct Rest;
using PlanAxis = std::function<void(const Plan&, const Rest& rest)>;
using PlanSink = std::function<void(const Plan&)>;

struct Rest {
  const std::vector<PlanAxis>* axes;
  std::size_t axis;      // the next axis to expand
  const PlanSink* emit;  // called with each complete plan
  void operator()(const Plan& p) const {
    if (axis == axes->size()) return (*emit)(p);
    (*axes)[axis](p, Rest{axes, axis + 1, emit});
  }
};

// An axis over a fixed option list (one of the preset's).
template <class T, class Set>
PlanAxis axis(std::vector<T> values, Set set) {
  return [values = std::move(values), set](const Plan& p, const Rest& rest) {
    for (T v : values) {
      Plan q = p;
      set(q, v);
      rest(q);
    }
  };
}

// An axis whose option list depends on the earlier fields.
template <class OptionsOf, class Set>
PlanAxis dependent_axis(OptionsOf options_of, Set set) {
  return [options_of, set](const Plan& p, const Rest& rest) {
    for (auto v : options_of(p)) {
      Plan q = p;
      set(q, v);
      rest(q);
    }
  };
}

// Calls `emit` for every plan of the product over `base`, the first axis outermost: the
// order plans come out in is the search's tie-break (max_sequence and best_plan keep the
// first of equals).
void product(const std::vector<PlanAxis>& axes, const Plan& base, const PlanSink& emit) { Rest{&axes, 0, &emit}(base); }

bool own_seq_group(SeqParallel sp) { return sp == SeqParallel::kUlysses || sp == SeqParallel::kLss; }

// `options` without `value` when `drop` holds.
template <class T>
std::vector<T> without(std::vector<T> options, bool drop, T value) {
  if (drop) std::erase(options, value);
  return options;
}

// The TP degrees a preset runs here: divisors of the GPU count up to its max_tp, and,
// unless the preset allows crossing, only those whose groups stay inside a node
// (workloads/placement.h; 8 GPUs a node on a DGX, 1 on the single-GPU h100/h200 clusters).
std::vector<std::int32_t> tp_options(const Preset& pre, const ClusterSpec& cluster, std::int64_t gpus) {
  std::vector<std::int32_t> out;
  for (std::int32_t tp : divisors(gpus)) {
    if (tp > pre.max_tp) continue;
    RankGrid grid;
    grid.size = {tp, 1, gpus / tp, 1};
    grid.gpus_per_node = cluster.gpus_per_node;
    if (!pre.tp_across_nodes && place(grid, GroupKind::kTensor).crosses_nodes) continue;
    out.push_back(tp);
  }
  return out;
}

std::vector<PlanAxis> transformer_axes(const Preset& pre, const ModelSpec& model, const ClusterSpec& cluster,
                                       std::int64_t gpus) {
  const bool moe = model.transformer().is_moe();
  return {
      axis(tp_options(pre, cluster, gpus), [](Plan& p, std::int32_t v) { p.tp = v; }),
      dependent_axis([&, gpus](const Plan& p) { return pre.pipeline ? divisors(gpus / p.tp) : std::vector<std::int32_t>{1}; },
                     [](Plan& p, std::int32_t v) { p.pp = v; }),
      // Megatron-SP runs on the TP ranks: none without them.
      dependent_axis([&](const Plan& p) { return without(pre.sp, p.tp == 1, SeqParallel::kMegatron); },
                     [](Plan& p, SeqParallel v) { p.sp = v; }),
      // Ulysses and LSS take every degree above 1 the rest of the GPUs allow; dp is what is left.
      dependent_axis(
          [gpus](const Plan& p) {
            return own_seq_group(p.sp) ? without(divisors(gpus / (static_cast<std::int64_t>(p.tp) * p.pp)), true, std::int32_t{1})
                                       : std::vector<std::int32_t>{1};
          },
          [gpus](Plan& p, std::int32_t v) {
            p.sp_degree = v;
            p.dp = static_cast<std::int32_t>(gpus / (static_cast<std::int64_t>(p.tp) * p.pp * v));
          }),
      // DeepSpeed's pipeline engine takes ZeRO-1 at most.
      dependent_axis(
          [&](const Plan& p) {
            std::vector<int> zero = pre.zero;
            if (p.pp > 1 && !pre.zero_with_pp_above_1) std::erase_if(zero, [](int z) { return z > 1; });
            return zero;
          },
          [](Plan& p, int v) { p.zero = v; }),
      axis(pre.offload, [](Plan& p, Offload v) { p.offload = v; }),
      axis(pre.recompute, [](Plan& p, Recompute v) { p.recompute = v; }),
      axis(pre.attn, [](Plan& p, AttentionImpl v) { p.attn = v; }),
      axis(pre.mask, [](Plan& p, MaskKind v) { p.mask = v; }),
      axis(pre.pos, [](Plan& p, PosTable v) { p.pos = v; }),
      dependent_axis(
          [&](const Plan& p) {
            return pre.interleaved && p.pp > 1 ? std::vector<PipeSchedule>{PipeSchedule::k1F1B, PipeSchedule::kInterleaved}
                                               : std::vector<PipeSchedule>{PipeSchedule::k1F1B};
          },
          [](Plan& p, PipeSchedule v) {
            p.schedule = v;
            p.vpp = v == PipeSchedule::kInterleaved ? 2 : 1;
          }),
      axis(pre.ckpt_partitioned, [](Plan& p, bool v) { p.ckpt_partitioned = v; }),
      // A MoE model: every expert-parallel degree its dp ranks allow.
      dependent_axis([moe](const Plan& p) { return moe ? divisors(p.dp) : std::vector<std::int32_t>{1}; },
                     [](Plan& p, std::int32_t v) { p.ep = v; }),
  };
}

// An Evoformer: DAP over any divisor of the GPUs (the rest data parallel).
std::vector<PlanAxis> evoformer_axes(const Preset& pre, std::int64_t gpus) {
  return {
      axis(divisors(gpus), [](Plan& p, std::int32_t v) { p.dap = v; }),
      axis(pre.zero, [](Plan& p, int v) { p.zero = v; }),
      axis(pre.offload, [](Plan& p, Offload v) { p.offload = v; }),
      axis(pre.attn, [](Plan& p, AttentionImpl v) { p.attn = v; }),
  };
}

// The one filter: the plan's own validity (check_plan derives dp and checks divisibility,
// for a transformer at a probe length divisible by every power of two we use).
bool valid(const ModelSpec& model, std::int64_t gpus, Plan& p) {
  const RunShape shape{model.is_evoformer() ? model.evoformer().n_res : std::int64_t{1} << 20, 1, 0};
  return check_plan(p, model, gpus, shape).empty();
}

}  // namespace

std::vector<Plan> enumerate_plans(const Preset& pre, const ModelSpec& model, const ClusterSpec& cluster,
                                  std::int64_t gpus) {
  Plan base;
  if (model.is_evoformer()) base.recompute = Recompute::kFull;  // OpenFold checkpoints every block
  std::vector<Plan> out;
  product(model.is_evoformer() ? evoformer_axes(pre, gpus) : transformer_axes(pre, model, cluster, gpus), base,
          [&](const Plan& candidate) {
            Plan p = candidate;
            if (valid(model, gpus, p)) out.push_back(p);
          });
  return out;
}

namespace {

bool fits_at(const ModelSpec& model, const ClusterSpec& cluster, const Plan& plan, std::int64_t seq) {
  const RunShape shape{seq, 1, 0};
  if (model.is_transformer() && seq % plan.seq_shards() != 0) return false;
  const MemoryBreakdown m = estimate_memory(model, cluster, plan, shape);
  if (!memory_fits(m, cluster)) return false;
  const double host_node = m.host_bytes * static_cast<double>(cluster.gpus_per_node);
  return host_node <= static_cast<double>(cluster.host_memory_bytes_per_node);
}

void finish(const ModelSpec& model, const ClusterSpec& cluster, std::int64_t granularity, MaxSeqResult& r) {
  if (r.max_seq > 0) {
    r.peak_bytes = estimate_memory(model, cluster, r.plan, RunShape{r.max_seq, 1, 0}).peak();
    r.binding = estimate_memory(model, cluster, r.plan, RunShape{r.max_seq + granularity, 1, 0}).binding();
  }
}

}  // namespace

MaxSeqResult max_sequence(const ModelSpec& model, const ClusterSpec& cluster, std::int64_t gpus, const Preset& preset,
                          std::int64_t granularity, std::int64_t max_seq_limit) {
  if (granularity <= 0) throw ConfigError("--granularity must be positive");
  MaxSeqResult r;
  r.gpus = gpus;
  r.preset = preset.name;
  const std::vector<Plan> plans = enumerate_plans(preset, model, cluster, gpus);
  const std::int64_t hi_limit = max_seq_limit / granularity;
  for (const Plan& plan : plans) {
    // Memory grows monotonically with s, so bisect the grid; start above the best so far
    // (a plan that cannot beat it is rejected with one evaluation).
    const std::int64_t best_k = r.max_seq / granularity;
    ++r.plans_evaluated;
    if (!fits_at(model, cluster, plan, (best_k + 1) * granularity)) continue;
    std::int64_t lo = best_k + 1, hi = hi_limit;
    while (lo < hi) {
      const std::int64_t mid = lo + (hi - lo + 1) / 2;
      ++r.plans_evaluated;
      if (fits_at(model, cluster, plan, mid * granularity)) lo = mid;
      else hi = mid - 1;
    }
    r.max_seq = lo * granularity;
    r.plan = plan;
  }
  finish(model, cluster, granularity, r);
  return r;
}

std::int64_t exhaustive_sweep(const ModelSpec& model, const ClusterSpec& cluster, std::int64_t gpus, const Preset& preset,
                              std::int64_t granularity, std::int64_t max_seq, MaxSeqResult* out) {
  MaxSeqResult r;
  r.gpus = gpus;
  r.preset = preset.name;
  std::int64_t evals = 0;
  for (const Plan& plan : enumerate_plans(preset, model, cluster, gpus)) {
    for (std::int64_t s = granularity; s <= max_seq; s += granularity) {
      ++evals;
      if (!fits_at(model, cluster, plan, s)) break;  // monotone: longer ones do not fit either
      if (s > r.max_seq) {
        r.max_seq = s;
        r.plan = plan;
      }
    }
  }
  r.plans_evaluated = evals;
  finish(model, cluster, granularity, r);
  if (out) *out = r;
  return evals;
}

BestPlan best_plan(const ModelSpec& model, const ClusterSpec& cluster, std::int64_t gpus, const Preset& preset,
                   const RunShape& shape, const Calibration& cal) {
  BestPlan best;
  for (const Plan& plan : enumerate_plans(preset, model, cluster, gpus)) {
    Plan p = plan;
    if (!check_plan(p, model, gpus, shape).empty()) continue;
    if (!memory_fits(estimate_memory(model, cluster, p, shape), cluster)) continue;  // cheap filter
    Estimate e = estimate(model, cluster, p, gpus, shape, cal);
    if (!e.fits) continue;
    if (!best.found || e.time.step < best.estimate.time.step) {
      best.found = true;
      best.estimate = std::move(e);
    }
  }
  return best;
}

}  // namespace seqscale
