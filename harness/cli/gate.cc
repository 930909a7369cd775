// seqscale gate BASELINE CANDIDATE: PASS / INCONCLUSIVE / FAIL per point and overall.
// Exit 0 on PASS or INCONCLUSIVE, 1 on FAIL, 2 on unusable input (different devices too).
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "harness/cli/verb.h"
#include "harness/gate.h"

namespace seqscale::cli {
namespace {

int run_gate(const std::vector<std::string>& args) {
  po::options_description opts;
  std::string baseline, candidate;
  GateOptions g;
  opts.add_options()
    ("baseline", po::value(&baseline)->required(), "baseline results.json")
    ("candidate", po::value(&candidate)->required(), "candidate results.json")
    ("min-band", po::value(&g.min_band)->default_value(g.min_band), "smallest noise band (relative)")
    ("alpha", po::value(&g.alpha)->default_value(g.alpha), "family-wise significance level")
    ("json", "print the comparison as JSON");
  po::positional_options_description pos;
  pos.add("baseline", 1).add("candidate", 1);
  po::variables_map vm;
  if (!parse_args("gate", args, opts, vm, &pos, "BASELINE CANDIDATE [--json]")) return 0;
  if (g.min_band < 0 || g.min_band > 1) throw UsageError("seqscale gate: --min-band must be in [0, 1]");
  if (g.alpha <= 0 || g.alpha >= 1) throw UsageError("seqscale gate: --alpha must be in (0, 1)");

  const ResultsFile base = read_results(baseline);  // in order: the first bad file is named
  const ResultsFile cand = read_results(candidate);
  const GateReport r = gate(base, cand, g);
  if (vm.count("json")) {
    nlohmann::json j;
    j["overall"] = gate_outcome_name(r.overall);
    for (const auto& row : r.rows) {
      j["rows"].push_back({{"id", row.id}, {"outcome", gate_outcome_name(row.outcome)}, {"ratio", row.ratio},
                           {"ci", {row.ci_lo, row.ci_hi}}, {"p", row.p_value}, {"band", row.band},
                           {"check", row.check}, {"note", row.note}});
    }
    std::cout << j.dump(2) << "\n";
  } else {
    std::printf("%-13s %8s %17s %9s %6s %-6s  %s\n", "outcome", "ratio", "95% CI", "p", "band", "check", "point");
    for (const auto& row : r.rows) {
      std::printf("%-13s %8.4f [%7.4f,%7.4f] %9.2g %5.1f%% %-6s  %s%s%s\n",
                  std::string(gate_outcome_name(row.outcome)).c_str(), row.ratio, row.ci_lo, row.ci_hi,
                  row.p_value, row.band * 100, row.check.c_str(), row.id.c_str(), row.note.empty() ? "" : "  -- ",
                  row.note.c_str());
    }
    std::printf("overall: %s\n", std::string(gate_outcome_name(r.overall)).c_str());
  }
  return r.overall == GateOutcome::kFail ? 1 : 0;
}

}  // namespace
SEQSCALE_VERB("gate", "compare two results files: PASS, INCONCLUSIVE or FAIL", run_gate);
}  // namespace seqscale::cli
