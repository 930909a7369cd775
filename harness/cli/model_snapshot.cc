// seqscale model-snapshot: every deterministic number the cost model produces, as one
// results file (source: model, device "model"), so that `seqscale gate` can hold it against
// results/baselines/model.json and CI fails when a model change moves a prediction.
//   seqscale model-snapshot --out out/model-snapshot.json
//   seqscale gate results/baselines/model.json out/model-snapshot.json   (.ci/run does this)
//   scripts/update_model_baseline "why"                                   (on purpose)
// What it holds (ids are stable; values are what may move):
//   model/anchor/model/group=G,name=N    every published anchor (`seqscale validate`):
//                                         predicted, published, tolerance
//   model/predict/model/cluster,gpus,model,plan,seq   estimate() for every shipped model on
//                                         every cluster at kPlans (each strategy priced at
//                                         least once): peak and its terms, step time and
//                                         its terms, tokens/s, TFLOP/s, MFU; a plan the
//                                         model rejects is `skipped` with the reason
//   model/maxseq/model/cluster,gpus,model,preset      max_sequence() per framework preset:
//                                         the longest sequence, its peak and the plan
//                                         (a metric named "plan=<plan>", value 1)
//   model/strategy_bytes/model/strategy=S,world=W     the comm ops every rank of each
//                                         comm/strategies strategy emits: bytes per
//                                         group/phase/collective summed over ranks
//   <matrix point id, cluster=h100>       every CUDA point of every shipped matrix but the
//                                         collectives priced as `bench --source model
//                                         --cluster h100` prices it (CUDA builds only: the
//                                         bodies that declare their cost are .cu files)
// Plain C++ over the model library; a few seconds on one core.
#include <filesystem>
#include <iostream>
#include <map>

#include <nlohmann/json.hpp>

#include "comm/groups.h"
#include "comm/strategies/strategy.h"
#include "harness/bench/pricing.h"
#include "harness/cli/verb.h"
#include "model/anchors.h"
#include "model/calibration.h"
#include "model/estimate.h"
#include "model/search.h"
#include "workloads/config_error.h"
#include "workloads/plan.h"
#include "workloads/specs.h"

namespace seqscale::cli {
namespace {

// Plans priced for every model at kPlanGpus GPUs; together they exercise every strategy
// the model prices. A plan a model cannot run is recorded as skipped (that too may not move).
const std::vector<std::string> kTransformerPlans = {
    "",
    "tp=8,recompute=full",
    "tp=4,sp=megatron,zero=1,recompute=selective",
    "sp=ulysses,sp_degree=8,zero=3,recompute=full",
    "sp=lss,sp_degree=4,zero=1,recompute=full",
    "tp=2,pp=4,recompute=full",
    "tp=2,pp=2,vpp=2,schedule=interleaved,recompute=full",
    "zero=2,offload=optimizer,recompute=full",
    "zero=3,offload=all,recompute=full",
    "tp=2,attn=materialized,mask=fp32",
    "ep=4,zero=1,recompute=full",
};
const std::vector<std::string> kEvoformerPlans = {"", "dap=2", "dap=8,zero=1", "dap=4,recompute=full"};
constexpr std::int64_t kPlanGpus = 8;
constexpr std::int64_t kTransformerSeq = 16384;
const std::vector<std::int64_t> kSearchGpus = {8, 64};
const std::vector<int> kStrategyWorlds = {2, 4, 8};
const std::string kPricedCluster = "h100";

std::vector<std::string> names_in(const std::string& kind) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(workloads_dir() + "/" + kind)) {
    if (e.path().extension() == ".json") out.push_back(e.path().stem().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

PointResult model_point(const std::string& bench, const nlohmann::json& params) {
  PointResult p;
  p.suite = "model";
  p.bench = bench;
  p.backend = "model";
  p.source = "model";
  p.params = params;
  p.id = point_id(p.suite, p.bench, p.backend, p.params);
  return p;
}

void add_anchors(ResultsFile& f) {
  for (const AnchorRow& r : validate_anchors()) {
    PointResult p = model_point("anchor", {{"group", r.group}, {"name", r.name}});
    p.metrics = {{"predicted", r.predicted}, {"published", r.published}, {"tolerance", r.tolerance}};
    f.points.push_back(p);
  }
}

void add_estimate_metrics(PointResult& p, const Estimate& e) {
  p.samples_s = {e.time.step};
  p.metrics["peak_bytes"] = e.memory.peak();
  p.metrics["host_bytes_per_rank"] = e.memory.host_bytes;
  // Terms that are 0 are left out (a term that appears or vanishes is a move too).
  for (int i = 0; i < static_cast<int>(MemTerm::kCount); ++i) {
    if (e.memory.bytes[i] != 0) p.metrics["mem." + std::string(mem_term_name(static_cast<MemTerm>(i)))] = e.memory.bytes[i];
  }
  const TimeBreakdown& t = e.time;
  const std::map<std::string, double> times = {
      {"compute", t.compute}, {"tp_comm", t.tp_comm},     {"seq_comm", t.seq_comm},      {"ep_comm", t.ep_comm},
      {"pp_comm", t.pp_comm}, {"dp_comm", t.dp_comm},     {"zero3_comm", t.zero3_comm}, {"bubble", t.bubble},
      {"optimizer", t.optimizer}, {"offload", t.offload}};
  for (const auto& [k, v] : times) {
    if (v != 0) p.metrics["time." + k + "_s"] = v;
  }
  p.metrics["tokens_per_s"] = e.tokens_per_s;
  p.metrics["tflops_per_gpu"] = e.tflops_per_gpu;
  p.metrics["mfu"] = e.mfu;
  p.metrics["fits"] = e.fits ? 1 : 0;
  p.metrics["global_batch"] = static_cast<double>(e.shape.global_batch);
}

void add_predictions(ResultsFile& f, const std::vector<ModelSpec>& models, const std::vector<ClusterSpec>& clusters,
                     const Calibration& cal) {
  for (const auto& model : models) {
    const auto& plans = model.is_transformer() ? kTransformerPlans : kEvoformerPlans;
    const std::int64_t seq = model.is_transformer() ? kTransformerSeq : 0;
    for (const auto& cluster : clusters) {
      for (const auto& plan : plans) {
        PointResult p = model_point("predict", {{"model", model.name}, {"cluster", cluster.name}, {"gpus", kPlanGpus},
                                                {"plan", plan}, {"seq", seq}});
        try {
          add_estimate_metrics(p, estimate(model, cluster, parse_plan(plan), kPlanGpus, RunShape{seq, 1, 0}, cal));
        } catch (const ConfigError& e) {
          p.status = PointStatus::kSkipped;
          p.reason = e.what();
        }
        f.points.push_back(p);
      }
    }
  }
}

void add_searches(ResultsFile& f, const std::vector<ModelSpec>& models, const std::vector<ClusterSpec>& clusters) {
  for (const auto& model : models) {
    for (const auto& cluster : clusters) {
      for (const auto& preset : presets()) {
        for (std::int64_t gpus : kSearchGpus) {
          PointResult p = model_point("maxseq", {{"model", model.name}, {"cluster", cluster.name}, {"gpus", gpus},
                                                 {"preset", preset.name}});
          const MaxSeqResult r = max_sequence(model, cluster, gpus, preset);
          p.metrics["max_seq"] = static_cast<double>(r.max_seq);
          p.metrics["peak_bytes"] = r.peak_bytes;
          if (r.max_seq > 0) p.metrics["plan=" + plan_to_string(r.plan)] = 1;
          f.points.push_back(p);
        }
      }
    }
  }
}

// The ops one rank of a strategy emits (its emitter, workloads/parallel/, at the
// strategy's tiny shapes: what run() executes and run_checked() verifies).
CommOps strategy_ops(const comm::StrategyDef& def, const comm::RankLayout& layout, int rank) {
  return def.emit(layout, rank);
}

void add_strategy_bytes(ResultsFile& f) {
  for (const auto& def : comm::registered_strategies()) {
    for (int world : kStrategyWorlds) {
      PointResult p = model_point("strategy_bytes", {{"strategy", def.name}, {"world", world}});
      try {
        const comm::RankLayout layout(def.dims(world));
        double total = 0, ops = 0;
        for (int rank = 0; rank < layout.world_size(); ++rank) {
          for (const CommOp& op : strategy_ops(def, layout, rank)) {
            const CommOp* c = &op;
            const std::string key = "bytes." + std::string(group_name(c->group)) + "." + std::string(phase_name(c->phase)) +
                                    "." + std::string(collective_name(c->collective));
            p.metrics[key] += static_cast<double>(c->bytes);
            total += static_cast<double>(c->bytes);
            ++ops;
          }
        }
        p.metrics["bytes_total"] = total;
        p.metrics["ops"] = ops;
      } catch (const std::exception& e) {
        p.status = PointStatus::kSkipped;
        p.reason = e.what();
      }
      f.points.push_back(p);
    }
  }
}

void add_priced_matrices(ResultsFile& f, const Calibration& cal) {
  // A CUDA point is priced by running its CUDA bench body against the pricing state, and
  // those bodies are compiled only with CUDA: a CPU-only build leaves these points out
  // (the gate shows them as missing, INCONCLUSIVE) rather than price them wrongly.
  f.run.extra["priced_matrices"] = SEQSCALE_HAVE_CUDA ? "cuda points" : "none: a CPU-only build";
  if (!SEQSCALE_HAVE_CUDA) return;
  const ClusterSpec cluster = load_cluster(kPricedCluster);
  for (const auto& matrix_name : names_in("matrices")) {
    for (const auto& point : load_matrix(matrix_name).points) {
      // Collectives are priced by their strategies' bytes above; pricing their matrix
      // point by point takes minutes.
      if (point.backend != "cuda" || point.suite == "collectives") continue;
      PointResult p = price_point(point, cluster, cal);
      p.params["cluster"] = cluster.name;
      p.id = point_id(p.suite, p.bench, p.backend, p.params);
      p.wall_s = 0;  // the pricing's own time is not a prediction
      if (!f.find(p.id)) f.points.push_back(p);  // a point two matrices share is priced once
    }
  }
}

int run_model_snapshot(const std::vector<std::string>& args) {
  std::string out;
  po::options_description opts;
  opts.add_options()("out", po::value(&out)->required(), "results file to write (e.g. out/model-snapshot.json)");
  po::variables_map vm;
  if (!parse_args("model-snapshot", args, opts, vm, nullptr, "--out FILE")) return 0;
  std::vector<ModelSpec> models;
  for (const auto& n : names_in("models")) models.push_back(load_model(n));
  std::vector<ClusterSpec> clusters;
  for (const auto& n : names_in("clusters")) clusters.push_back(load_cluster(n));
  const Calibration cal = default_calibration();

  ResultsFile f;
  f.run = collect_metadata("seqscale model-snapshot", false);
  f.run.device = "model";  // results/baselines/model.json: no device, no driver
  f.run.host = "";         // the same numbers on every machine
  f.run.extra["calibration"] = cal.source;
  add_anchors(f);
  add_predictions(f, models, clusters, cal);
  add_searches(f, models, clusters);
  add_strategy_bytes(f);
  add_priced_matrices(f, cal);
  for (auto& p : f.points) finalize_point(p);
  write_results_atomic(f, out);
  std::cout << "model snapshot: " << f.points.size() << " points (" << models.size() << " models, " << clusters.size()
            << " clusters)\nresults: " << out << "\n";
  return 0;
}

}  // namespace
SEQSCALE_VERB("model-snapshot", "the cost model's deterministic outputs as a results file (for the model gate)",
              run_model_snapshot);
}  // namespace seqscale::cli
