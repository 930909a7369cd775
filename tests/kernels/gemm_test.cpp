// GEMM CPU reference against an independent long-double dot product on random awkward
// shapes, and the declared cost.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernels/gemm/gemm_cost.h"
#include "kernels/gemm/gemm_ref.h"
#include "tests/support/seed.h"

namespace seqscale {
namespace {

TEST(Gemm, ReferenceMatchesLongDoubleDotProducts) {
  std::mt19937 rng(testing_support::test_seed());
  std::uniform_real_distribution<float> d(-1, 1);
  for (auto [m, n, k] : {std::tuple{1, 1, 1}, {3, 5, 7}, {17, 33, 65}, {64, 1, 129}}) {
    std::vector<float> a(static_cast<size_t>(m * k)), b(static_cast<size_t>(k * n));
    for (auto& x : a) x = d(rng);
    for (auto& x : b) x = d(rng);
    std::vector<double> c(static_cast<size_t>(m * n));
    gemm_ref(a.data(), b.data(), c.data(), m, n, k);
    for (int i = 0; i < m; ++i) {
      for (int j = 0; j < n; ++j) {
        long double s = 0;
        for (int p = 0; p < k; ++p) s += static_cast<long double>(a[i * k + p]) * b[p * n + j];
        ASSERT_NEAR(c[i * n + j], static_cast<double>(s), 1e-12 * k) << m << "x" << n << "x" << k;
      }
    }
  }
}

TEST(Gemm, DeclaredCost) {
  const auto c = gemm_cost(16384, 6144, 6144, DType::kBf16);
  EXPECT_DOUBLE_EQ(c.flops, 2.0 * 16384 * 6144 * 6144);
  EXPECT_DOUBLE_EQ(c.bytes, 2.0 * (16384.0 * 6144 + 6144.0 * 6144 + 16384.0 * 6144));
  EXPECT_DOUBLE_EQ(copy_cost(1 << 30).bytes, 2.0 * (1 << 30));
}

}  // namespace
}  // namespace seqscale
