// Which rows a bench's check compares against the double reference: every row when the
// reference fits the check budget (check_result.h), otherwise an even sample of at most
// `max_sampled` rows (always the first and the last), named in CheckResult::scope. A row
// is whatever slice the kernel treats independently (a token, a head vector). Sums over
// every row (a bias or weight gradient) are checkable only when `all`.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "common/check_result.h"

namespace seqscale {

struct RowSample {
  std::vector<std::int64_t> rows;
  bool all = false;
  std::string scope;  // "" when all, else "12 of 32768 rows"
};

// `ref_ops_per_row`: the reference's multiply-adds for one row (forward and backward
// together when one check does both).
inline RowSample sample_rows(std::int64_t rows, double ref_ops_per_row, std::int64_t max_sampled = 1024,
                             const std::string& noun = "rows") {
  RowSample s;
  const std::int64_t fit = slices_within_budget(rows, ref_ops_per_row);
  s.rows = sample_indices(rows, fit >= rows ? rows : std::min(fit, max_sampled));
  s.all = static_cast<std::int64_t>(s.rows.size()) == rows;
  if (!s.all) s.scope = std::to_string(s.rows.size()) + " of " + std::to_string(rows) + " " + noun;
  return s;
}

}  // namespace seqscale
