// What the CPU and CUDA SwiGLU benchmarks share: the check of a point's outputs against the
// double reference (swiglu_ref.h), read through BenchState::read_rows so the same code
// serves host and device buffers; every row when the reference fits the check budget,
// otherwise an even sample of rows (CheckResult::scope says which).
#pragma once
#include <vector>

#include "harness/bench/registry.h"
#include "kernels/common/row_sample.h"
#include "kernels/swiglu/swiglu_ref.h"

namespace seqscale {

// ~20 double operations per output forward and backward (an exp, a divide, products).
inline RowSample swiglu_check_rows(std::int64_t rows, std::int64_t ffn) {
  return sample_rows(rows, 20.0 * static_cast<double>(ffn));
}

inline CheckResult check_swiglu_fwd(BenchState& s, const void* x, const void* y, std::int64_t rows, std::int64_t ffn,
                                    DType io) {
  const RowSample sel = swiglu_check_rows(rows, ffn);
  const std::vector<float> got = s.read_rows(y, sel.rows, ffn, io);  // the output first (the test hook plants there)
  const std::vector<float> xs = s.read_rows(x, sel.rows, 2 * ffn, io);
  CheckResult r = compare_values("y", got, swiglu_fwd_ref(xs, static_cast<std::int64_t>(sel.rows.size()), ffn),
                                 swiglu_y_tolerance(io));
  r.scope = sel.scope;
  return r;
}

inline CheckResult check_swiglu_bwd(BenchState& s, const void* dy, const void* x, const void* dx, std::int64_t rows,
                                    std::int64_t ffn, DType io) {
  const RowSample sel = swiglu_check_rows(rows, ffn);
  const std::vector<float> got = s.read_rows(dx, sel.rows, 2 * ffn, io);
  const std::vector<float> dys = s.read_rows(dy, sel.rows, ffn, io), xs = s.read_rows(x, sel.rows, 2 * ffn, io);
  CheckResult r = compare_values("dx", got, swiglu_bwd_ref(dys, xs, static_cast<std::int64_t>(sel.rows.size()), ffn),
                                 swiglu_dx_tolerance(io));
  r.scope = sel.scope;
  return r;
}

}  // namespace seqscale
