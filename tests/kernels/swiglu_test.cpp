// swiglu: the double reference against a long-double formula written from the definition
// (silu(a) g), its backward against finite differences, the kernel's fp32 formula
// (swiglu_math.h, shared with the CPU backend) against the reference over the sigmoid's
// range, the fp32 CPU backend at awkward sizes, and the declared cost.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

#include "common/half.h"
#include "kernels/swiglu/swiglu_cost.h"
#include "kernels/swiglu/swiglu_cpu.h"
#include "kernels/swiglu/swiglu_math.h"
#include "kernels/swiglu/swiglu_ref.h"
#include "tests/support/matches.h"
#include "tests/support/seed.h"

namespace seqscale {
namespace {

using testing_support::matches;

// Values as a kernel with `t` I/O sees or stores them: rounded to the dtype (half.h).
std::vector<float> rounded(std::vector<float> v, DType t) {
  for (auto& x : v) {
    if (t == DType::kFp16) x = fp16_to_float(float_to_fp16(x));
    if (t == DType::kBf16) x = bf16_to_float(float_to_bf16(x));
  }
  return v;
}

std::vector<float> random_vec(std::size_t n, std::mt19937& rng, float scale = 1.f) {
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

TEST(SwiGlu, ReferenceIsSiluOfTheFirstHalfTimesTheSecond) {
  std::mt19937 rng(testing_support::test_seed());
  const std::int64_t rows = 5, ffn = 17;
  const auto x = random_vec(rows * 2 * ffn, rng, 3.f);
  const auto y = swiglu_fwd_ref(x, rows, ffn);
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t c = 0; c < ffn; ++c) {
      const long double a = x[r * 2 * ffn + c], g = x[r * 2 * ffn + ffn + c];
      const long double want = a / (1.0L + std::exp(-a)) * g;  // Llama: act_fn(gate_proj(x)) * up_proj(x)
      ASSERT_NEAR(y[r * ffn + c], static_cast<double>(want), 1e-15 * (1 + std::fabs(static_cast<double>(want))));
    }
  }
}

TEST(SwiGlu, BackwardReferenceMatchesFiniteDifferences) {
  std::mt19937 rng(testing_support::test_seed());
  const std::int64_t rows = 3, ffn = 11;
  auto x = random_vec(rows * 2 * ffn, rng, 2.f);
  const auto dy = random_vec(rows * ffn, rng);
  const auto dx = swiglu_bwd_ref(dy, x, rows, ffn);
  const auto loss = [&](const std::vector<float>& xx) {
    const auto y = swiglu_fwd_ref(xx, rows, ffn);
    double s = 0;
    for (std::size_t i = 0; i < y.size(); ++i) s += dy[i] * y[i];
    return s;
  };
  const float h = 1e-2f;
  for (std::size_t i = 0; i < x.size(); ++i) {  // both halves: da and dg
    auto xp = x, xm = x;
    xp[i] += h;
    xm[i] -= h;
    const double fd = (loss(xp) - loss(xm)) / (static_cast<double>(xp[i]) - xm[i]);
    EXPECT_NEAR(dx[i], fd, 1e-3 * (1 + std::fabs(fd))) << i;
  }
}

TEST(SwiGlu, Fp32FormulaIsAccurateOverTheSigmoidsRange) {
  for (float a = -30.f; a <= 30.f; a += 1.f / 32) {
    const double s = 1.0 / (1.0 + std::exp(-static_cast<double>(a)));
    const double silu = a * s, dsilu = s * (1.0 + a * (1.0 - s));
    EXPECT_NEAR(swiglu::forward(a, 1.f), silu, 1e-6 * std::fabs(silu) + 1e-30) << a;
    EXPECT_NEAR(swiglu::silu_derivative(a), dsilu, 2e-6 * std::fabs(dsilu) + 1e-7) << a;  // 1e-7: silu' = 0 at a ~ -1.28
  }
  EXPECT_EQ(swiglu::forward(-1e30f, 1.f), -0.f);  // saturates without NaN
  EXPECT_EQ(swiglu::silu_derivative(1e30f), 1.f);
  EXPECT_EQ(swiglu::silu_derivative(-1e30f), -0.f);
}

TEST(SwiGlu, CpuBackendMatchesReference) {
  std::mt19937 rng(testing_support::test_seed());
  for (auto [rows, ffn] : {std::pair<std::int64_t, std::int64_t>{1, 33}, {17, 96}, {1000, 33}, {1000, 6144}, {17, 24576}}) {
    const auto x = random_vec(static_cast<std::size_t>(rows * 2 * ffn), rng, 3.f);
    const auto dy = random_vec(static_cast<std::size_t>(rows * ffn), rng);
    std::vector<float> y(static_cast<std::size_t>(rows * ffn)), dx(x.size());
    swiglu_fwd_cpu(x.data(), rows, ffn, y.data());
    swiglu_bwd_cpu(dy.data(), x.data(), rows, ffn, dx.data());
    const std::string at = std::to_string(rows) + "x" + std::to_string(ffn) + " ";
    EXPECT_TRUE(matches(compare_values(at + "y", y, swiglu_fwd_ref(x, rows, ffn), swiglu_y_tolerance(DType::kFp32))));
    EXPECT_TRUE(matches(compare_values(at + "dx", dx, swiglu_bwd_ref(dy, x, rows, ffn), swiglu_dx_tolerance(DType::kFp32))));
  }
}

TEST(SwiGlu, DeclaredBytesAreTheCompulsoryTraffic) {
  // Llama-7B's MLP at 32768 tokens, bf16: read a and g, write y; backward read a, g, dy, write da, dg.
  EXPECT_DOUBLE_EQ(swiglu_fwd_cost(32768, 11008, DType::kBf16).bytes, 3.0 * 32768 * 11008 * 2);
  EXPECT_DOUBLE_EQ(swiglu_bwd_cost(32768, 11008, DType::kBf16).bytes, 5.0 * 32768 * 11008 * 2);
  EXPECT_EQ(swiglu_bwd_cost(17, 33, DType::kFp32).workspace_bytes, 0);
}

// The fp16 / bf16 tolerances hold for what the kernel does: inputs in the dtype, the fp32
// formula (the CPU backend evaluates the kernel's), one rounding of each output.
TEST(SwiGlu, HalfTolerancesCoverOneRoundingOfTheFp32Formula) {
  std::mt19937 rng(testing_support::test_seed());
  const std::int64_t rows = 200, ffn = 96;
  for (DType t : {DType::kFp16, DType::kBf16}) {
    const auto x = rounded(random_vec(rows * 2 * ffn, rng, 3.f), t), dy = rounded(random_vec(rows * ffn, rng), t);
    std::vector<float> y(static_cast<std::size_t>(rows * ffn)), dx(x.size());
    swiglu_fwd_cpu(x.data(), rows, ffn, y.data());
    swiglu_bwd_cpu(dy.data(), x.data(), rows, ffn, dx.data());
    const std::string at(dtype_name(t));
    EXPECT_TRUE(matches(compare_values(at + " y", rounded(y, t), swiglu_fwd_ref(x, rows, ffn), swiglu_y_tolerance(t))));
    EXPECT_TRUE(matches(compare_values(at + " dx", rounded(dx, t), swiglu_bwd_ref(dy, x, rows, ffn), swiglu_dx_tolerance(t))));
  }
}

}  // namespace
}  // namespace seqscale
