// seqscale validate: every published anchor the cost model claims (ANCHORS.md), with the
// published value, the prediction and the error; exit 1 when a claimed row is outside its
// tolerance (CI runs it). Rows the model does not claim are printed with the reason.
#include <cmath>
#include <iomanip>
#include <iostream>

#include <nlohmann/json.hpp>

#include "harness/cli/verb.h"
#include "model/anchors.h"

namespace seqscale::cli {
namespace {

int run_validate(const std::vector<std::string>& args) {
  po::options_description opts;
  opts.add_options()("json", "print a JSON array of rows");
  po::variables_map vm;
  if (!parse_args("validate", args, opts, vm, nullptr, "[--json]")) return 0;
  const std::vector<AnchorRow> rows = validate_anchors();
  int failed = 0;
  for (const auto& r : rows) failed += (r.claimed && !r.ok()) ? 1 : 0;
  if (vm.count("json")) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& r : rows) {
      const double err = r.published != 0 ? (r.predicted - r.published) / r.published : 0.0;
      arr.push_back({{"group", r.group}, {"name", r.name}, {"source", r.source}, {"unit", r.unit},
                     {"published", r.published}, {"predicted", r.predicted}, {"error", err},
                     {"tolerance", r.tolerance}, {"grid_step", r.grid_step}, {"in_grid_cell", r.in_grid_cell()}, {"claimed", r.claimed}, {"ok", r.ok()}, {"note", r.note}});
    }
    std::cout << arr.dump(2) << "\n";
  } else {
    std::cout << std::left << std::setw(64) << "anchor" << std::right << std::setw(11) << "published" << std::setw(11)
              << "predicted" << std::setw(9) << "error" << "  status\n";
    for (const auto& r : rows) {
      const double err = r.published != 0 ? 100.0 * (r.predicted - r.published) / r.published : 0.0;
      const bool by_cell = r.in_grid_cell() && std::fabs(r.predicted - r.published) > r.tolerance;
      const char* status = !r.claimed ? "not claimed" : (!r.ok() ? "FAIL" : by_cell ? "ok (grid cell)" : "ok");
      std::cout << std::left << std::setw(64) << r.name.substr(0, 63) << std::right << std::fixed << std::setprecision(2)
                << std::setw(11) << r.published << std::setw(11) << r.predicted << std::setw(8) << std::setprecision(1)
                << err << "%  " << status << "  [" << r.unit << "]";
      if (!r.note.empty()) std::cout << "  " << r.note;
      std::cout << "\n";
    }
    std::cout << rows.size() << " rows, " << failed << " claimed rows outside tolerance\n";
  }
  return failed > 0 ? 1 : 0;
}

}  // namespace
SEQSCALE_VERB("validate", "check the cost model against every published anchor it claims", run_validate);
}  // namespace seqscale::cli
