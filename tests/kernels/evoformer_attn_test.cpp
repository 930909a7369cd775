// Evoformer attention CPU reference: forward against an independent long-double
// formulation (explicit logits tensor, softmax, PV), backward against central finite
// differences of the forward, fully masked rows, and the published logits size.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "kernels/evoformer_attn/evoformer_attn_cost.h"
#include "kernels/evoformer_attn/evoformer_attn_ref.h"
#include "tests/support/seed.h"

namespace seqscale {
namespace {

struct Inputs {
  EvoformerAttnShape s;
  std::vector<float> q, k, v, mask, pair;
};

Inputs random_inputs(EvoformerAttnShape s, std::mt19937& rng) {
  std::normal_distribution<float> nd(0, 1);
  Inputs in{s, {}, {}, {}, {}, {}};
  for (auto* x : {&in.q, &in.k, &in.v}) {
    x->resize(static_cast<size_t>(s.qkv_elements()));
    for (auto& e : *x) e = nd(rng);
  }
  in.mask.resize(static_cast<size_t>(s.batch * s.n * s.len));
  for (auto& e : in.mask) e = (rng() % 5 == 0) ? -1e9f : 0.f;  // OpenFold: 1e9 * (mask - 1)
  in.pair.resize(static_cast<size_t>(s.batch * s.heads * s.len * s.len));
  for (auto& e : in.pair) e = nd(rng);
  return in;
}

TEST(EvoformerAttn, ForwardMatchesLongDoubleLogitsTensor) {
  std::mt19937 rng(testing_support::test_seed());
  for (auto dims : {EvoformerAttnShape{1, 1, 1, 1, 8}, {2, 3, 5, 2, 8}, {1, 2, 17, 4, 16}, {1, 1, 20, 2, 32}}) {
    const Inputs in = random_inputs(dims, rng);
    const auto& s = in.s;
    const auto out = evoformer_attn_fwd_ref(s, in.q, in.k, in.v, in.mask.data(), in.pair.data());
    // Independent path: the whole logits tensor [B, N, H, L, L] first, as the naive kernel does.
    const long double scale = 1.0L / std::sqrt(static_cast<long double>(s.head_dim));
    auto at = [&](const std::vector<float>& x, std::int64_t b, std::int64_t n, std::int64_t l, std::int64_t h, std::int64_t d) {
      return static_cast<long double>(x[static_cast<size_t>((((b * s.n + n) * s.len + l) * s.heads + h) * s.head_dim + d)]);
    };
    for (std::int64_t b = 0; b < s.batch; ++b)
      for (std::int64_t n = 0; n < s.n; ++n)
        for (std::int64_t h = 0; h < s.heads; ++h)
          for (std::int64_t i = 0; i < s.len; ++i) {
            std::vector<long double> logits(static_cast<size_t>(s.len));
            for (std::int64_t j = 0; j < s.len; ++j) {
              long double dot = 0;
              for (std::int64_t d = 0; d < s.head_dim; ++d) dot += at(in.q, b, n, i, h, d) * at(in.k, b, n, j, h, d);
              logits[static_cast<size_t>(j)] = scale * dot + in.mask[static_cast<size_t>((b * s.n + n) * s.len + j)] +
                                                in.pair[static_cast<size_t>(((b * s.heads + h) * s.len + i) * s.len + j)];
            }
            long double mx = logits[0], sum = 0;
            for (auto l : logits) mx = std::max(mx, l);
            for (auto& l : logits) sum += (l = std::exp(l - mx));
            // Every key masked (-1e9): the reference's double logits keep ~1e-7 of the
            // scores (an ulp at 1e9), long double ~1e-10.
            const double o_tol = mx < -1e8L ? 1e-6 : 1e-10;
            for (std::int64_t d = 0; d < s.head_dim; ++d) {
              long double o = 0;
              for (std::int64_t j = 0; j < s.len; ++j) o += logits[static_cast<size_t>(j)] / sum * at(in.v, b, n, j, h, d);
              ASSERT_NEAR(out.o[static_cast<size_t>((((b * s.n + n) * s.len + i) * s.heads + h) * s.head_dim + d)],
                          static_cast<double>(o), o_tol);
            }
            // A row whose keys are all masked has lse ~ -1e9: the tolerance includes a few
            // double ulps of the magnitude.
            const double want_lse = static_cast<double>(mx + std::log(sum));
            ASSERT_NEAR(out.lse[static_cast<size_t>(((b * s.n + n) * s.heads + h) * s.len + i)], want_lse,
                        1e-9 + 1e-15 * std::abs(want_lse));
          }
  }
}

TEST(EvoformerAttn, BackwardMatchesFiniteDifferences) {
  std::mt19937 rng(testing_support::test_seed());
  for (auto dims : {EvoformerAttnShape{1, 2, 3, 2, 8}, {1, 1, 5, 1, 16}}) {
    Inputs in = random_inputs(dims, rng);
    for (auto& m : in.mask) m = 0.f;  // finite differences need a smooth neighbourhood
    const auto& s = in.s;
    std::vector<float> d_o(static_cast<size_t>(s.qkv_elements()));
    std::normal_distribution<float> nd(0, 1);
    for (auto& e : d_o) e = nd(rng);
    const auto g = evoformer_attn_bwd_ref(s, in.q, in.k, in.v, in.mask.data(), in.pair.data(), d_o);
    auto loss = [&](const Inputs& x) {
      const auto o = evoformer_attn_fwd_ref(s, x.q, x.k, x.v, x.mask.data(), x.pair.data()).o;
      double l = 0;
      for (size_t i = 0; i < o.size(); ++i) l += d_o[i] * o[i];
      return l;
    };
    auto check = [&](std::vector<float> Inputs::*field, const std::vector<double>& grad, const char* name) {
      for (size_t i = 0; i < grad.size(); i += 3) {
        Inputs p = in, m = in;
        (p.*field)[i] += 1e-2f;
        (m.*field)[i] -= 1e-2f;
        const double fd = (loss(p) - loss(m)) / (static_cast<double>((p.*field)[i]) - (m.*field)[i]);
        ASSERT_NEAR(grad[i], fd, 2e-3 * (1 + std::fabs(fd))) << name << "[" << i << "]";
      }
    };
    check(&Inputs::q, g.dq, "dq");
    check(&Inputs::k, g.dk, "dk");
    check(&Inputs::v, g.dv, "dv");
    check(&Inputs::pair, g.dpair, "dpair");  // summed over N by construction of the broadcast
    check(&Inputs::mask, g.dmask, "dmask");
  }
}

TEST(EvoformerAttn, FullyMaskedRowsGiveZerosNotNaN) {
  EvoformerAttnShape s{1, 2, 4, 1, 8};
  std::mt19937 rng(1);
  Inputs in = random_inputs(s, rng);
  const float inf = std::numeric_limits<float>::infinity();
  for (int j = 0; j < 4; ++j) in.mask[static_cast<size_t>(j)] = -inf;  // n = 0: every key masked
  std::vector<float> d_o(static_cast<size_t>(s.qkv_elements()), 1.f);
  const auto out = evoformer_attn_fwd_ref(s, in.q, in.k, in.v, in.mask.data(), in.pair.data());
  const auto g = evoformer_attn_bwd_ref(s, in.q, in.k, in.v, in.mask.data(), in.pair.data(), d_o);
  for (std::int64_t i = 0; i < s.len * s.head_dim; ++i) {  // n = 0 block of O
    EXPECT_EQ(out.o[static_cast<size_t>(i)], 0.0);
    EXPECT_EQ(g.dq[static_cast<size_t>(i)], 0.0);
  }
  for (double x : out.o) EXPECT_FALSE(std::isnan(x));
  for (double x : g.dpair) EXPECT_FALSE(std::isnan(x));
  EXPECT_TRUE(std::isinf(out.lse[0]) && out.lse[0] < 0);
}

TEST(EvoformerAttn, PublishedExtraMsaLogitsAndFlops) {
  // ANCHORS.md s1 (DS4Sci): finetuning extra-MSA row attention, N_extra 5120, 8 heads,
  // N_res 384, bf16: 5120 * 8 * 384^2 * 2 B = 12.08 GB per logits copy.
  const EvoformerAttnShape s{1, 5120, 384, 8, 8};
  EXPECT_NEAR(evoformer_logits_bytes(s, DType::kBf16) / 1e9, 12.08, 0.005);
  const auto naive = evoformer_attn_fwd_cost(s, DType::kBf16, true, false);
  const auto fused = evoformer_attn_fwd_cost(s, DType::kBf16, true, true);
  EXPECT_DOUBLE_EQ(naive.flops, 4.0 * 5120 * 8 * 384.0 * 384 * 8);
  EXPECT_EQ(naive.workspace_bytes, static_cast<std::int64_t>(5120.0 * 8 * 384 * 384 * 2));
  EXPECT_EQ(fused.workspace_bytes, 0);
  EXPECT_DOUBLE_EQ(evoformer_attn_bwd_cost(s, DType::kBf16, true, true).flops, 10.0 * 5120 * 8 * 384.0 * 384 * 8);
  EXPECT_DOUBLE_EQ(evoformer_attn_bwd_cost(s, DType::kBf16, true, false).flops, 8.0 * 5120 * 8 * 384.0 * 384 * 8);
}

}  // namespace
}  // namespace seqscale
