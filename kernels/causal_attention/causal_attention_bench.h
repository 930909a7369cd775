// What the causal attention benchmarks share (CPU and CUDA): the check of a point's outputs
// (O, lse, and with a backward dQ, dK, dV) against the double reference
// (causal_attention_ref.h), read through BenchState::read_rows so it serves host and device
// buffers alike. Buffers are contiguous [B, S, H, D]; lse [B, H, S].
//
// Whole (b, h) slices when one fits the check budget (~S^2 D multiply-adds forward, 3.5x
// with the backward: S <= ~1.7K forward, ~0.9K backward at D = 128), an even sample of
// them within it. Past that (GenSLM's S = 2K..32K), rows: the first and last slices, an
// even sample of up to 64 query rows (O, lse and dQ exactly) and of up to 64 key rows (dK,
// dV from the reference formula given the kernel's own lse and O for the query rows each
// key sums over); CheckResult::scope says which.
#pragma once
#include <algorithm>
#include <string>
#include <vector>

#include "harness/bench/registry.h"
#include "kernels/causal_attention/causal_attention_ref.h"

namespace seqscale {

struct CausalAttentionCheckBuffers {
  const void *q = nullptr, *k = nullptr, *v = nullptr, *o = nullptr;  // I/O dtype
  const float* lse = nullptr;
  // Backward (all null for a forward point), I/O dtype.
  const void *d_o = nullptr, *dq = nullptr, *dk = nullptr, *dv = nullptr;
};

namespace causal_attention_check {

// Rows (b, i, h) for i in `seq_rows` of a [B, S, H, D] tensor, as read_rows indices.
inline std::vector<std::int64_t> bshd_rows(const CausalAttentionShape& sh, std::int64_t b, std::int64_t h,
                                           const std::vector<std::int64_t>& seq_rows) {
  std::vector<std::int64_t> out;
  out.reserve(seq_rows.size());
  for (std::int64_t i : seq_rows) out.push_back((b * sh.seq + i) * sh.heads + h);
  return out;
}

inline std::vector<std::int64_t> all_rows(std::int64_t n) {
  std::vector<std::int64_t> out(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) out[static_cast<std::size_t>(i)] = i;
  return out;
}

inline void append(std::vector<double>& to, const std::vector<double>& from) { to.insert(to.end(), from.begin(), from.end()); }
inline void append(std::vector<float>& to, const std::vector<float>& from) { to.insert(to.end(), from.begin(), from.end()); }

}  // namespace causal_attention_check

inline CheckResult check_causal_attention(BenchState& s, const CausalAttentionShape& sh, DType io,
                                          const CausalAttentionCheckBuffers& buf) {
  using namespace causal_attention_check;  // NOLINT(google-build-using-namespace): this header's helpers
  const bool backward = buf.d_o != nullptr;
  const std::int64_t slices = sh.batch * sh.heads, dim = sh.head_dim, seq = sh.seq;
  const double seq_d = static_cast<double>(seq), dim_d = static_cast<double>(dim);
  const double slice_cost = seq_d * seq_d * dim_d * (backward ? 3.5 : 1.0);
  const bool whole = slice_cost <= kCheckReferenceBudget;
  const std::vector<std::int64_t> picked =
      whole ? sample_indices(slices, slices_within_budget(slices, slice_cost)) : sample_indices(slices, 2);
  // Rows mode: per sampled query row ~2 S D forward (+2 S D for dQ), per key row ~4 S D.
  const double row_cost = seq_d * dim_d * (backward ? 8.0 : 2.0) * static_cast<double>(picked.size());
  const std::int64_t n_rows = whole ? seq : std::clamp<std::int64_t>(static_cast<std::int64_t>(kCheckReferenceBudget / row_cost), 1, 64);
  const std::vector<std::int64_t> every = all_rows(seq);
  const std::vector<std::int64_t> q_rows = whole ? every : sample_indices(seq, n_rows);
  const std::vector<std::int64_t> k_rows = whole ? every : sample_indices(seq, n_rows);

  std::vector<float> got_o, got_lse, got_dq, got_dk, got_dv;
  std::vector<double> want_o, want_lse, want_dq, want_dk, want_dv;
  for (std::int64_t bh : picked) {
    const std::int64_t b = bh / sh.heads, h = bh % sh.heads;
    const std::vector<std::int64_t> slice_rows = bshd_rows(sh, b, h, every);
    // Outputs are read first (the test hook perturbs the first value read).
    append(got_o, s.read_rows(buf.o, bshd_rows(sh, b, h, q_rows), dim, io));
    const std::vector<float> lse = s.read_rows(buf.lse, {bh}, seq, DType::kFp32);
    for (std::int64_t i : q_rows) got_lse.push_back(lse[static_cast<std::size_t>(i)]);
    const std::vector<float> q = s.read_rows(buf.q, slice_rows, dim, io), k = s.read_rows(buf.k, slice_rows, dim, io),
                             v = s.read_rows(buf.v, slice_rows, dim, io);
    std::vector<float> d_o;
    if (backward) {
      append(got_dq, s.read_rows(buf.dq, bshd_rows(sh, b, h, q_rows), dim, io));
      append(got_dk, s.read_rows(buf.dk, bshd_rows(sh, b, h, k_rows), dim, io));
      append(got_dv, s.read_rows(buf.dv, bshd_rows(sh, b, h, k_rows), dim, io));
      d_o = s.read_rows(buf.d_o, slice_rows, dim, io);
    }
    const CausalAttentionSlice x{seq, dim, q.data(), k.data(), v.data(), backward ? d_o.data() : nullptr};
    if (whole) {
      const CausalAttentionShape one{1, seq, 1, dim};  // a [S, D] slice is a contiguous [1, S, 1, D]
      const CausalAttentionRefOut f = causal_attention_fwd_ref(one, q, k, v);
      append(want_o, f.o);
      append(want_lse, f.lse);
      if (backward) {
        const CausalAttentionRefGrads g = causal_attention_bwd_ref(one, q, k, v, d_o);
        append(want_dq, g.dq);
        append(want_dk, g.dk);
        append(want_dv, g.dv);
      }
      continue;
    }
    const CausalAttentionQueryRowsRef f = causal_attention_query_rows_ref(x, q_rows);
    append(want_o, f.o);
    append(want_lse, f.lse);
    if (!backward) continue;
    append(want_dq, f.dq);
    // dK, dV given the kernel's own statistics: its lse, and D_i from its O.
    const std::vector<float> o = s.read_rows(buf.o, slice_rows, dim, io);
    std::vector<double> lse_d(lse.begin(), lse.end()), row_dot(static_cast<std::size_t>(seq), 0.0);
    for (std::int64_t i = 0; i < seq; ++i) {
      for (std::int64_t d = 0; d < dim; ++d) {
        const auto e = static_cast<std::size_t>(i * dim + d);
        row_dot[static_cast<std::size_t>(i)] += static_cast<double>(d_o[e]) * o[e];
      }
    }
    const CausalAttentionKeyRowsRef g = causal_attention_key_rows_ref(x, lse_d, row_dot, k_rows);
    append(want_dk, g.dk);
    append(want_dv, g.dv);
  }
  const CheckTolerance tol = causal_attention_tolerance(io);
  CheckResult r = compare_values("o", got_o, want_o, tol);
  r.merge(compare_values("lse", got_lse, want_lse, causal_attention_lse_tolerance(io)));
  if (backward) {
    r.merge(compare_values("dq", got_dq, want_dq, tol));
    r.merge(compare_values("dk", got_dk, want_dk, tol));
    r.merge(compare_values("dv", got_dv, want_dv, tol));
  }
  if (static_cast<std::int64_t>(picked.size()) < slices) {
    r.scope = std::to_string(picked.size()) + " of " + std::to_string(slices) + " (b, h) slices";
  }
  if (!whole) {
    r.scope += "; " + std::to_string(q_rows.size()) + " of " + std::to_string(seq) + " query rows (o, lse" +
               (backward ? ", dq" : "") + ")";
    if (backward) {
      r.scope += " and " + std::to_string(k_rows.size()) + " key rows (dk, dv, given the kernel's own lse and o)";
    }
  }
  return r;
}

}  // namespace seqscale
