// What the CPU and CUDA cross-entropy benchmarks share: the point's shape (axes tokens,
// hidden, vocab, vocab_chunk), the scale of its inputs, and the checks against the double
// reference (cross_entropy_ref.h) through BenchState::read_rows, so the same code serves
// host and device buffers. A token costs the reference V x h multiply-adds (3x backward),
// so big points check an even sample of tokens (GenSLM's head: one token): their loss and
// lse, or their d hidden. W is read in slabs of rows, so host memory stays bounded at any
// vocab. dW, a sum over every token, is checked when every token is (and dW is at most
// 2^24 elements); otherwise CheckResult::scope says it was not.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "harness/bench/registry.h"
#include "kernels/common/row_sample.h"
#include "kernels/cross_entropy/cross_entropy_cost.h"
#include "kernels/cross_entropy/cross_entropy_ref.h"
#include "workloads/config_error.h"

namespace seqscale {

inline CrossEntropyShape cross_entropy_shape_of(const BenchState& s) {
  CrossEntropyShape sh;
  sh.tokens = s.get_int("tokens");
  sh.hidden = s.get_int("hidden");
  sh.vocab = s.get_int("vocab");
  sh.vocab_chunk = s.get_int("vocab_chunk");
  for (const auto& [name, v, lo] : {std::tuple<const char*, std::int64_t, std::int64_t>{"tokens", sh.tokens, 0},
                                    {"hidden", sh.hidden, 1}, {"vocab", sh.vocab, 1}, {"vocab_chunk", sh.vocab_chunk, 1}}) {
    if (v < lo) throw ConfigError(std::string(name) + ": must be >= " + std::to_string(lo) + ", got " + std::to_string(v));
  }
  return sh;
}

// Inputs of unit scale, as the tolerances assume: hidden uniform in [-1, 1], W uniform in
// [-a, a] with a = sqrt(3 / h) (variance 1 / h, a trained head's order): logits of ~0.6.
inline float cross_entropy_weight_bound(std::int64_t hidden) { return std::sqrt(3.f / static_cast<float>(hidden)); }

// Targets uniform over [0, V) as int32 (fill_random truncates; V - 0.5 keeps V out even
// when the float draw rounds up to its bound).
inline void fill_cross_entropy_targets(BenchState& s, std::int32_t* targets, std::int64_t tokens, std::int64_t vocab,
                                       std::uint64_t seed) {
  s.fill_random(targets, tokens, DType::kInt32, seed, 0.f, static_cast<float>(vocab) - 0.5f);
}

struct CrossEntropySampled {
  RowSample sel;
  std::vector<float> hidden;           // [n, h]
  std::vector<std::int32_t> targets;   // [n]
  std::vector<double> logits;          // [n, V]
};

// Rows of W [v0, v0 + rows) as floats, in one read.
inline std::vector<float> cross_entropy_weight_slab(BenchState& s, const void* weight, std::int64_t v0, std::int64_t rows,
                                                    std::int64_t hidden, DType io) {
  std::vector<std::int64_t> idx(static_cast<std::size_t>(rows));
  for (std::int64_t i = 0; i < rows; ++i) idx[static_cast<std::size_t>(i)] = i;
  return s.read_rows(static_cast<const unsigned char*>(weight) + v0 * hidden * dtype_bytes(io), idx, hidden, io);
}

// Vocab rows per slab of W the checks read at once: ~2^22 elements (16 MB as floats).
inline std::int64_t cross_entropy_slab_rows(std::int64_t hidden) {
  return std::max<std::int64_t>(1, (std::int64_t{1} << 22) / hidden);
}

// The sampled tokens' inputs and their logits in double, W read slab by slab.
inline CrossEntropySampled cross_entropy_sample(BenchState& s, const CrossEntropyShape& sh, const RowSample& sel,
                                                const void* hidden, const void* weight, const std::int32_t* targets,
                                                DType io) {
  CrossEntropySampled c;
  c.sel = sel;
  const auto n = static_cast<std::int64_t>(c.sel.rows.size());
  c.hidden = s.read_rows(hidden, c.sel.rows, sh.hidden, io);
  for (float t : s.read_rows(targets, c.sel.rows, 1, DType::kInt32)) c.targets.push_back(static_cast<std::int32_t>(t));
  c.logits.resize(static_cast<std::size_t>(n * sh.vocab));
  const std::int64_t slab = cross_entropy_slab_rows(sh.hidden);
  for (std::int64_t v0 = 0; v0 < sh.vocab; v0 += slab) {
    const std::int64_t rows = std::min(slab, sh.vocab - v0);
    const std::vector<float> w = cross_entropy_weight_slab(s, weight, v0, rows, sh.hidden, io);
    cross_entropy_logits_ref(c.hidden.data(), n, w.data(), rows, sh.hidden, c.logits.data() + v0, sh.vocab);
  }
  return c;
}

inline CheckResult check_cross_entropy_fwd(BenchState& s, const CrossEntropyShape& sh, const void* hidden,
                                           const void* weight, const std::int32_t* targets, const float* loss,
                                           const float* lse, DType io) {
  const RowSample sel = sample_rows(sh.tokens, static_cast<double>(sh.vocab * sh.hidden), 1024, "tokens");
  const std::vector<float> got_loss = s.read_rows(loss, sel.rows, 1, DType::kFp32);  // the output first (test hook)
  const std::vector<float> got_lse = s.read_rows(lse, sel.rows, 1, DType::kFp32);
  const CrossEntropySampled c = cross_entropy_sample(s, sh, sel, hidden, weight, targets, io);
  const auto ref = cross_entropy_logits_fwd_ref(c.logits, c.targets, static_cast<std::int64_t>(c.sel.rows.size()), sh.vocab);
  const CheckTolerance tol = cross_entropy_loss_tolerance(sh.hidden, sh.vocab);
  CheckResult r = compare_values("loss", got_loss, ref.loss, tol);
  r.merge(compare_values("lse", got_lse, ref.lse, tol));
  r.scope = c.sel.scope;
  return r;
}

// d hidden in the I/O dtype, dW fp32.
inline CheckResult check_cross_entropy_bwd(BenchState& s, const CrossEntropyShape& sh, const void* hidden,
                                           const void* weight, const std::int32_t* targets, const float* dloss,
                                           const void* dhidden, const float* dweight, DType io) {
  const double per_token = 3.0 * static_cast<double>(sh.vocab * sh.hidden);
  const RowSample sel = sample_rows(sh.tokens, per_token, 1024, "tokens");
  const std::vector<float> got_dh = s.read_rows(dhidden, sel.rows, sh.hidden, io);
  const CrossEntropySampled c = cross_entropy_sample(s, sh, sel, hidden, weight, targets, io);
  const auto n = static_cast<std::int64_t>(c.sel.rows.size());
  const std::vector<double> d =
      cross_entropy_logits_bwd_ref(c.logits, c.targets, s.read_rows(dloss, c.sel.rows, 1, DType::kFp32), n, sh.vocab);
  const bool check_dw = c.sel.all && sh.vocab * sh.hidden <= (std::int64_t{1} << 24);
  std::vector<double> dh(static_cast<std::size_t>(n * sh.hidden), 0.0), dw;
  if (check_dw) dw.assign(static_cast<std::size_t>(sh.vocab * sh.hidden), 0.0);
  const std::int64_t slab = cross_entropy_slab_rows(sh.hidden);
  for (std::int64_t v0 = 0; v0 < sh.vocab; v0 += slab) {  // d hidden = d x W, dW = d^T x hidden, slab by slab
    const std::int64_t rows = std::min(slab, sh.vocab - v0);
    const std::vector<float> w = cross_entropy_weight_slab(s, weight, v0, rows, sh.hidden, io);
    for (std::int64_t t = 0; t < n; ++t) {
      for (std::int64_t v = 0; v < rows; ++v) {
        const double g = d[static_cast<std::size_t>(t * sh.vocab + v0 + v)];
        for (std::int64_t k = 0; k < sh.hidden; ++k) {
          dh[static_cast<std::size_t>(t * sh.hidden + k)] += g * w[static_cast<std::size_t>(v * sh.hidden + k)];
          if (check_dw) dw[static_cast<std::size_t>((v0 + v) * sh.hidden + k)] += g * c.hidden[static_cast<std::size_t>(t * sh.hidden + k)];
        }
      }
    }
  }
  const CheckTolerance tol = cross_entropy_grad_tolerance(io, sh.hidden, sh.vocab);
  CheckResult r = compare_values("dhidden", got_dh, dh, tol);
  r.scope = c.sel.scope;
  if (check_dw) {
    std::vector<std::int64_t> all(static_cast<std::size_t>(sh.vocab));
    for (std::int64_t v = 0; v < sh.vocab; ++v) all[static_cast<std::size_t>(v)] = v;
    r.merge(compare_values("dweight", s.read_rows(dweight, all, sh.hidden, DType::kFp32), dw, tol));
  } else {
    r.scope += std::string(r.scope.empty() ? "" : "; ") + "dweight not checked (a sum over every token)";
  }
  return r;
}

// The plain cross-entropy over given logits [T, V]: a token costs the reference ~V.
inline CheckResult check_cross_entropy_logits_fwd(BenchState& s, const void* logits, const std::int32_t* targets,
                                                  const float* loss, const float* lse, std::int64_t tokens,
                                                  std::int64_t vocab, DType io) {
  const RowSample sel = sample_rows(tokens, 4.0 * static_cast<double>(vocab), 1024, "tokens");
  const std::vector<float> got_loss = s.read_rows(loss, sel.rows, 1, DType::kFp32);
  const std::vector<float> got_lse = s.read_rows(lse, sel.rows, 1, DType::kFp32);
  const std::vector<float> x = s.read_rows(logits, sel.rows, vocab, io);
  std::vector<std::int32_t> tg;
  for (float t : s.read_rows(targets, sel.rows, 1, DType::kInt32)) tg.push_back(static_cast<std::int32_t>(t));
  const auto ref = cross_entropy_logits_fwd_ref(std::vector<double>(x.begin(), x.end()), tg,
                                                static_cast<std::int64_t>(sel.rows.size()), vocab);
  const CheckTolerance tol = cross_entropy_loss_tolerance(0, vocab);  // logits given: lse's sum only
  CheckResult r = compare_values("loss", got_loss, ref.loss, tol);
  r.merge(compare_values("lse", got_lse, ref.lse, tol));
  r.scope = sel.scope;
  return r;
}

inline CheckResult check_cross_entropy_logits_bwd(BenchState& s, const void* logits, const std::int32_t* targets,
                                                  const float* dloss, const void* dlogits, std::int64_t tokens,
                                                  std::int64_t vocab, DType io) {
  const RowSample sel = sample_rows(tokens, 4.0 * static_cast<double>(vocab), 1024, "tokens");
  const std::vector<float> got = s.read_rows(dlogits, sel.rows, vocab, io);
  const std::vector<float> x = s.read_rows(logits, sel.rows, vocab, io);
  std::vector<std::int32_t> tg;
  for (float t : s.read_rows(targets, sel.rows, 1, DType::kInt32)) tg.push_back(static_cast<std::int32_t>(t));
  const auto want = cross_entropy_logits_bwd_ref(std::vector<double>(x.begin(), x.end()), tg,
                                                 s.read_rows(dloss, sel.rows, 1, DType::kFp32),
                                                 static_cast<std::int64_t>(sel.rows.size()), vocab);
  // One rounding of d logits to the dtype, plus the fp32 lse's error carried through e^(x - lse).
  const CheckTolerance tol{1e-9 + io_underflow_abs(io), io_rounding_rel(io) + cross_entropy_lse_error(0, vocab), 0};
  CheckResult r = compare_values("dlogits", got, want, tol);
  r.scope = sel.scope;
  return r;
}

}  // namespace seqscale
