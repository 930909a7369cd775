// seqscale gate BASELINE CANDIDATE: PASS / INCONCLUSIVE / FAIL per point and overall.
//   seqscale gate results/baselines/nvidia-h100-80gb-hbm3.json out/ci/results.json --markdown gate.md
//   seqscale gate --baseline-dir results/baselines out/ci/results.json   (the file named after its device)
//   seqscale gate --update-baseline results/baselines/model.json new.json --reason "pipeline pricing"
// Exit 0 on PASS or INCONCLUSIVE, 1 on FAIL, 2 on unusable input (different devices or
// drivers too). --update-baseline prints the diff, then replaces the baseline and exits 0.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "harness/build_info.h"
#include "harness/cli/verb.h"
#include "harness/gate.h"
#include "workloads/config_error.h"

namespace seqscale::cli {
namespace {

std::string first_env(std::initializer_list<const char*> names) {
  for (const char* n : names) {
    if (const char* v = std::getenv(n); v && *v) return v;
  }
  return "unknown";
}

void write_file(const std::string& text, const std::string& path, const char* flag) {
  try {
    write_text_atomic(text, path);
  } catch (const std::exception& e) {
    throw UsageError(std::string("seqscale gate: ") + flag + " '" + path + "': " + e.what());
  }
}

// --update-baseline: show what moves, then replace the baseline, stamped.
int update_baseline(const std::string& baseline, const ResultsFile& cand, const GateOptions& g, const std::string& by,
                    const std::string& reason) {
  std::optional<ResultsFile> previous;
  if (std::filesystem::exists(baseline)) {
    previous = read_results(baseline);
    std::cout << gate_table(gate(*previous, cand, g), true);
  }
  BaselineStamp stamp{by.empty() ? first_env({"SEQSCALE_BASELINE_BY", "GITHUB_ACTOR", "USER", "LOGNAME"}) : by,
                      utc_now_iso8601(), cand.run.git_commit, reason};
  write_results_atomic(make_baseline(cand, previous, stamp), baseline);
  std::cout << "baseline " << (previous ? "replaced" : "created") << ": " << baseline << " (" << cand.points.size()
            << " points; by " << stamp.who << ", " << stamp.when << ", commit " << stamp.commit << ")\n";
  return 0;
}

int run_gate(const std::vector<std::string>& args) {
  po::options_description opts;
  std::string baseline, candidate, baseline_dir, markdown, json_out, reason, by;
  GateOptions g;
  opts.add_options()
    ("baseline", po::value(&baseline), "baseline results.json")
    ("candidate", po::value(&candidate), "candidate results.json")
    ("baseline-dir", po::value(&baseline_dir),
     "take the baseline from DIR/<device>.json, the device named by the candidate (results/baselines)")
    ("json", "print the comparison as JSON instead of the table")
    ("changes-only", "leave the unchanged PASS rows out of the table")
    ("json-out", po::value(&json_out), "also write the comparison as JSON to this file")
    ("markdown", po::value(&markdown), "also write a Markdown summary (a CI job summary) to this file")
    ("min-band", po::value(&g.min_band)->default_value(g.min_band), "smallest noise band (relative)")
    ("noise-multiplier", po::value(&g.noise_multiplier)->default_value(g.noise_multiplier),
     "band = max(min-band, this x the run-to-run spread, this x the spread across points); 0: by the "
     "number of points compared (4.0 for 8)")
    ("alpha", po::value(&g.alpha)->default_value(g.alpha), "family-wise significance level (Holm over the points)")
    ("confidence", po::value(&g.confidence)->default_value(g.confidence), "confidence of the ratio's interval")
    ("tolerance", po::value(&g.exact_rel_tol)->default_value(g.exact_rel_tol),
     "relative tolerance of deterministic values (predictions, declared work)")
    ("memory-tolerance", po::value(&g.memory_rel_tol)->default_value(g.memory_rel_tol),
     "relative growth of measured memory allowed (0: none)")
    ("update-baseline", "replace BASELINE with CANDIDATE (after printing the diff), stamped with who, when and the commit")
    ("reason", po::value(&reason), "with --update-baseline: why (required)")
    ("by", po::value(&by), "with --update-baseline: who (default $SEQSCALE_BASELINE_BY, $GITHUB_ACTOR, $USER)");
  po::positional_options_description pos;
  pos.add("baseline", 1).add("candidate", 1);
  po::variables_map vm;
  if (!parse_args("gate", args, opts, vm, &pos,
                  "BASELINE CANDIDATE [--json] [--markdown FILE] | --baseline-dir DIR CANDIDATE | "
                  "--update-baseline BASELINE CANDIDATE --reason TEXT")) {
    return 0;
  }
  if (!baseline_dir.empty()) {
    if (!candidate.empty()) throw UsageError("seqscale gate: --baseline-dir takes one file, the candidate");
    candidate = baseline;
  }
  if (candidate.empty() || (baseline.empty() && baseline_dir.empty())) {
    throw UsageError("seqscale gate: needs BASELINE and CANDIDATE (or --baseline-dir DIR CANDIDATE)");
  }
  if (g.min_band < 0 || g.min_band > 1) throw UsageError("seqscale gate: --min-band must be in [0, 1]");
  if (g.alpha <= 0 || g.alpha >= 1) throw UsageError("seqscale gate: --alpha must be in (0, 1)");
  if (g.confidence <= 0 || g.confidence >= 1) throw UsageError("seqscale gate: --confidence must be in (0, 1)");
  if (g.noise_multiplier < 0) throw UsageError("seqscale gate: --noise-multiplier must not be negative");
  if (g.exact_rel_tol < 0 || g.memory_rel_tol < 0) throw UsageError("seqscale gate: tolerances must not be negative");

  // Read in order, so the first bad file is the one named.
  std::optional<ResultsFile> base;
  if (baseline_dir.empty() && !vm.count("update-baseline")) base = read_results(baseline);
  const ResultsFile cand = read_results(candidate);
  if (!baseline_dir.empty()) {
    baseline = (std::filesystem::path(baseline_dir) / (baseline_name(cand.run.device) + ".json")).string();
    if (!std::filesystem::exists(baseline) && !vm.count("update-baseline")) {
      throw ConfigError("no baseline for device '" + cand.run.device + "': expected " + baseline +
                        "; record one with: seqscale gate --update-baseline " + baseline + " " + candidate +
                        " --reason \"first baseline\"");
    }
  }
  if (vm.count("update-baseline")) {
    if (reason.empty()) throw UsageError("seqscale gate: --update-baseline needs --reason (a deliberate replacement)");
    return update_baseline(baseline, cand, g, by, reason);
  }
  if (!base) base = read_results(baseline);
  const GateReport r = gate(*base, cand, g);
  if (!markdown.empty()) write_file(gate_markdown(r), markdown, "--markdown");
  if (!json_out.empty()) write_file(gate_json(r).dump(2) + "\n", json_out, "--json-out");
  if (vm.count("json")) std::cout << gate_json(r).dump(2) << "\n";
  else std::cout << gate_table(r, vm.count("changes-only") > 0);
  return r.overall == GateOutcome::kFail ? 1 : 0;
}

}  // namespace
SEQSCALE_VERB("gate", "compare two results files: PASS, INCONCLUSIVE or FAIL", run_gate);
}  // namespace seqscale::cli
