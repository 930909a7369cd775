// What the CPU and CUDA rotary benchmarks share: the point's shape (axes batch, seq,
// heads, head_dim, rotary_pct, in_place) and the check of its output against the double
// reference (rotary_ref.h) on every head vector when the reference fits the check budget,
// else an even sample of them. In place the inputs are gone after the call, so the
// checked rows' inputs are read first (rotary_check_inputs, before BenchState::check).
#pragma once
#include <string>
#include <vector>

#include "harness/bench/registry.h"
#include "kernels/common/row_sample.h"
#include "kernels/rotary/rotary_cost.h"
#include "kernels/rotary/rotary_ref.h"
#include "workloads/config_error.h"

namespace seqscale {

inline RotaryShape rotary_shape_of(const BenchState& s) {
  RotaryShape sh;
  sh.batch = s.get_int("batch");
  sh.seq = s.get_int("seq");
  sh.heads = s.get_int("heads");
  sh.head_dim = s.get_int("head_dim");
  try {
    sh.rotary_dims = rotary_dims_of(sh.head_dim, s.get_float("rotary_pct"));
  } catch (const std::invalid_argument& e) {
    throw ConfigError(e.what());
  }
  if (s.has("base")) sh.base = s.get_float("base");
  return sh;
}

struct RotaryCheckInputs {
  RowSample sel;
  std::vector<std::int64_t> positions;  // of the sampled rows
  std::vector<float> in;                // their inputs, read before the call
};

// ~head_dim x 8 double operations per head vector (a pow and a sincos per pair).
inline RotaryCheckInputs rotary_check_inputs(BenchState& s, const RotaryShape& sh, const void* in, DType io) {
  RotaryCheckInputs ci;
  ci.sel = sample_rows(sh.rows(), 8.0 * static_cast<double>(sh.head_dim), 1024, "head vectors");
  for (std::int64_t r : ci.sel.rows) ci.positions.push_back(sh.position_of_row(r));
  ci.in = s.read_rows(in, ci.sel.rows, sh.head_dim, io);
  return ci;
}

inline CheckResult check_rotary(BenchState& s, const RotaryShape& sh, const RotaryCheckInputs& ci, const void* out,
                                DType io, bool inverse) {
  const std::vector<float> got = s.read_rows(out, ci.sel.rows, sh.head_dim, io);
  CheckResult r = compare_values(inverse ? "dx" : "y", got, rotary_rows_ref(ci.in, ci.positions, sh, inverse),
                                 rotary_tolerance(io));
  r.scope = ci.sel.scope;
  return r;
}

}  // namespace seqscale
