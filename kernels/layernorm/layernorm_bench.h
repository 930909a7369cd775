// What the CPU and CUDA LayerNorm benchmarks share: the check of a point's outputs against
// the double reference (layernorm_ref.h), read through BenchState::read_rows so the same
// code serves host and device buffers. Every row is checked when the reference fits the
// check budget; otherwise an even sample of rows (dweight/dbias, sums over every row, are
// then not checked, and CheckResult::scope says so).
#pragma once
#include <string>
#include <vector>

#include "harness/bench/registry.h"
#include "kernels/layernorm/layernorm_ref.h"

namespace seqscale {

inline constexpr double kLayernormEps = 1e-5;

struct LayerNormCheckRows {
  std::vector<std::int64_t> rows;
  bool all = false;
  std::string scope;
};

inline LayerNormCheckRows layernorm_check_rows(std::int64_t rows, std::int64_t cols) {
  LayerNormCheckRows r;
  // ~10 double operations per element for forward and backward; at most 1024 sampled rows
  // (one read each on a device).
  const std::int64_t fit = slices_within_budget(rows, 10.0 * static_cast<double>(cols));
  r.rows = sample_indices(rows, fit >= rows ? rows : std::min<std::int64_t>(fit, 1024));
  r.all = static_cast<std::int64_t>(r.rows.size()) == rows;
  if (!r.all) r.scope = std::to_string(r.rows.size()) + " of " + std::to_string(rows) + " rows";
  return r;
}

inline CheckResult check_layernorm_fwd(BenchState& s, const void* x, const void* w, const void* b, const void* y,
                                       std::int64_t rows, std::int64_t cols, DType io) {
  const LayerNormCheckRows sel = layernorm_check_rows(rows, cols);
  const std::vector<float> got = s.read_rows(y, sel.rows, cols, io);  // the output first (see the test hook)
  const std::vector<float> xs = s.read_rows(x, sel.rows, cols, io);
  const std::vector<float> ws = s.read_rows(w, {0}, cols, io), bs = s.read_rows(b, {0}, cols, io);
  const auto ref = layernorm_fwd_ref(xs, ws, bs, static_cast<std::int64_t>(sel.rows.size()), cols, kLayernormEps);
  CheckResult r = compare_values("y", got, ref.y, layernorm_y_tolerance(io));
  r.scope = sel.scope;
  return r;
}

// dweight/dbias are fp32 ([cols]); dx in the I/O dtype.
inline CheckResult check_layernorm_bwd(BenchState& s, const void* dy, const void* x, const void* w, const void* dx,
                                       const float* dweight, const float* dbias, std::int64_t rows, std::int64_t cols,
                                       DType io) {
  const LayerNormCheckRows sel = layernorm_check_rows(rows, cols);
  const std::vector<float> got_dx = s.read_rows(dx, sel.rows, cols, io);
  const std::vector<float> dys = s.read_rows(dy, sel.rows, cols, io), xs = s.read_rows(x, sel.rows, cols, io);
  const std::vector<float> ws = s.read_rows(w, {0}, cols, io);
  const auto ref = layernorm_bwd_ref(dys, xs, ws, static_cast<std::int64_t>(sel.rows.size()), cols, kLayernormEps);
  CheckResult r = compare_values("dx", got_dx, ref.dx, layernorm_dx_tolerance(io));
  if (sel.all) {
    r.merge(compare_values("dweight", s.read_rows(dweight, {0}, cols, DType::kFp32), ref.dweight,
                           layernorm_param_grad_tolerance(rows)));
    r.merge(compare_values("dbias", s.read_rows(dbias, {0}, cols, DType::kFp32), ref.dbias,
                           layernorm_param_grad_tolerance(rows)));
  } else {
    r.scope = sel.scope + "; dweight, dbias not checked (sums over every row)";
  }
  return r;
}

}  // namespace seqscale
