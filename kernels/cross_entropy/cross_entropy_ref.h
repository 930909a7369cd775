// CPU reference of the vocabulary cross-entropy in double, unchunked: the definition the
// chunked kernel must reproduce. Inputs already rounded to the kernel's dtype (as float);
// outputs in double. Targets: < 0 ignored (loss 0, no gradient), >= V give NaN.
//   logits_tv = sum_k hidden_tk W_vk;  lse_t = log sum_v e^logits_tv;  loss_t = lse_t - logits_t,target
//   d logits_tv = dloss_t (e^(logits_tv - lse_t) - [v == target_t])
//   d hidden = d logits x W;  dW = d logits^T x hidden
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "common/check_result.h"
#include "kernels/common/rounding.h"
#include "kernels/cross_entropy/cross_entropy_cost.h"
#include "workloads/dtype.h"

namespace seqscale {

// Tolerances of the kernels against this reference (tests and bench checks), for inputs
// of unit scale (|hidden| ~ 1, |W| ~ 1 / sqrt(h): logits of a few units).
// - A logit is an fp32-accumulated dot product of h terms, off by at most ~h x 2^-24 x
//   |partial sum| even when every addition truncates (tensor cores accumulate without
//   rounding to nearest): 8 h 2^-24 absolute (0 for given logits).
// - lse adds an fp32 sum of V positive exps: relative error ~2^-24 sqrt(V) in a random
//   walk (the CPU backend adds a chunk in sequence; the kernel 1/32 of it per lane): 8x.
// - loss = lse - the target's logit: the two errors added, absolute.
// - Gradients: d logits are rounded once to the I/O dtype for the GEMMs and d hidden once
//   more on output: 2 units of the dtype relative (io_rounding_rel), 1 unit of the
//   largest element for sums over tokens or vocab that cancel; plus lse's error carried
//   through e^(x - lse), relative. With fp32 I/O the unit is fp32's: lse's error dominates.
//   fp16's subnormal spacing (io_underflow_abs) is the absolute floor: 1 / V is below
//   fp16's smallest normal for V > 16384.
inline double cross_entropy_lse_error(std::int64_t hidden, std::int64_t vocab) {
  return 8.0 * std::ldexp(1.0, -24) * (static_cast<double>(hidden) + std::sqrt(static_cast<double>(vocab)));
}
inline CheckTolerance cross_entropy_loss_tolerance(std::int64_t hidden, std::int64_t vocab) {
  return {1e-6 + 2 * cross_entropy_lse_error(hidden, vocab), 1e-6, 0};
}
inline CheckTolerance cross_entropy_grad_tolerance(DType io, std::int64_t hidden, std::int64_t vocab) {
  const double e = cross_entropy_lse_error(hidden, vocab), u = io_rounding_rel(io);
  return {1e-9 + io_underflow_abs(io), 2 * u + 2 * e, u + e};
}

struct CrossEntropyRef {
  std::vector<double> loss;  // [T]
  std::vector<double> lse;   // [T]
};

// From given logits [T, V] (double).
CrossEntropyRef cross_entropy_logits_fwd_ref(const std::vector<double>& logits, const std::vector<std::int32_t>& targets,
                                             std::int64_t tokens, std::int64_t vocab);
// d logits [T, V] from given logits (its own lse) and the upstream dloss [T].
std::vector<double> cross_entropy_logits_bwd_ref(const std::vector<double>& logits, const std::vector<std::int32_t>& targets,
                                                 const std::vector<float>& dloss, std::int64_t tokens, std::int64_t vocab);

// logits [T, V] = hidden [T, h] x W [V, h]^T in double. `weight_rows` rows of W, starting at
// vocab row 0 of the slice given: callers pass slices of W to bound memory.
void cross_entropy_logits_ref(const float* hidden, std::int64_t tokens, const float* weight_rows, std::int64_t rows,
                              std::int64_t hidden_size, double* logits, std::int64_t ld);

// The whole head from hidden and W.
CrossEntropyRef cross_entropy_fwd_ref(const std::vector<float>& hidden, const std::vector<float>& weight,
                                      const std::vector<std::int32_t>& targets, const CrossEntropyShape& shape);

struct CrossEntropyRefGrads {
  std::vector<double> dhidden;  // [T, h]
  std::vector<double> dweight;  // [V, h]
};
CrossEntropyRefGrads cross_entropy_bwd_ref(const std::vector<float>& hidden, const std::vector<float>& weight,
                                           const std::vector<std::int32_t>& targets, const std::vector<float>& dloss,
                                           const CrossEntropyShape& shape);

}  // namespace seqscale
