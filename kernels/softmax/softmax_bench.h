// What the CPU and CUDA softmax benchmarks share: the point's shape (axes B, N, H, rows,
// cols) and the check of its output against the double reference (softmax_ref.h), read
// through BenchState::read_rows so the same code serves host and device buffers. The
// check covers every row when the reference fits the check budget, else an even sample.
#pragma once
#include <string>
#include <vector>

#include "harness/bench/registry.h"
#include "kernels/softmax/softmax_cost.h"
#include "kernels/softmax/softmax_ref.h"

namespace seqscale {

inline SoftmaxShape softmax_shape_of(const BenchState& s) {
  SoftmaxShape sh;
  sh.batch = s.get_int("B");
  sh.n = s.get_int("N");
  sh.heads = s.get_int("H");
  sh.rows = s.get_int("rows");
  sh.cols = s.get_int("cols");
  return sh;
}

// Rows of the flattened [B*N*H*rows, cols] problem the check compares (~8 reference
// operations per element; at most 1024 sampled rows, one read each on a device).
inline std::vector<std::int64_t> softmax_check_rows(const SoftmaxShape& sh, std::string* scope) {
  const std::int64_t total = sh.batch * sh.n * sh.heads * sh.rows;
  const std::int64_t fit = slices_within_budget(total, 8.0 * static_cast<double>(sh.cols));
  auto rows = sample_indices(total, fit >= total ? total : std::min<std::int64_t>(fit, 1024));
  if (static_cast<std::int64_t>(rows.size()) < total) *scope = std::to_string(rows.size()) + " of " + std::to_string(total) + " rows";
  return rows;
}

// The forward's inputs for the checked rows, read before the (in-place) call.
struct SoftmaxCheckInputs {
  std::vector<std::int64_t> rows;
  std::string scope;
  std::vector<float> x, mask, bias;  // per checked row: its x row, mask row, bias row
};

inline SoftmaxCheckInputs softmax_check_inputs(BenchState& s, const SoftmaxShape& sh, const void* x, const void* mask,
                                               const void* bias, DType io) {
  SoftmaxCheckInputs in;
  in.rows = softmax_check_rows(sh, &in.scope);
  in.x = s.read_rows(x, in.rows, sh.cols, io);
  std::vector<std::int64_t> mask_rows, bias_rows;
  for (std::int64_t g : in.rows) {
    const std::int64_t r = g % sh.rows, h = (g / sh.rows) % sh.heads, bn = g / (sh.rows * sh.heads);
    const std::int64_t b = bn / sh.n;
    mask_rows.push_back(bn);
    bias_rows.push_back((b * sh.heads + h) * sh.rows + r);
  }
  if (mask) in.mask = s.read_rows(mask, mask_rows, sh.cols, io);
  if (bias) in.bias = s.read_rows(bias, bias_rows, sh.cols, io);
  return in;
}

inline CheckResult check_softmax_fwd(BenchState& s, const SoftmaxShape& sh, const SoftmaxCheckInputs& in, const void* y,
                                     float scale, DType io) {
  const std::vector<float> got = s.read_rows(y, in.rows, sh.cols, io);
  const SoftmaxShape one{1, 1, 1, 1, sh.cols};
  std::vector<double> want;
  want.reserve(got.size());
  const auto c = static_cast<std::size_t>(sh.cols);
  for (std::size_t i = 0; i < in.rows.size(); ++i) {
    const std::vector<float> xr(in.x.begin() + static_cast<std::ptrdiff_t>(i * c), in.x.begin() + static_cast<std::ptrdiff_t>((i + 1) * c));
    const auto yr = softmax_fwd_ref(xr, in.mask.empty() ? nullptr : in.mask.data() + i * c,
                                    in.bias.empty() ? nullptr : in.bias.data() + i * c, one, scale);
    want.insert(want.end(), yr.begin(), yr.end());
  }
  CheckResult r = compare_values("y", got, want, softmax_fwd_tolerance(io));
  r.scope = in.scope;
  return r;
}

inline CheckResult check_softmax_bwd(BenchState& s, const SoftmaxShape& sh, const void* y, const void* dy,
                                     const void* dx, float scale, DType io) {
  std::string scope;
  const auto rows = softmax_check_rows(sh, &scope);
  const std::vector<float> got = s.read_rows(dx, rows, sh.cols, io);
  const SoftmaxShape flat{1, 1, 1, static_cast<std::int64_t>(rows.size()), sh.cols};
  const auto want = softmax_bwd_ref(s.read_rows(y, rows, sh.cols, io), s.read_rows(dy, rows, sh.cols, io), flat, scale);
  CheckResult r = compare_values("dx", got, want, softmax_bwd_tolerance(io));
  r.scope = scope;
  return r;
}

}  // namespace seqscale
