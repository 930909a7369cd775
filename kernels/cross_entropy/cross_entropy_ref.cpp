#include "kernels/cross_entropy/cross_entropy_ref.h"

#include <algorithm>
#include <limits>

namespace seqscale {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double row_lse(const double* row, std::int64_t vocab) {
  const double mx = *std::max_element(row, row + vocab);
  double sum = 0;
  for (std::int64_t v = 0; v < vocab; ++v) sum += std::exp(row[v] - mx);
  return mx + std::log(sum);
}

}  // namespace

CrossEntropyRef cross_entropy_logits_fwd_ref(const std::vector<double>& logits, const std::vector<std::int32_t>& targets,
                                             std::int64_t tokens, std::int64_t vocab) {
  CrossEntropyRef out;
  out.loss.resize(static_cast<std::size_t>(tokens));
  out.lse.resize(static_cast<std::size_t>(tokens));
  for (std::int64_t t = 0; t < tokens; ++t) {
    const double* row = logits.data() + t * vocab;
    const double lse = row_lse(row, vocab);
    const std::int32_t tgt = targets[static_cast<std::size_t>(t)];
    out.lse[static_cast<std::size_t>(t)] = lse;
    out.loss[static_cast<std::size_t>(t)] = tgt < 0 ? 0.0 : (tgt >= vocab ? kNaN : lse - row[tgt]);
  }
  return out;
}

std::vector<double> cross_entropy_logits_bwd_ref(const std::vector<double>& logits, const std::vector<std::int32_t>& targets,
                                                 const std::vector<float>& dloss, std::int64_t tokens, std::int64_t vocab) {
  std::vector<double> d(logits.size());
  for (std::int64_t t = 0; t < tokens; ++t) {
    const double* row = logits.data() + t * vocab;
    const double lse = row_lse(row, vocab);
    const std::int32_t tgt = targets[static_cast<std::size_t>(t)];
    const double g = tgt < 0 ? 0.0 : (tgt >= vocab ? kNaN : static_cast<double>(dloss[static_cast<std::size_t>(t)]));
    for (std::int64_t v = 0; v < vocab; ++v) {
      d[static_cast<std::size_t>(t * vocab + v)] = g * (std::exp(row[v] - lse) - (v == tgt ? 1.0 : 0.0));
    }
  }
  return d;
}

void cross_entropy_logits_ref(const float* hidden, std::int64_t tokens, const float* weight_rows, std::int64_t rows,
                              std::int64_t hidden_size, double* logits, std::int64_t ld) {
  for (std::int64_t t = 0; t < tokens; ++t) {
    const float* x = hidden + t * hidden_size;
    for (std::int64_t v = 0; v < rows; ++v) {
      const float* w = weight_rows + v * hidden_size;
      double acc = 0;
      for (std::int64_t k = 0; k < hidden_size; ++k) acc += static_cast<double>(x[k]) * w[k];
      logits[t * ld + v] = acc;
    }
  }
}

CrossEntropyRef cross_entropy_fwd_ref(const std::vector<float>& hidden, const std::vector<float>& weight,
                                      const std::vector<std::int32_t>& targets, const CrossEntropyShape& s) {
  std::vector<double> logits(static_cast<std::size_t>(s.tokens * s.vocab));
  cross_entropy_logits_ref(hidden.data(), s.tokens, weight.data(), s.vocab, s.hidden, logits.data(), s.vocab);
  return cross_entropy_logits_fwd_ref(logits, targets, s.tokens, s.vocab);
}

CrossEntropyRefGrads cross_entropy_bwd_ref(const std::vector<float>& hidden, const std::vector<float>& weight,
                                           const std::vector<std::int32_t>& targets, const std::vector<float>& dloss,
                                           const CrossEntropyShape& s) {
  std::vector<double> logits(static_cast<std::size_t>(s.tokens * s.vocab));
  cross_entropy_logits_ref(hidden.data(), s.tokens, weight.data(), s.vocab, s.hidden, logits.data(), s.vocab);
  const std::vector<double> d = cross_entropy_logits_bwd_ref(logits, targets, dloss, s.tokens, s.vocab);
  CrossEntropyRefGrads g;
  g.dhidden.assign(static_cast<std::size_t>(s.tokens * s.hidden), 0.0);
  g.dweight.assign(static_cast<std::size_t>(s.vocab * s.hidden), 0.0);
  for (std::int64_t t = 0; t < s.tokens; ++t) {
    for (std::int64_t v = 0; v < s.vocab; ++v) {
      const double dl = d[static_cast<std::size_t>(t * s.vocab + v)];
      const float* w = weight.data() + v * s.hidden;
      const float* x = hidden.data() + t * s.hidden;
      double* dh = g.dhidden.data() + t * s.hidden;
      double* dw = g.dweight.data() + v * s.hidden;
      for (std::int64_t k = 0; k < s.hidden; ++k) {
        dh[k] += dl * w[k];
        dw[k] += dl * x[k];
      }
    }
  }
  return g;
}

}  // namespace seqscale
