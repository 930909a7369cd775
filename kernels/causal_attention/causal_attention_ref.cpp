#include "kernels/causal_attention/causal_attention_ref.h"

#include <algorithm>
#include <cmath>
#include <cstddef>

namespace seqscale {
namespace {

// [B, S, H, D] element (b, i, h, d) and [B, H, S] row (b, h, i).
struct Index {
  const CausalAttentionShape& s;
  std::size_t x(std::int64_t b, std::int64_t i, std::int64_t h, std::int64_t d) const {
    return static_cast<std::size_t>(((b * s.seq + i) * s.heads + h) * s.head_dim + d);
  }
  std::size_t row(std::int64_t b, std::int64_t h, std::int64_t i) const {
    return static_cast<std::size_t>((b * s.heads + h) * s.seq + i);
  }
};

double inv_sqrt(std::int64_t d) { return 1.0 / std::sqrt(static_cast<double>(d)); }

// Probabilities of query row i of slice (b, h) over keys 0..i into p[0..i]; returns lse_i.
double row_probs(const Index& ix, const std::vector<float>& q, const std::vector<float>& k, std::int64_t b,
                 std::int64_t h, std::int64_t i, std::vector<double>& p) {
  const double scale = inv_sqrt(ix.s.head_dim);
  double mx = -INFINITY;
  for (std::int64_t j = 0; j <= i; ++j) {
    double dot = 0;
    for (std::int64_t d = 0; d < ix.s.head_dim; ++d) dot += static_cast<double>(q[ix.x(b, i, h, d)]) * k[ix.x(b, j, h, d)];
    p[static_cast<std::size_t>(j)] = scale * dot;
    mx = std::max(mx, scale * dot);
  }
  double sum = 0;
  for (std::int64_t j = 0; j <= i; ++j) sum += (p[static_cast<std::size_t>(j)] = std::exp(p[static_cast<std::size_t>(j)] - mx));
  for (std::int64_t j = 0; j <= i; ++j) p[static_cast<std::size_t>(j)] /= sum;
  return mx + std::log(sum);
}

// The same for a slice row, from pointers.
double slice_row_probs(const CausalAttentionSlice& x, std::int64_t i, std::vector<double>& p) {
  const double scale = inv_sqrt(x.head_dim);
  const std::int64_t dim = x.head_dim;
  double mx = -INFINITY;
  for (std::int64_t j = 0; j <= i; ++j) {
    double dot = 0;
    for (std::int64_t d = 0; d < dim; ++d) dot += static_cast<double>(x.q[i * dim + d]) * x.k[j * dim + d];
    p[static_cast<std::size_t>(j)] = scale * dot;
    mx = std::max(mx, scale * dot);
  }
  double sum = 0;
  for (std::int64_t j = 0; j <= i; ++j) sum += (p[static_cast<std::size_t>(j)] = std::exp(p[static_cast<std::size_t>(j)] - mx));
  for (std::int64_t j = 0; j <= i; ++j) p[static_cast<std::size_t>(j)] /= sum;
  return mx + std::log(sum);
}

}  // namespace

CausalAttentionRefOut causal_attention_fwd_ref(const CausalAttentionShape& s, const std::vector<float>& q,
                                               const std::vector<float>& k, const std::vector<float>& v) {
  const Index ix{s};
  CausalAttentionRefOut out;
  out.o.assign(static_cast<std::size_t>(s.elements()), 0.0);
  out.lse.assign(static_cast<std::size_t>(s.rows()), 0.0);
  std::vector<double> p(static_cast<std::size_t>(s.seq));
  for (std::int64_t b = 0; b < s.batch; ++b)
    for (std::int64_t h = 0; h < s.heads; ++h)
      for (std::int64_t i = 0; i < s.seq; ++i) {
        out.lse[ix.row(b, h, i)] = row_probs(ix, q, k, b, h, i, p);
        for (std::int64_t j = 0; j <= i; ++j) {
          const double pj = p[static_cast<std::size_t>(j)];
          for (std::int64_t d = 0; d < s.head_dim; ++d) out.o[ix.x(b, i, h, d)] += pj * v[ix.x(b, j, h, d)];
        }
      }
  return out;
}

CausalAttentionRefGrads causal_attention_bwd_ref(const CausalAttentionShape& s, const std::vector<float>& q,
                                                 const std::vector<float>& k, const std::vector<float>& v,
                                                 const std::vector<float>& d_o) {
  const Index ix{s};
  const double scale = inv_sqrt(s.head_dim);
  CausalAttentionRefGrads g;
  g.dq.assign(static_cast<std::size_t>(s.elements()), 0.0);
  g.dk = g.dq;
  g.dv = g.dq;
  std::vector<double> p(static_cast<std::size_t>(s.seq)), dp(static_cast<std::size_t>(s.seq));
  for (std::int64_t b = 0; b < s.batch; ++b)
    for (std::int64_t h = 0; h < s.heads; ++h)
      for (std::int64_t i = 0; i < s.seq; ++i) {
        row_probs(ix, q, k, b, h, i, p);
        double row_dot = 0;  // D_i = sum_j P_ij dP_ij (= dO_i . O_i)
        for (std::int64_t j = 0; j <= i; ++j) {
          double acc = 0;
          for (std::int64_t d = 0; d < s.head_dim; ++d) acc += static_cast<double>(d_o[ix.x(b, i, h, d)]) * v[ix.x(b, j, h, d)];
          dp[static_cast<std::size_t>(j)] = acc;
          row_dot += p[static_cast<std::size_t>(j)] * acc;
        }
        for (std::int64_t j = 0; j <= i; ++j) {
          const double pj = p[static_cast<std::size_t>(j)];
          const double ds = pj * (dp[static_cast<std::size_t>(j)] - row_dot);
          for (std::int64_t d = 0; d < s.head_dim; ++d) {
            g.dv[ix.x(b, j, h, d)] += pj * d_o[ix.x(b, i, h, d)];
            g.dq[ix.x(b, i, h, d)] += scale * ds * k[ix.x(b, j, h, d)];
            g.dk[ix.x(b, j, h, d)] += scale * ds * q[ix.x(b, i, h, d)];
          }
        }
      }
  return g;
}

CausalAttentionQueryRowsRef causal_attention_query_rows_ref(const CausalAttentionSlice& x,
                                                            const std::vector<std::int64_t>& rows) {
  const std::int64_t dim = x.head_dim;
  const double scale = inv_sqrt(dim);
  CausalAttentionQueryRowsRef out;
  const auto n = static_cast<std::size_t>(rows.size());
  out.o.assign(n * static_cast<std::size_t>(dim), 0.0);
  out.lse.assign(n, 0.0);
  if (x.d_o) out.dq.assign(n * static_cast<std::size_t>(dim), 0.0);
  std::vector<double> p(static_cast<std::size_t>(x.seq)), dp(static_cast<std::size_t>(x.seq));
  for (std::size_t r = 0; r < n; ++r) {
    const std::int64_t i = rows[r];
    double* o = out.o.data() + r * static_cast<std::size_t>(dim);
    out.lse[r] = slice_row_probs(x, i, p);
    for (std::int64_t j = 0; j <= i; ++j) {
      for (std::int64_t d = 0; d < dim; ++d) o[d] += p[static_cast<std::size_t>(j)] * x.v[j * dim + d];
    }
    if (!x.d_o) continue;
    double row_dot = 0;
    for (std::int64_t j = 0; j <= i; ++j) {
      double acc = 0;
      for (std::int64_t d = 0; d < dim; ++d) acc += static_cast<double>(x.d_o[i * dim + d]) * x.v[j * dim + d];
      dp[static_cast<std::size_t>(j)] = acc;
      row_dot += p[static_cast<std::size_t>(j)] * acc;
    }
    double* dq = out.dq.data() + r * static_cast<std::size_t>(dim);
    for (std::int64_t j = 0; j <= i; ++j) {
      const double ds = p[static_cast<std::size_t>(j)] * (dp[static_cast<std::size_t>(j)] - row_dot);
      for (std::int64_t d = 0; d < dim; ++d) dq[d] += scale * ds * x.k[j * dim + d];
    }
  }
  return out;
}

CausalAttentionKeyRowsRef causal_attention_key_rows_ref(const CausalAttentionSlice& x, const std::vector<double>& lse,
                                                        const std::vector<double>& row_dot,
                                                        const std::vector<std::int64_t>& keys) {
  const std::int64_t dim = x.head_dim;
  const double scale = inv_sqrt(dim);
  CausalAttentionKeyRowsRef out;
  const auto n = static_cast<std::size_t>(keys.size());
  out.dk.assign(n * static_cast<std::size_t>(dim), 0.0);
  out.dv.assign(n * static_cast<std::size_t>(dim), 0.0);
  for (std::size_t r = 0; r < n; ++r) {
    const std::int64_t j = keys[r];
    double* dk = out.dk.data() + r * static_cast<std::size_t>(dim);
    double* dv = out.dv.data() + r * static_cast<std::size_t>(dim);
    for (std::int64_t i = j; i < x.seq; ++i) {  // the query rows that see key j
      double s = 0, dp = 0;
      for (std::int64_t d = 0; d < dim; ++d) {
        s += static_cast<double>(x.q[i * dim + d]) * x.k[j * dim + d];
        dp += static_cast<double>(x.d_o[i * dim + d]) * x.v[j * dim + d];
      }
      const double p = std::exp(scale * s - lse[static_cast<std::size_t>(i)]);
      const double ds = p * (dp - row_dot[static_cast<std::size_t>(i)]);
      for (std::int64_t d = 0; d < dim; ++d) {
        dv[d] += p * x.d_o[i * dim + d];
        dk[d] += scale * ds * x.q[i * dim + d];
      }
    }
  }
  return out;
}

}  // namespace seqscale
