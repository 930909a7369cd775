// One comparison rule for every kernel against its double CPU reference, shared by the
// tests (tests/kernels/*) and the benches' check-before-time (BenchState::check), so a
// bench's "check ok" means exactly what the kernel's test means.
//
// An element passes when |got - want| <= abs + rel * |want| + rel_to_max * max|want|
// (max over the compared output). Both infinite with the same sign pass; a NaN, or an
// infinity where the reference is finite, fails. Each kernel states its tolerance per
// dtype next to its reference (e.g. layernorm_fwd_tolerance in layernorm_ref.h).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace seqscale {

struct CheckTolerance {
  double abs = 0;         // absolute floor
  double rel = 0;         // relative to the reference element
  double rel_to_max = 0;  // relative to the largest |reference| of the output

  std::string describe() const {
    std::ostringstream os;
    os << "abs " << abs << " + rel " << rel;
    if (rel_to_max > 0) os << " + " << rel_to_max << " x max|ref|";
    return os.str();
  }
};

struct CheckResult {
  double max_abs_err = 0;    // max |got - want| over every compared element
  double max_rel_err = 0;    // max |got - want| / max(|want|, 1e-6)
  CheckTolerance tolerance;  // of the output whose error came closest to its limit
  bool ok = true;
  std::int64_t checked_elements = 0;
  double worst_ratio = 0;    // largest |got - want| / allowed; ok means <= 1
  std::string worst;         // "dq[17]: got 0.12 want 0.2 (allowed 0.05)"
  std::string scope;         // what was compared when not everything was: "4 of 512 rows"

  // Folds another output's comparison into this one (a kernel with several outputs).
  void merge(const CheckResult& o) {
    max_abs_err = std::max(max_abs_err, o.max_abs_err);
    max_rel_err = std::max(max_rel_err, o.max_rel_err);
    checked_elements += o.checked_elements;
    // The reported worst element: a failing one before a passing one, then the larger ratio.
    const bool takes = worst.empty() || (!o.ok && ok) || (o.ok == ok && o.worst_ratio > worst_ratio);
    if (takes) {
      worst_ratio = o.worst_ratio;
      worst = o.worst;
      tolerance = o.tolerance;
    }
    ok = ok && o.ok;
  }
};

// What a bench's check may spend on the double CPU reference: about 4e8 multiply-adds, a
// second or two on one core. Larger points check an evenly spread sample of independent
// slices (rows, (b, n) slices) and say so in CheckResult::scope.
inline constexpr double kCheckReferenceBudget = 4e8;

// Up to `count` indices spread evenly over [0, n), always holding 0 and n - 1.
inline std::vector<std::int64_t> sample_indices(std::int64_t n, std::int64_t count) {
  std::vector<std::int64_t> out;
  if (n <= 0) return out;
  count = std::clamp<std::int64_t>(count, 1, n);
  for (std::int64_t i = 0; i < count; ++i) {
    out.push_back(count == 1 ? 0 : i * (n - 1) / (count - 1));
  }
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// How many of `n` slices of `cost_each` reference multiply-adds fit the budget (at least 1).
inline std::int64_t slices_within_budget(std::int64_t n, double cost_each) {
  const double fit = cost_each > 0 ? kCheckReferenceBudget / cost_each : static_cast<double>(n);
  return std::clamp<std::int64_t>(static_cast<std::int64_t>(fit), 1, std::max<std::int64_t>(n, 1));
}

template <typename Got, typename Want>
CheckResult compare_values(std::string_view name, const Got& got, const Want& want, const CheckTolerance& tol) {
  CheckResult r;
  r.tolerance = tol;
  if (got.size() != want.size()) {
    r.ok = false;
    r.worst_ratio = 1e300;
    r.worst = std::string(name) + ": " + std::to_string(got.size()) + " values, reference has " +
              std::to_string(want.size());
    return r;
  }
  double max_want = 0;
  for (const auto w : want) {
    if (std::isfinite(static_cast<double>(w))) max_want = std::max(max_want, std::fabs(static_cast<double>(w)));
  }
  std::size_t worst_i = 0;
  double worst_allowed = 0;
  bool worst_bad = false;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double g = static_cast<double>(got[i]), w = static_cast<double>(want[i]);
    const double allowed = tol.abs + tol.rel * std::fabs(w) + tol.rel_to_max * max_want;
    double err = 0, ratio = 0;
    bool bad = false;
    if (std::isinf(w) && std::isinf(g) && (w > 0) == (g > 0)) {
      err = 0;
    } else if (!std::isfinite(g) || !std::isfinite(w)) {
      bad = true;
      err = std::numeric_limits<double>::infinity();
      ratio = 1e300;
    } else {
      err = std::fabs(g - w);
      ratio = allowed > 0 ? err / allowed : (err > 0 ? 1e300 : 0);
      bad = err > allowed;
      r.max_abs_err = std::max(r.max_abs_err, err);
      r.max_rel_err = std::max(r.max_rel_err, err / std::max(std::fabs(w), 1e-6));
    }
    if (bad) r.ok = false;
    if ((bad && !worst_bad) || (bad == worst_bad && ratio > r.worst_ratio)) {
      r.worst_ratio = ratio;
      worst_i = i;
      worst_allowed = allowed;
      worst_bad = bad;
    }
  }
  r.checked_elements = static_cast<std::int64_t>(got.size());
  if (!got.empty()) {
    std::ostringstream os;
    os << name << "[" << worst_i << "]: got " << static_cast<double>(got[worst_i]) << " want "
       << static_cast<double>(want[worst_i]) << " (allowed " << worst_allowed << ")";
    r.worst = os.str();
  }
  return r;
}

}  // namespace seqscale
