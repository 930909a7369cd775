#include "model/search.h"

#include <algorithm>

#include "workloads/config_error.h"

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

std::vector<Plan> enumerate_plans(const Preset& pre, const ModelSpec& model, std::int64_t gpus) {
  std::vector<Plan> out;
  const RunShape probe{1 << 20, 1, 0};  // divisible by every power of two we use
  if (model.is_evoformer()) {
    for (std::int32_t dap : divisors(gpus)) {
      for (int zero : pre.zero) {
        for (Offload off : pre.offload) {
          for (AttentionImpl attn : pre.attn) {
            Plan p;
            p.dap = dap;
            p.zero = zero;
            p.offload = off;
            p.attn = attn;
            p.recompute = Recompute::kFull;
            RunShape sh{model.evoformer().n_res, 1, 0};
            if (check_plan(p, model, gpus, sh).empty()) out.push_back(p);
          }
        }
      }
    }
    return out;
  }
  const std::int64_t gpn = 8;  // TP inside a node unless the preset allows crossing
  for (std::int32_t tp : divisors(gpus)) {
    if (tp > pre.max_tp || (!pre.tp_across_nodes && tp > gpn)) continue;
    for (std::int32_t pp : pre.pipeline ? divisors(gpus / tp) : std::vector<std::int32_t>{1}) {
      for (SeqParallel sp : pre.sp) {
        std::vector<std::int32_t> degrees{1};
        const bool own_group = sp == SeqParallel::kUlysses || sp == SeqParallel::kLss;
        if (own_group) degrees = divisors(gpus / (static_cast<std::int64_t>(tp) * pp));
        for (std::int32_t deg : degrees) {
          if (own_group && deg == 1) continue;
          if (sp == SeqParallel::kMegatron && tp == 1) continue;
          for (int zero : pre.zero) {
            if (pp > 1 && zero > 1 && !pre.zero_with_pp_above_1) continue;
            for (Offload off : pre.offload) {
              for (Recompute rc : pre.recompute) {
                for (AttentionImpl attn : pre.attn) {
                  for (MaskKind mask : pre.mask) {
                    for (PosTable pos : pre.pos) {
                      for (int sched = 0; sched < (pre.interleaved && pp > 1 ? 2 : 1); ++sched) {
                       for (bool part : pre.ckpt_partitioned) {
                        Plan p;
                        p.tp = tp;
                        p.pp = pp;
                        p.sp = sp;
                        p.sp_degree = deg;
                        p.dp = static_cast<std::int32_t>(gpus / (static_cast<std::int64_t>(tp) * pp * deg));
                        p.zero = zero;
                        p.offload = off;
                        p.recompute = rc;
                        p.attn = attn;
                        p.mask = mask;
                        p.pos = pos;
                        if (sched == 1) {
                          p.schedule = PipeSchedule::kInterleaved;
                          p.vpp = 2;
                        }
                        p.ckpt_partitioned = part;
                        // A MoE model: every expert-parallel degree its dp ranks allow.
                        const bool moe = model.transformer().is_moe();
                        for (std::int32_t ep : moe ? divisors(p.dp) : std::vector<std::int32_t>{1}) {
                          Plan q = p;
                          q.ep = ep;
                          if (check_plan(q, model, gpus, probe).empty()) out.push_back(q);
                        }
                       }
                      }
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
  }
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
  const std::vector<Plan> plans = enumerate_plans(preset, model, gpus);
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
  for (const Plan& plan : enumerate_plans(preset, model, gpus)) {
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
  for (const Plan& plan : enumerate_plans(preset, model, gpus)) {
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
