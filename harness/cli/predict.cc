// seqscale predict: the cost model's memory, time, throughput and MFU for one
// (model, cluster, GPU count, plan, sequence length). Plain C++; no GPU needed.
//   seqscale predict --model genslm-25b --cluster dgx-a100-40g --gpus 16
//       --plan "tp=8,pp=2,sp=megatron,zero=1,recompute=full,attn=fused,mask=none" --seq 131072 --json
#include <iomanip>
#include <iostream>

#include <nlohmann/json.hpp>

#include "harness/cli/verb.h"
#include "model/calibration.h"
#include "model/estimate.h"
#include "workloads/plan.h"
#include "workloads/specs.h"

namespace seqscale::cli {
namespace {

int run_predict(const std::vector<std::string>& args) {
  std::string model_name, cluster_name, plan_text, cal_path;
  std::int64_t gpus = 0, seq = 0, micro = 1, global = 0;
  po::options_description opts;
  opts.add_options()
    ("model", po::value(&model_name)->required(), "model name or .json path")
    ("cluster", po::value(&cluster_name)->required(), "cluster name or .json path")
    ("gpus", po::value(&gpus)->required(), "number of GPUs")
    ("plan", po::value(&plan_text)->default_value(""), "tp=8,pp=2,sp=megatron,zero=1,recompute=full,...")
    ("seq", po::value(&seq)->default_value(0), "sequence length (N_res for an Evoformer; 0: the model's crop)")
    ("micro-batch", po::value(&micro)->default_value(1), "micro-batch size")
    ("global-batch", po::value(&global)->default_value(0), "global batch (0: dp * micro-batch * pp)")
    ("calibration", po::value(&cal_path), "calibration file (default: documented defaults)")
    ("json", "print one JSON object");
  po::variables_map vm;
  if (!parse_args("predict", args, opts, vm, nullptr,
                  "--model M --cluster C --gpus N --plan P --seq S [--micro-batch b] [--global-batch B] [--json]")) {
    return 0;
  }
  if (gpus <= 0) throw UsageError("--gpus must be positive");
  const ModelSpec model = load_model(model_name);
  if (model.is_transformer() && seq <= 0) throw UsageError("--seq is required for a transformer model");
  if (micro <= 0) throw UsageError("--micro-batch must be positive");
  if (global < 0) throw UsageError("--global-batch must not be negative");
  const ClusterSpec cluster = load_cluster(cluster_name);
  const Calibration cal = vm.count("calibration") ? load_calibration(cal_path) : default_calibration();
  const Estimate e = estimate(model, cluster, parse_plan(plan_text), gpus, RunShape{seq, micro, global}, cal);
  nlohmann::json j = to_json(e, model, cluster);
  j["calibration"] = cal.source;
  if (vm.count("json")) {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << model.name << " on " << gpus << " x " << cluster.gpu << ", seq " << e.shape.seq << "\n";
  std::cout << "plan: " << plan_to_string(e.plan) << "\n";
  std::cout << std::fixed << std::setprecision(2);
  std::cout << "fits: " << (e.fits ? "yes" : "no (" + e.why_not + ")") << "\n";
  std::cout << "peak memory: " << e.memory.peak() / 1e9 << " GB of " << e.device_capacity_bytes / 1e9
            << " GB, binding: " << mem_term_name(e.memory.binding()) << " (stage " << e.memory.stage << ")\n";
  for (int i = 0; i < static_cast<int>(MemTerm::kCount); ++i) {
    if (e.memory.bytes[i] > 0) {
      std::cout << "  " << std::setw(22) << std::left << mem_term_name(static_cast<MemTerm>(i)) << std::right
                << std::setw(10) << e.memory.bytes[i] / 1e9 << " GB\n";
    }
  }
  std::cout << "step time: " << std::setprecision(4) << e.time.step << " s\n";
  for (const auto& [k, v] : j["time"]["breakdown"].items()) {
    if (v.get<double>() > 0) std::cout << "  " << std::setw(22) << std::left << k << std::right << std::setw(10) << v.get<double>() << " s\n";
  }
  std::cout << std::setprecision(1) << "throughput: " << e.tokens_per_s << " tokens/s, " << e.tflops_per_gpu
            << " TFLOP/s per GPU, MFU " << std::setprecision(3) << e.mfu << "\n";
  return 0;
}

}  // namespace
SEQSCALE_VERB("predict", "cost-model memory, step time and throughput for one plan", run_predict);
}  // namespace seqscale::cli
