// What the CPU and CUDA RMSNorm benchmarks share: the check of a point's outputs against
// the double reference (rmsnorm_ref.h), read through BenchState::read_rows so the same
// code serves host and device buffers; every row when the reference fits the check
// budget, otherwise an even sample of rows (dweight, a sum over every row, is then not
// checked and CheckResult::scope says so).
#pragma once
#include <vector>

#include "harness/bench/registry.h"
#include "kernels/common/row_sample.h"
#include "kernels/rmsnorm/rmsnorm_ref.h"

namespace seqscale {

inline constexpr double kRmsnormEps = 1e-6;  // Llama's rms_norm_eps

// ~8 double operations per element forward and backward.
inline RowSample rmsnorm_check_rows(std::int64_t rows, std::int64_t cols) {
  return sample_rows(rows, 8.0 * static_cast<double>(cols));
}

// rstd: fp32 [rows] as saved by the forward (null: not checked).
inline CheckResult check_rmsnorm_fwd(BenchState& s, const void* x, const void* w, const void* y, const float* rstd,
                                     std::int64_t rows, std::int64_t cols, DType io) {
  const RowSample sel = rmsnorm_check_rows(rows, cols);
  const std::vector<float> got = s.read_rows(y, sel.rows, cols, io);  // the output first (the test hook plants there)
  const std::vector<float> xs = s.read_rows(x, sel.rows, cols, io), ws = s.read_rows(w, {0}, cols, io);
  const auto ref = rmsnorm_fwd_ref(xs, ws, static_cast<std::int64_t>(sel.rows.size()), cols, kRmsnormEps);
  CheckResult r = compare_values("y", got, ref.y, rmsnorm_y_tolerance(io));
  if (rstd) r.merge(compare_values("rstd", s.read_rows(rstd, sel.rows, 1, DType::kFp32), ref.rstd, rmsnorm_rstd_tolerance()));
  r.scope = sel.scope;
  return r;
}

// dweight is fp32 ([cols]) or null (not computed); dx in the I/O dtype.
inline CheckResult check_rmsnorm_bwd(BenchState& s, const void* dy, const void* x, const void* w, const void* dx,
                                     const float* dweight, std::int64_t rows, std::int64_t cols, DType io) {
  const RowSample sel = rmsnorm_check_rows(rows, cols);
  const std::vector<float> got = s.read_rows(dx, sel.rows, cols, io);
  const std::vector<float> dys = s.read_rows(dy, sel.rows, cols, io), xs = s.read_rows(x, sel.rows, cols, io);
  const std::vector<float> ws = s.read_rows(w, {0}, cols, io);
  const auto ref = rmsnorm_bwd_ref(dys, xs, ws, static_cast<std::int64_t>(sel.rows.size()), cols, kRmsnormEps);
  CheckResult r = compare_values("dx", got, ref.dx, rmsnorm_dx_tolerance(io));
  r.scope = sel.scope;
  if (dweight && sel.all) {
    r.merge(compare_values("dweight", s.read_rows(dweight, {0}, cols, DType::kFp32), ref.dweight,
                           rmsnorm_dweight_tolerance(rows)));
  } else if (dweight) {
    r.scope += "; dweight not checked (a sum over every row)";
  }
  return r;
}

}  // namespace seqscale
