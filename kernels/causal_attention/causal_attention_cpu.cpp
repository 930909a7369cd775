#include "kernels/causal_attention/causal_attention_cpu.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace seqscale {
namespace {

constexpr std::int64_t kKeyBlock = 64;  // keys per online-softmax step, as the GPU's key tiles

// Row (b, i, h) of a strided [B, S, H, D] view.
template <typename T>
T* row_of(T* base, const BshdStrides& st, std::int64_t b, std::int64_t i, std::int64_t h) {
  return base + b * st.batch + i * st.seq + h * st.head;
}

float dot(const float* a, const float* b, std::int64_t n) {
  float s = 0.f;
  for (std::int64_t d = 0; d < n; ++d) s += a[d] * b[d];
  return s;
}

}  // namespace

void causal_attention_fwd_cpu(const CausalAttentionParams& p) {
  causal_attention_validate_fwd(p, /*gpu=*/false);
  const CausalAttentionShape& s = p.shape;
  const std::int64_t dim = s.head_dim;
  const BshdStrides qs = resolve_strides(p.q_strides, s), ks = resolve_strides(p.k_strides, s),
                    vs = resolve_strides(p.v_strides, s), os = resolve_strides(p.o_strides, s);
  const auto* q = static_cast<const float*>(p.q);
  const auto* k = static_cast<const float*>(p.k);
  const auto* v = static_cast<const float*>(p.v);
  auto* o = static_cast<float*>(p.o);
  const float scale = 1.f / std::sqrt(static_cast<float>(dim));
  std::vector<float> acc(static_cast<std::size_t>(dim)), sc(static_cast<std::size_t>(kKeyBlock));
  for (std::int64_t b = 0; b < s.batch; ++b)
    for (std::int64_t h = 0; h < s.heads; ++h)
      for (std::int64_t i = 0; i < s.seq; ++i) {
        const float* qi = row_of(q, qs, b, i, h);
        std::fill(acc.begin(), acc.end(), 0.f);
        float m = -INFINITY, l = 0.f;
        for (std::int64_t j0 = 0; j0 <= i; j0 += kKeyBlock) {
          const std::int64_t n = std::min(kKeyBlock, i + 1 - j0);  // keys j0 .. min(j0 + 63, i)
          float mx = -INFINITY;
          for (std::int64_t jj = 0; jj < n; ++jj) {
            sc[static_cast<std::size_t>(jj)] = scale * dot(qi, row_of(k, ks, b, j0 + jj, h), dim);
            mx = std::max(mx, sc[static_cast<std::size_t>(jj)]);
          }
          const float m_new = std::max(m, mx);
          const float corr = std::exp(m - m_new);  // 0 on the first block (m = -inf)
          l *= corr;
          for (auto& a : acc) a *= corr;
          for (std::int64_t jj = 0; jj < n; ++jj) {
            const float pj = std::exp(sc[static_cast<std::size_t>(jj)] - m_new);
            l += pj;
            const float* vj = row_of(v, vs, b, j0 + jj, h);
            for (std::int64_t d = 0; d < dim; ++d) acc[static_cast<std::size_t>(d)] += pj * vj[d];
          }
          m = m_new;
        }
        float* oi = row_of(o, os, b, i, h);
        for (std::int64_t d = 0; d < dim; ++d) oi[d] = acc[static_cast<std::size_t>(d)] / l;
        p.lse[(b * s.heads + h) * s.seq + i] = m + std::log(l);
      }
}

void causal_attention_bwd_cpu(const CausalAttentionParams& p, const CausalAttentionGrads& g) {
  causal_attention_validate_bwd(p, g, /*gpu=*/false);
  const CausalAttentionShape& s = p.shape;
  const std::int64_t dim = s.head_dim;
  const BshdStrides qs = resolve_strides(p.q_strides, s), ks = resolve_strides(p.k_strides, s),
                    vs = resolve_strides(p.v_strides, s), os = resolve_strides(p.o_strides, s),
                    dos = resolve_strides(g.d_o_strides, s), dqs = resolve_strides(g.dq_strides, s),
                    dks = resolve_strides(g.dk_strides, s), dvs = resolve_strides(g.dv_strides, s);
  const auto* q = static_cast<const float*>(p.q);
  const auto* k = static_cast<const float*>(p.k);
  const auto* v = static_cast<const float*>(p.v);
  const auto* o = static_cast<const float*>(p.o);
  const auto* d_o = static_cast<const float*>(g.d_o);
  auto* dq = static_cast<float*>(g.dq);
  auto* dk = static_cast<float*>(g.dk);
  auto* dv = static_cast<float*>(g.dv);
  const float scale = 1.f / std::sqrt(static_cast<float>(dim));
  std::vector<float> dq_acc(static_cast<std::size_t>(dim));
  for (std::int64_t b = 0; b < s.batch; ++b)
    for (std::int64_t h = 0; h < s.heads; ++h) {
      const std::int64_t row0 = (b * s.heads + h) * s.seq;
      for (std::int64_t j = 0; j < s.seq; ++j) {
        std::fill_n(row_of(dk, dks, b, j, h), dim, 0.f);
        std::fill_n(row_of(dv, dvs, b, j, h), dim, 0.f);
        g.row_dot[row0 + j] = dot(row_of(d_o, dos, b, j, h), row_of(o, os, b, j, h), dim);
      }
      for (std::int64_t i = 0; i < s.seq; ++i) {
        const float* qi = row_of(q, qs, b, i, h);
        const float* doi = row_of(d_o, dos, b, i, h);
        const float lse = p.lse[row0 + i], row_dot = g.row_dot[row0 + i];
        std::fill(dq_acc.begin(), dq_acc.end(), 0.f);
        for (std::int64_t j = 0; j <= i; ++j) {
          const float* kj = row_of(k, ks, b, j, h);
          const float pij = std::exp(scale * dot(qi, kj, dim) - lse);
          const float ds = pij * (dot(doi, row_of(v, vs, b, j, h), dim) - row_dot);
          float* dkj = row_of(dk, dks, b, j, h);
          float* dvj = row_of(dv, dvs, b, j, h);
          for (std::int64_t d = 0; d < dim; ++d) {
            dq_acc[static_cast<std::size_t>(d)] += ds * kj[d];
            dkj[d] += scale * ds * qi[d];
            dvj[d] += pij * doi[d];
          }
        }
        float* dqi = row_of(dq, dqs, b, i, h);
        for (std::int64_t d = 0; d < dim; ++d) dqi[d] = scale * dq_acc[static_cast<std::size_t>(d)];
      }
    }
}

}  // namespace seqscale
