// seqscale report RESULTS... --out DIR [--scaling MAXSEQ.json ...]: renders PNG plots and an
// index.md with Debian's python3 + matplotlib (reports/report.py); reports never write into
// results/. --scaling takes `seqscale maxseq --json` output: the cost model's longest
// sequence per GPU count and preset, drawn as a scaling plot (Figure 9 style).
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "harness/cli/verb.h"
#include "harness/results/results.h"
#include "workloads/json_fields.h"
#include "workloads/specs.h"

namespace seqscale::cli {
namespace {

// A maxseq file is a JSON array of {model, cluster, gpus, preset, max_seq, ...}; a corrupt
// one is a one-line error naming the entry and field, before python runs.
void check_scaling_file(const std::string& path) {
  const nlohmann::json doc = read_json_file(path, "maxseq file");
  if (!doc.is_array() || doc.empty()) throw ConfigError(path + ": expected the non-empty JSON array of seqscale maxseq --json");
  for (std::size_t i = 0; i < doc.size(); ++i) {
    const auto& e = doc[i];
    auto bad = [&](const char* field, const char* why) {
      throw ConfigError(path + ": entry " + std::to_string(i) + ": field '" + field + "' " + why);
    };
    if (!e.is_object()) throw ConfigError(path + ": entry " + std::to_string(i) + " is not an object");
    for (const char* f : {"gpus", "max_seq"})
      if (!e.contains(f) || !e[f].is_number_integer() || e[f].get<std::int64_t>() < 0) bad(f, "must be a non-negative integer");
    if (e["gpus"].get<std::int64_t>() == 0) bad("gpus", "must be positive");
    for (const char* f : {"preset", "model", "cluster"})
      if (!e.contains(f) || !e[f].is_string()) bad(f, "must be a string");
  }
}

int run_report(const std::vector<std::string>& args) {
  po::options_description opts;
  std::vector<std::string> inputs, scaling;
  std::string out_dir, python;
  opts.add_options()
    ("results", po::value(&inputs)->multitoken(), "results.json files (or folders holding them)")
    ("out", po::value(&out_dir)->required(), "output folder for index.md and PNGs")
    ("python", po::value(&python)->default_value("/usr/bin/python3"), "python with matplotlib")
    ("scaling", po::value(&scaling)->multitoken(), "seqscale maxseq --json files: a max-sequence scaling plot");
  po::positional_options_description pos;
  pos.add("results", -1);
  po::variables_map vm;
  if (!parse_args("report", args, opts, vm, &pos, "RESULTS... --out DIR [--scaling MAXSEQ.json...]")) return 0;
  if (inputs.empty() && scaling.empty()) throw UsageError("seqscale report: give at least one results or --scaling file");
  for (const auto& f : scaling) check_scaling_file(f);
  for (auto& in : inputs) {
    if (std::filesystem::is_directory(in)) in += "/results.json";
    read_results(in);  // validate first: a corrupt file is a one-line error, not a traceback
  }
  const std::string script = source_root() + "/reports/report.py";
  std::vector<std::string> argv_s = {python, script, "--out", out_dir};
  for (const auto& f : scaling) argv_s.insert(argv_s.end(), {"--scaling", f});
  argv_s.insert(argv_s.end(), inputs.begin(), inputs.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    execv(argv[0], argv.data());
    std::cerr << "seqscale report: cannot run " << python << "\n";
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::cerr << "seqscale report: report.py failed\n";
    return 1;
  }
  std::cout << out_dir << "/index.md\n";
  return 0;
}

}  // namespace
SEQSCALE_VERB("report", "render plots and a Markdown index from results", run_report);
}  // namespace seqscale::cli
