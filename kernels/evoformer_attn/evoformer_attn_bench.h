// What the Evoformer attention benchmarks share: the check of a point's outputs (O, and
// with a backward dQ, dK, dV and d(pair bias)) against the double reference
// (evoformer_attn_ref.h), read through BenchState::read_rows so it serves any backend.
// The reference runs per (b, n) slice [L, H, D]: every slice when they fit the check
// budget, else an even sample; d(pair bias), a sum over n, is compared only when every
// slice was checked (CheckResult::scope says what was left out).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "harness/bench/registry.h"
#include "kernels/evoformer_attn/evoformer_attn_ref.h"

namespace seqscale {

struct EvoformerAttnCheckBuffers {
  const void *q = nullptr, *k = nullptr, *v = nullptr;  // [B, N, L, H, D], I/O dtype
  const void* mask = nullptr;                           // [B, N, L], optional
  const void* pair = nullptr;                           // [B, H, L, L], optional
  const void* o = nullptr;
  // Backward (all null for a forward point): d_o, dq, dk, dv in the I/O dtype, d_pair fp32.
  const void *d_o = nullptr, *dq = nullptr, *dk = nullptr, *dv = nullptr;
  const float* d_pair = nullptr;
};

inline CheckResult check_evoformer_attn(BenchState& s, const EvoformerAttnShape& sh, DType io,
                                        const EvoformerAttnCheckBuffers& b) {
  const bool backward = b.d_o != nullptr;
  const std::int64_t slices = sh.rows(), slice_elems = sh.len * sh.heads * sh.head_dim;
  const double slice_cost = 2.0 * static_cast<double>(sh.heads * sh.len * sh.len * sh.head_dim) * (backward ? 3 : 1);
  const std::vector<std::int64_t> picked = sample_indices(slices, slices_within_budget(slices, slice_cost));
  const bool every_slice = static_cast<std::int64_t>(picked.size()) == slices;
  const EvoformerAttnShape one{1, 1, sh.len, sh.heads, sh.head_dim};
  const std::int64_t pair_elems = sh.heads * sh.len * sh.len;

  std::vector<float> got_o, got_dq, got_dk, got_dv;
  std::vector<double> want_o, want_dq, want_dk, want_dv;
  std::map<std::int64_t, std::vector<double>> want_dpair;  // per b, summed over the n slices
  const auto append = [](std::vector<double>& to, const std::vector<double>& from) { to.insert(to.end(), from.begin(), from.end()); };
  const auto append_f = [](std::vector<float>& to, const std::vector<float>& from) { to.insert(to.end(), from.begin(), from.end()); };
  for (std::int64_t bn : picked) {
    // Outputs are read first (the test hook perturbs the first value read).
    append_f(got_o, s.read_rows(b.o, {bn}, slice_elems, io));
    const std::vector<float> q = s.read_rows(b.q, {bn}, slice_elems, io), k = s.read_rows(b.k, {bn}, slice_elems, io),
                             v = s.read_rows(b.v, {bn}, slice_elems, io);
    const std::vector<float> mask = b.mask ? s.read_rows(b.mask, {bn}, sh.len, io) : std::vector<float>{};
    const std::vector<float> pair = b.pair ? s.read_rows(b.pair, {bn / sh.n}, pair_elems, io) : std::vector<float>{};
    const float* mask_p = b.mask ? mask.data() : nullptr;
    const float* pair_p = b.pair ? pair.data() : nullptr;
    append(want_o, evoformer_attn_fwd_ref(one, q, k, v, mask_p, pair_p).o);
    if (!backward) continue;
    append_f(got_dq, s.read_rows(b.dq, {bn}, slice_elems, io));
    append_f(got_dk, s.read_rows(b.dk, {bn}, slice_elems, io));
    append_f(got_dv, s.read_rows(b.dv, {bn}, slice_elems, io));
    const auto g = evoformer_attn_bwd_ref(one, q, k, v, mask_p, pair_p, s.read_rows(b.d_o, {bn}, slice_elems, io));
    append(want_dq, g.dq);
    append(want_dk, g.dk);
    append(want_dv, g.dv);
    if (b.pair && b.d_pair) {
      auto& acc = want_dpair[bn / sh.n];
      if (acc.empty()) acc.assign(g.dpair.size(), 0.0);
      for (std::size_t i = 0; i < acc.size(); ++i) acc[i] += g.dpair[i];
    }
  }
  CheckResult r = compare_values("o", got_o, want_o, evoformer_attn_tolerance(io));
  std::string scope;
  if (!every_slice) scope = std::to_string(picked.size()) + " of " + std::to_string(slices) + " (b, n) slices";
  if (backward) {
    r.merge(compare_values("dq", got_dq, want_dq, evoformer_attn_tolerance(io)));
    r.merge(compare_values("dk", got_dk, want_dk, evoformer_attn_tolerance(io)));
    r.merge(compare_values("dv", got_dv, want_dv, evoformer_attn_tolerance(io)));
    if (b.pair && b.d_pair && every_slice) {
      for (const auto& [batch, want] : want_dpair) {
        r.merge(compare_values("d_pair", s.read_rows(b.d_pair, {batch}, pair_elems, DType::kFp32), want,
                               evoformer_attn_dpair_tolerance(io)));
      }
    } else if (b.pair && b.d_pair) {
      scope += "; d(pair bias) not checked (a sum over every n slice)";
    }
  }
  r.scope = scope;
  return r;
}

}  // namespace seqscale
