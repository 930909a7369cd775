// seqscale calibrate --results DIR|FILE... --out FILE [--cluster C]: fits the cost model's
// efficiencies from measured GPU results and writes the calibration file atomically.
#include <filesystem>
#include <iostream>

#include "harness/calibrate.h"
#include "harness/cli/verb.h"

namespace seqscale::cli {
namespace {

int run_calibrate(const std::vector<std::string>& args) {
  po::options_description opts;
  std::vector<std::string> inputs;
  std::string out, cluster_name;
  opts.add_options()
    ("results", po::value(&inputs)->multitoken()->required(), "results.json files or folders of them")
    ("out", po::value(&out)->required(), "calibration file to write")
    ("cluster", po::value(&cluster_name), "cluster whose peaks define 100% (default: matched by device)");
  po::variables_map vm;
  if (!parse_args("calibrate", args, opts, vm, nullptr, "--results DIR --out FILE")) return 0;
  std::vector<ResultsFile> results;
  for (const auto& in : inputs) {
    if (std::filesystem::is_directory(in)) {
      for (const auto& e : std::filesystem::recursive_directory_iterator(in)) {
        if (e.path().filename() == "results.json") results.push_back(read_results(e.path().string()));
      }
    } else {
      results.push_back(read_results(in));
    }
  }
  if (results.empty()) throw UsageError("seqscale calibrate: no results.json found under --results");
  if (cluster_name.empty()) cluster_name = cluster_for_device(results.front().run.device);
  const CalibrationFit fit = fit_calibration(results, load_cluster(cluster_name));
  save_calibration(fit.calibration, out);
  for (const auto& n : fit.notes) std::cout << n << "\n";
  std::cout << "calibration: " << out << "\n";
  return 0;
}

}  // namespace
SEQSCALE_VERB("calibrate", "fit the cost model's efficiencies from measured results", run_calibrate);
}  // namespace seqscale::cli
