// What the CPU and CUDA bias_gelu benchmarks share: the check of a point's outputs against
// the double reference (bias_gelu_ref.h), read through BenchState::read_rows so the same
// code serves host and device buffers. Every row when the reference fits the check
// budget, otherwise an even sample of rows (dbias, a sum over every row, is then not
// checked and CheckResult::scope says so).
#pragma once
#include <vector>

#include "harness/bench/registry.h"
#include "kernels/bias_gelu/bias_gelu_ref.h"
#include "kernels/common/row_sample.h"

namespace seqscale {

// ~30 double operations per element forward and backward (tanh, the cubic, the product).
inline RowSample bias_gelu_check_rows(std::int64_t rows, std::int64_t cols) {
  return sample_rows(rows, 30.0 * static_cast<double>(cols));
}

inline CheckResult check_bias_gelu_fwd(BenchState& s, const void* x, const void* bias, const void* y, std::int64_t rows,
                                       std::int64_t cols, DType io) {
  const RowSample sel = bias_gelu_check_rows(rows, cols);
  const std::vector<float> got = s.read_rows(y, sel.rows, cols, io);  // the output first (the test hook plants there)
  const std::vector<float> xs = s.read_rows(x, sel.rows, cols, io), bs = s.read_rows(bias, {0}, cols, io);
  CheckResult r = compare_values("y", got, bias_gelu_fwd_ref(xs, bs, static_cast<std::int64_t>(sel.rows.size()), cols),
                                 bias_gelu_y_tolerance(io));
  r.scope = sel.scope;
  return r;
}

// dbias is fp32 ([cols]) or null (not computed); dx in the I/O dtype.
inline CheckResult check_bias_gelu_bwd(BenchState& s, const void* dy, const void* x, const void* bias, const void* dx,
                                       const float* dbias, std::int64_t rows, std::int64_t cols, DType io) {
  const RowSample sel = bias_gelu_check_rows(rows, cols);
  const std::vector<float> got = s.read_rows(dx, sel.rows, cols, io);
  const std::vector<float> dys = s.read_rows(dy, sel.rows, cols, io), xs = s.read_rows(x, sel.rows, cols, io);
  const std::vector<float> bs = s.read_rows(bias, {0}, cols, io);
  const auto ref = bias_gelu_bwd_ref(dys, xs, bs, static_cast<std::int64_t>(sel.rows.size()), cols);
  CheckResult r = compare_values("dx", got, ref.dx, bias_gelu_dx_tolerance(io));
  r.scope = sel.scope;
  if (dbias && sel.all) {
    r.merge(compare_values("dbias", s.read_rows(dbias, {0}, cols, DType::kFp32), ref.dbias,
                           bias_gelu_dbias_tolerance(rows)));
  } else if (dbias) {
    r.scope += "; dbias not checked (a sum over every row)";
  }
  return r;
}

}  // namespace seqscale
