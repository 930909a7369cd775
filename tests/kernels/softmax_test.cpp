// Fused softmax reference: against a direct long-double formula with both broadcasts on
// fresh random inputs, fully masked (-inf) rows give zeros, -1e9 masks give the softmax of
// the unmasked columns, and the backward against finite differences.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "kernels/softmax/softmax_ref.h"
#include "tests/support/seed.h"

namespace seqscale {
namespace {

TEST(Softmax, ReferenceMatchesDirectFormulaWithBroadcasts) {
  std::mt19937 rng(testing_support::test_seed());
  std::normal_distribution<float> nd(0, 3);
  for (auto [B, N, H, R, C] : {std::tuple{1, 1, 1, 1, 1}, {2, 3, 2, 5, 17}, {1, 4, 3, 2, 1025}}) {
    SoftmaxShape s{B, N, H, R, C};
    std::vector<float> x(static_cast<size_t>(s.elements())), m(static_cast<size_t>(B * N * C)),
        b(static_cast<size_t>(B * H * R * C));
    for (auto* v : {&x, &m, &b}) for (auto& e : *v) e = nd(rng);
    const double scale = 0.125;
    const auto y = softmax_fwd_ref(x, m.data(), b.data(), s, scale);
    for (int bi = 0; bi < B; ++bi)
      for (int n = 0; n < N; ++n)
        for (int h = 0; h < H; ++h)
          for (int r = 0; r < R; ++r) {
            const size_t row = static_cast<size_t>(((bi * N + n) * H + h) * R + r);
            long double denom = 0;
            std::vector<long double> e(static_cast<size_t>(C));
            for (int c = 0; c < C; ++c) {
              e[c] = std::exp(static_cast<long double>(scale) * x[row * C + c] + m[(bi * N + n) * C + c] +
                              b[((bi * H + h) * R + r) * C + c]);
              denom += e[c];
            }
            for (int c = 0; c < C; ++c) ASSERT_NEAR(y[row * C + c], static_cast<double>(e[c] / denom), 1e-12);
          }
  }
}

TEST(Softmax, MaskedRowsAndColumns) {
  SoftmaxShape s{1, 2, 1, 1, 8};
  std::vector<float> x(16, 0.5f), mask(16, 0.f);
  const float inf = std::numeric_limits<float>::infinity();
  for (int c = 0; c < 8; ++c) mask[c] = -inf;                    // n = 0: every column masked
  for (int c = 0; c < 8; ++c) mask[8 + c] = c < 3 ? 0.f : -1e9f;  // n = 1: three live columns
  const auto y = softmax_fwd_ref(x, mask.data(), nullptr, s, 1.0);
  for (int c = 0; c < 8; ++c) {
    EXPECT_EQ(y[c], 0.0) << "fully masked row must be zeros, not NaN";
    EXPECT_NEAR(y[8 + c], c < 3 ? 1.0 / 3 : 0.0, 1e-12);
  }
}

TEST(Softmax, BackwardMatchesFiniteDifferences) {
  std::mt19937 rng(testing_support::test_seed());
  std::normal_distribution<float> nd(0, 1);
  SoftmaxShape s{1, 1, 1, 3, 9};
  std::vector<float> x(27), dy(27);
  for (auto& e : x) e = nd(rng);
  for (auto& e : dy) e = nd(rng);
  const double scale = 0.5;
  const auto y = softmax_fwd_ref(x, nullptr, nullptr, s, scale);
  const std::vector<float> yf(y.begin(), y.end());
  const auto dx = softmax_bwd_ref(yf, dy, s, scale);
  for (int i = 0; i < 27; ++i) {
    auto xp = x, xm = x;
    xp[i] += 1e-2f;
    xm[i] -= 1e-2f;
    const auto yp = softmax_fwd_ref(xp, nullptr, nullptr, s, scale), ym = softmax_fwd_ref(xm, nullptr, nullptr, s, scale);
    double fd = 0;
    for (int j = 0; j < 27; ++j) fd += dy[j] * (yp[j] - ym[j]);
    fd /= (static_cast<double>(xp[i]) - xm[i]);
    EXPECT_NEAR(dx[i], fd, 1e-4 + 1e-3 * std::fabs(fd)) << i;  // float inputs: y rounded to float
  }
}

TEST(Softmax, DeclaredCost) {
  SoftmaxShape s{1, 128, 8, 256, 256};
  const auto c = softmax_fwd_cost(s, DType::kBf16, true, true);
  EXPECT_DOUBLE_EQ(c.bytes, 2.0 * s.elements() * 2 + 128.0 * 256 * 2 + 8.0 * 256 * 256 * 2);
  EXPECT_DOUBLE_EQ(softmax_bwd_cost(s, DType::kFp32).bytes, 3.0 * s.elements() * 4);
}

}  // namespace
}  // namespace seqscale
