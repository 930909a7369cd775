// The published numbers the cost model is checked against (ANCHORS.md), each with its
// source, its tolerance and the model's prediction. `seqscale validate` prints them and
// fails when a claimed row is outside its tolerance; tests/model checks the same rows.
#pragma once
#include <string>
#include <vector>

namespace seqscale {

struct AnchorRow {
  std::string group;      // "zero", "evoformer", "figure9", "figure9-order", "gpt30b"
  std::string name;       // what is compared
  std::string source;     // citation
  std::string unit;       // "GB", "K tokens", "TFLOP/s", "bool"
  double published = 0;
  double predicted = 0;
  double tolerance = 0;   // absolute, in `unit`
  bool claimed = true;    // false: reported, not gated (note says why)
  std::string note;
  // > 0 when the published experiment stepped its input on a grid: the published value v is
  // then the last grid point that ran, so the true value lies in [v, v + grid_step) and a
  // prediction in that cell agrees with it exactly.
  double grid_step = 0;
  bool in_grid_cell() const;  // predicted in [published, published + grid_step)
  bool ok() const;        // |predicted - published| <= tolerance, or in the grid cell
};

// Computes every row (needs the workloads/ model and cluster files). Fast: well under a second.
std::vector<AnchorRow> validate_anchors();

}  // namespace seqscale
