// GEMM CPU reference against an independent long-double dot product on random awkward
// shapes, and the declared cost.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernels/gemm/gemm_cost.h"
#include "kernels/bias_gelu/bias_gelu_ref.h"
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

// The epilogues' reference against the bias_gelu kernel's reference (an independent
// text): bias then GELU equals bias_gelu_fwd_ref of the product, the aux is the biased
// product, DGELU is bias_gelu_bwd_ref's dx with a zero bias and its column sums its dbias.
TEST(Gemm, EpilogueReferenceMatchesBiasGeluReference) {
  std::mt19937 rng(testing_support::test_seed());
  std::uniform_real_distribution<float> d(-2, 2);
  const std::int64_t m = 7, n = 13;
  std::vector<float> prod(static_cast<size_t>(m * n)), bias(static_cast<size_t>(n)), aux(prod.size());
  for (auto& x : prod) x = d(rng);
  for (auto& x : bias) x = d(rng);
  for (auto& x : aux) x = d(rng);
  const std::vector<double> prod_d(prod.begin(), prod.end());

  std::vector<double> c = prod_d;
  gemm_epilogue_ref(GemmEpilogue::kBias, c.data(), m, n, bias.data(), nullptr, nullptr, nullptr);
  for (std::int64_t i = 0; i < m * n; ++i) EXPECT_DOUBLE_EQ(c[i], prod_d[i] + bias[i % n]);

  c = prod_d;
  std::vector<double> aux_out(prod.size());
  gemm_epilogue_ref(GemmEpilogue::kGeluAux, c.data(), m, n, bias.data(), nullptr, aux_out.data(), nullptr);
  const std::vector<double> y = bias_gelu_fwd_ref(prod, bias, m, n);
  for (std::int64_t i = 0; i < m * n; ++i) {
    EXPECT_DOUBLE_EQ(aux_out[i], prod_d[i] + bias[i % n]);
    EXPECT_NEAR(c[i], y[i], 1e-12);
  }

  c = prod_d;
  std::vector<double> db(static_cast<size_t>(n)), dx(prod.size()), dbias(static_cast<size_t>(n));
  const std::vector<float> zero(static_cast<size_t>(n), 0.f);
  gemm_epilogue_ref(GemmEpilogue::kDGeluBgrad, c.data(), m, n, nullptr, aux.data(), nullptr, db.data());
  bias_gelu_bwd_ref(prod.data(), aux.data(), zero.data(), m, n, dx.data(), dbias.data());
  for (std::int64_t i = 0; i < m * n; ++i) EXPECT_NEAR(c[i], dx[i], 1e-12);
  for (std::int64_t j = 0; j < n; ++j) EXPECT_NEAR(db[j], dbias[j], 1e-12);
  EXPECT_THROW(gemm_epilogue_ref(GemmEpilogue::kBias, c.data(), m, n, nullptr, nullptr, nullptr, nullptr),
               std::invalid_argument);
}

TEST(Gemm, DeclaredCost) {
  const auto c = gemm_cost(16384, 6144, 6144, DType::kBf16);
  EXPECT_DOUBLE_EQ(c.flops, 2.0 * 16384 * 6144 * 6144);
  EXPECT_DOUBLE_EQ(c.bytes, 2.0 * (16384.0 * 6144 + 6144.0 * 6144 + 16384.0 * 6144));
  EXPECT_DOUBLE_EQ(copy_cost(1 << 30).bytes, 2.0 * (1 << 30));
}

}  // namespace
}  // namespace seqscale
