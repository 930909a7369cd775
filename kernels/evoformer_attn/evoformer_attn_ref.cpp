#include "kernels/evoformer_attn/evoformer_attn_ref.h"

#include <cmath>
#include <limits>

namespace seqscale {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

struct Index {
  const EvoformerAttnShape& s;
  // [B, N, L, H, D]
  std::size_t qkv(std::int64_t b, std::int64_t n, std::int64_t l, std::int64_t h, std::int64_t d) const {
    return static_cast<std::size_t>((((b * s.n + n) * s.len + l) * s.heads + h) * s.head_dim + d);
  }
  std::size_t mask(std::int64_t b, std::int64_t n, std::int64_t j) const {
    return static_cast<std::size_t>((b * s.n + n) * s.len + j);
  }
  std::size_t pair(std::int64_t b, std::int64_t h, std::int64_t i, std::int64_t j) const {
    return static_cast<std::size_t>(((b * s.heads + h) * s.len + i) * s.len + j);
  }
  std::size_t lse(std::int64_t b, std::int64_t n, std::int64_t h, std::int64_t i) const {
    return static_cast<std::size_t>(((b * s.n + n) * s.heads + h) * s.len + i);
  }
};

// Probabilities of one query row (b, n, h, i) into p; returns the log-sum-exp (-inf when
// every logit is -inf, with p all zero).
double row_probs(const EvoformerAttnShape& s, const Index& ix, const std::vector<float>& q, const std::vector<float>& k,
                 const float* mask, const float* pair, std::int64_t b, std::int64_t n, std::int64_t h,
                 std::int64_t i, std::vector<double>& p) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(s.head_dim));
  double mx = kNegInf;
  for (std::int64_t j = 0; j < s.len; ++j) {
    double dot = 0;
    for (std::int64_t d = 0; d < s.head_dim; ++d) dot += static_cast<double>(q[ix.qkv(b, n, i, h, d)]) * k[ix.qkv(b, n, j, h, d)];
    double logit = scale * dot;  // the scale applies to QK^T only, never to the biases
    if (mask) logit += mask[ix.mask(b, n, j)];
    if (pair) logit += pair[ix.pair(b, h, i, j)];
    p[static_cast<std::size_t>(j)] = logit;
    mx = std::max(mx, logit);
  }
  if (mx == kNegInf) {
    std::fill(p.begin(), p.end(), 0.0);
    return kNegInf;
  }
  double sum = 0;
  for (auto& x : p) {
    x = std::exp(x - mx);
    sum += x;
  }
  for (auto& x : p) x /= sum;
  return mx + std::log(sum);
}

}  // namespace

EvoformerAttnRefOut evoformer_attn_fwd_ref(const EvoformerAttnShape& s, const std::vector<float>& q,
                                           const std::vector<float>& k, const std::vector<float>& v,
                                           const float* mask_bias, const float* pair_bias) {
  const Index ix{s};
  EvoformerAttnRefOut out;
  out.o.assign(static_cast<std::size_t>(s.qkv_elements()), 0.0);
  out.lse.assign(static_cast<std::size_t>(s.rows() * s.heads * s.len), kNegInf);
  std::vector<double> p(static_cast<std::size_t>(s.len));
  for (std::int64_t b = 0; b < s.batch; ++b)
    for (std::int64_t n = 0; n < s.n; ++n)
      for (std::int64_t h = 0; h < s.heads; ++h)
        for (std::int64_t i = 0; i < s.len; ++i) {
          out.lse[ix.lse(b, n, h, i)] = row_probs(s, ix, q, k, mask_bias, pair_bias, b, n, h, i, p);
          for (std::int64_t j = 0; j < s.len; ++j) {
            const double pj = p[static_cast<std::size_t>(j)];
            if (pj == 0) continue;
            for (std::int64_t d = 0; d < s.head_dim; ++d) out.o[ix.qkv(b, n, i, h, d)] += pj * v[ix.qkv(b, n, j, h, d)];
          }
        }
  return out;
}

EvoformerAttnRefGrads evoformer_attn_bwd_ref(const EvoformerAttnShape& s, const std::vector<float>& q,
                                             const std::vector<float>& k, const std::vector<float>& v,
                                             const float* mask_bias, const float* pair_bias,
                                             const std::vector<float>& d_o) {
  const Index ix{s};
  const double scale = 1.0 / std::sqrt(static_cast<double>(s.head_dim));
  EvoformerAttnRefGrads g;
  g.dq.assign(static_cast<std::size_t>(s.qkv_elements()), 0.0);
  g.dk = g.dq;
  g.dv = g.dq;
  g.dpair.assign(static_cast<std::size_t>(s.batch * s.heads * s.len * s.len), 0.0);
  g.dmask.assign(static_cast<std::size_t>(s.batch * s.n * s.len), 0.0);
  std::vector<double> p(static_cast<std::size_t>(s.len)), dp(static_cast<std::size_t>(s.len));
  for (std::int64_t b = 0; b < s.batch; ++b)
    for (std::int64_t n = 0; n < s.n; ++n)
      for (std::int64_t h = 0; h < s.heads; ++h)
        for (std::int64_t i = 0; i < s.len; ++i) {
          if (row_probs(s, ix, q, k, mask_bias, pair_bias, b, n, h, i, p) == kNegInf) continue;
          // dP_j = dO_i . V_j ; D_i = sum_j P_j dP_j ; dS_j = P_j (dP_j - D_i)
          double row_dot = 0;
          for (std::int64_t j = 0; j < s.len; ++j) {
            double acc = 0;
            for (std::int64_t d = 0; d < s.head_dim; ++d) acc += static_cast<double>(d_o[ix.qkv(b, n, i, h, d)]) * v[ix.qkv(b, n, j, h, d)];
            dp[static_cast<std::size_t>(j)] = acc;
            row_dot += p[static_cast<std::size_t>(j)] * acc;
          }
          for (std::int64_t j = 0; j < s.len; ++j) {
            const double pj = p[static_cast<std::size_t>(j)];
            const double ds = pj * (dp[static_cast<std::size_t>(j)] - row_dot);
            g.dpair[ix.pair(b, h, i, j)] += ds;  // pair bias is broadcast over N: its gradient sums over N
            g.dmask[ix.mask(b, n, j)] += ds;     // mask bias broadcast over heads and query rows
            for (std::int64_t d = 0; d < s.head_dim; ++d) {
              g.dv[ix.qkv(b, n, j, h, d)] += pj * d_o[ix.qkv(b, n, i, h, d)];
              g.dq[ix.qkv(b, n, i, h, d)] += scale * ds * k[ix.qkv(b, n, j, h, d)];
              g.dk[ix.qkv(b, n, j, h, d)] += scale * ds * q[ix.qkv(b, n, i, h, d)];
            }
          }
        }
  return g;
}

}  // namespace seqscale
