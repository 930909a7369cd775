// LayerNorm CPU reference against an independent long-double formula, on fresh random
// inputs and awkward widths; the declared cost against hand-counted bytes.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "common/half.h"
#include "kernels/layernorm/layernorm_cost.h"
#include "kernels/layernorm/layernorm_ref.h"
#include "tests/support/seed.h"

namespace seqscale {
namespace {

std::vector<float> random_vec(std::size_t n, std::mt19937& rng, float scale = 1.f, float offset = 0.f) {
  std::normal_distribution<float> d(offset, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

TEST(Layernorm, ReferenceMatchesLongDoubleFormula) {
  std::mt19937 rng(testing_support::test_seed());
  for (auto [rows, cols] : {std::pair{1, 1}, {3, 17}, {5, 33}, {2, 1000}, {7, 1023}, {4, 6144}}) {
    // Large offset: a naive E[x^2]-E[x]^2 would lose digits; both sides must not.
    auto x = random_vec(static_cast<size_t>(rows * cols), rng, 2.f, 50.f);
    auto w = random_vec(static_cast<size_t>(cols), rng);
    auto b = random_vec(static_cast<size_t>(cols), rng);
    const auto out = layernorm_fwd_ref(x, w, b, rows, cols, 1e-5);
    for (int r = 0; r < rows; ++r) {
      long double mean = 0, var = 0;
      for (int c = 0; c < cols; ++c) mean += x[r * cols + c];
      mean /= cols;
      for (int c = 0; c < cols; ++c) var += (x[r * cols + c] - mean) * (x[r * cols + c] - mean);
      var /= cols;
      const long double rstd = 1.0L / std::sqrt(var + 1e-5L);
      EXPECT_NEAR(out.mean[r], static_cast<double>(mean), 1e-9 * std::fabs(static_cast<double>(mean)) + 1e-12);
      EXPECT_NEAR(out.rstd[r], static_cast<double>(rstd), 1e-9 * static_cast<double>(rstd));
      for (int c = 0; c < cols; ++c) {
        const long double y = (x[r * cols + c] - mean) * rstd * w[c] + b[c];
        ASSERT_NEAR(out.y[r * cols + c], static_cast<double>(y), 1e-9) << "rows=" << rows << " cols=" << cols;
      }
    }
  }
}

TEST(Layernorm, BackwardReferenceMatchesFiniteDifferences) {
  std::mt19937 rng(testing_support::test_seed());
  const int rows = 3, cols = 17;
  auto x = random_vec(rows * cols, rng);
  auto w = random_vec(cols, rng);
  auto b = random_vec(cols, rng);
  auto dy = random_vec(rows * cols, rng);
  const auto g = layernorm_bwd_ref(dy, x, w, rows, cols, 1e-5);
  // loss = sum(dy * y); d loss / d x by central differences on the double forward.
  auto loss = [&](const std::vector<float>& xx, const std::vector<float>& ww, const std::vector<float>& bb) {
    const auto o = layernorm_fwd_ref(xx, ww, bb, rows, cols, 1e-5);
    double s = 0;
    for (size_t i = 0; i < o.y.size(); ++i) s += dy[i] * o.y[i];
    return s;
  };
  const float h = 1e-2f;  // float inputs: a coarse step keeps rounding error below 1e-4
  for (int i = 0; i < rows * cols; i += 5) {
    auto xp = x, xm = x;
    xp[i] += h;
    xm[i] -= h;
    const double fd = (loss(xp, w, b) - loss(xm, w, b)) / (static_cast<double>(xp[i]) - xm[i]);
    EXPECT_NEAR(g.dx[i], fd, 2e-3 * (1 + std::fabs(fd))) << i;
  }
  for (int c = 0; c < cols; c += 4) {
    auto wp = w, wm = w;
    wp[c] += h;
    wm[c] -= h;
    const double fd = (loss(x, wp, b) - loss(x, wm, b)) / (static_cast<double>(wp[c]) - wm[c]);
    EXPECT_NEAR(g.dweight[c], fd, 2e-3 * (1 + std::fabs(fd))) << c;
    double db = 0;
    for (int r = 0; r < rows; ++r) db += dy[r * cols + c];
    EXPECT_NEAR(g.dbias[c], db, 1e-9);
  }
}

TEST(Layernorm, DeclaredBytesAreTheCompulsoryTraffic) {
  // bf16 forward of 4096 x 6144: read x + write y (2 B each), weight+bias, fp32 mean+rstd.
  const auto c = layernorm_fwd_cost(4096, 6144, DType::kBf16);
  EXPECT_DOUBLE_EQ(c.bytes, 2.0 * 4096 * 6144 * 2 + 2.0 * 6144 * 2 + 8.0 * 4096);
  const auto b = layernorm_bwd_cost(4096, 6144, DType::kFp32);
  EXPECT_DOUBLE_EQ(b.bytes, 3.0 * 4096 * 6144 * 4 + 6144 * 4 + 8.0 * 4096 + 8.0 * 6144);
  EXPECT_EQ(b.workspace_bytes, 2 * 64 * 6144 * 4);
}

TEST(HalfConversion, RoundTripsEveryFp16AndBf16Value) {
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    const auto v = static_cast<std::uint16_t>(h);
    const float f = fp16_to_float(v);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(fp16_to_float(float_to_fp16(f))));
      continue;
    }
    ASSERT_EQ(float_to_fp16(f), v) << std::hex << h;
    const float g = bf16_to_float(v);
    if (!std::isnan(g)) {
      ASSERT_EQ(float_to_bf16(g), v) << std::hex << h;
    }
  }
}

TEST(HalfConversion, RoundsToNearestEven) {
  EXPECT_EQ(fp16_to_float(float_to_fp16(1.0f + 1.0f / 2048)), 1.0f);             // tie -> even
  EXPECT_EQ(fp16_to_float(float_to_fp16(1.0f + 3.0f / 2048)), 1.0f + 2.0f / 1024);
  EXPECT_EQ(float_to_fp16(70000.f), 0x7c00);                                     // overflow -> inf
  EXPECT_EQ(fp16_to_float(float_to_fp16(5.96e-8f)), 5.9604644775390625e-8f);     // smallest subnormal
  EXPECT_EQ(bf16_to_float(float_to_bf16(1.0f + 1.0f / 256)), 1.0f);
}

}  // namespace
}  // namespace seqscale
