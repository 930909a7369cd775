// seqscale maxseq: the cost model's longest sequence that fits per GPU count for a
// framework preset (max_sequence(), model/search.h: the max over its feasible plans), with
// the plan and the memory term that binds. With --at-seq S it also reports the fastest
// feasible plan of the preset at length S. (`seqscale bench --maxseq AXIS` is the measured
// counterpart: it bisects a matrix axis on the hardware, harness/measured_max_seq.h.)
//   seqscale maxseq --model genslm-25b --cluster dgx-a100-40g --gpus 16,32,64 --preset seqscale-best --json
#include <iomanip>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "harness/cli/verb.h"
#include "model/search.h"
#include "workloads/specs.h"

namespace seqscale::cli {
namespace {

std::vector<std::int64_t> parse_gpu_list(const std::string& text) {
  std::vector<std::int64_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      std::size_t pos = 0;
      const long long v = std::stoll(item, &pos);
      if (pos != item.size() || v <= 0) throw std::invalid_argument("");
      out.push_back(v);
    } catch (const std::exception&) {
      throw UsageError("--gpus: '" + item + "' is not a positive integer");
    }
  }
  if (out.empty()) throw UsageError("--gpus: give one or more counts, e.g. 16,32,64");
  return out;
}

int run_maxseq(const std::vector<std::string>& args) {
  std::string model_name, cluster_name, gpus_text, preset_name;
  std::int64_t granularity = 1024, limit = 1 << 24, at_seq = 0;
  std::string cal_path;
  po::options_description opts;
  opts.add_options()
    ("model", po::value(&model_name)->required(), "model name or .json path")
    ("cluster", po::value(&cluster_name)->required(), "cluster name or .json path")
    ("gpus", po::value(&gpus_text)->required(), "GPU counts, comma separated")
    ("preset", po::value(&preset_name)->default_value("seqscale-best"), "framework preset (plan space)")
    ("granularity", po::value(&granularity)->default_value(1024), "sequence grid step")
    ("limit", po::value(&limit)->default_value(1 << 24), "longest sequence to consider")
    ("at-seq", po::value(&at_seq)->default_value(0), "also report the fastest feasible plan at this length")
    ("calibration", po::value(&cal_path), "calibration file for --at-seq timing (default: documented defaults)")
    ("json", "print a JSON array");
  po::variables_map vm;
  if (!parse_args("maxseq", args, opts, vm, nullptr,
                  "--model M --cluster C --gpus N[,N...] --preset P [--granularity 1024] [--json]")) {
    return 0;
  }
  if (granularity <= 0) throw UsageError("--granularity must be positive");
  if (at_seq < 0) throw UsageError("--at-seq must not be negative");
  const std::vector<std::int64_t> gpu_counts = parse_gpu_list(gpus_text);
  const ModelSpec model = load_model(model_name);
  const ClusterSpec cluster = load_cluster(cluster_name);
  const Preset& preset = find_preset(preset_name);
  const Calibration cal = vm.count("calibration") ? load_calibration(cal_path) : default_calibration();
  nlohmann::json arr = nlohmann::json::array();
  for (std::int64_t g : gpu_counts) {
    const MaxSeqResult r = max_sequence(model, cluster, g, preset, granularity, limit);
    nlohmann::json j = {{"model", model.name}, {"cluster", cluster.name}, {"gpus", g}, {"preset", preset.name},
                        {"max_seq", r.max_seq}};
    j["plan"] = r.max_seq > 0 ? nlohmann::json(plan_to_string(r.plan)) : nlohmann::json(nullptr);
    j["binding"] = r.max_seq > 0 ? nlohmann::json(std::string(mem_term_name(r.binding))) : nlohmann::json("model_states");
    j["peak_bytes"] = r.peak_bytes;
    if (at_seq > 0) {
      const BestPlan best = best_plan(model, cluster, g, preset, RunShape{at_seq, 1, 0}, cal);
      nlohmann::json f = {{"seq", at_seq}, {"found", best.found}};
      if (best.found) {
        f["plan"] = plan_to_string(best.estimate.plan);
        f["step_s"] = best.estimate.time.step;
        f["tokens_per_s"] = best.estimate.tokens_per_s;
        f["tflops_per_gpu"] = best.estimate.tflops_per_gpu;
        f["peak_bytes"] = best.estimate.memory.peak();
      }
      j["fastest"] = f;
    }
    arr.push_back(j);
  }
  if (vm.count("json")) {
    std::cout << arr.dump(2) << "\n";
    return 0;
  }
  std::cout << model.name << " on " << cluster.name << ", preset " << preset.name << "\n";
  for (const auto& j : arr) {
    std::cout << std::setw(5) << j["gpus"].get<std::int64_t>() << " GPUs: max_seq " << std::setw(8)
              << j["max_seq"].get<std::int64_t>() << "  binding " << j["binding"].get<std::string>();
    if (!j["plan"].is_null()) std::cout << "  plan " << j["plan"].get<std::string>();
    std::cout << "\n";
    if (j.contains("fastest")) {
      const auto& f = j["fastest"];
      if (f["found"].get<bool>()) {
        std::cout << "         fastest at " << at_seq << ": " << f["plan"].get<std::string>() << "  step "
                  << f["step_s"].get<double>() << " s, " << f["tokens_per_s"].get<double>() << " tokens/s\n";
      } else {
        std::cout << "         nothing fits at " << at_seq << "\n";
      }
    }
  }
  return 0;
}

}  // namespace
SEQSCALE_VERB("maxseq", "longest sequence that fits per GPU count for a framework preset", run_maxseq);
}  // namespace seqscale::cli
