// bias_gelu: the double reference against Megatron's formula in long double, its backward
// against finite differences, the kernel's fp32 formula (bias_gelu_math.h, shared with the
// CPU backend) against the reference over GELU's whole range, the fp32 CPU backend against
// the reference at awkward sizes, and the declared cost against hand-counted bytes.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

#include "common/half.h"
#include "kernels/bias_gelu/bias_gelu_cost.h"
#include "kernels/bias_gelu/bias_gelu_cpu.h"
#include "kernels/bias_gelu/bias_gelu_math.h"
#include "kernels/bias_gelu/bias_gelu_ref.h"
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

// Megatron's fused_bias_gelu.py bias_gelu: x * 0.5 * (1.0 + tanh(0.79788456 * x * (1 + 0.044715 * x * x))).
long double megatron_gelu(long double z) {
  const long double k = 0.797884560802865355879892119869L;  // sqrt(2 / pi)
  return z * 0.5L * (1.0L + std::tanh(k * z * (1.0L + 0.044715L * z * z)));
}

TEST(BiasGelu, ReferenceIsMegatronsTanhFormula) {
  for (double z = -12; z <= 12; z += 0.0625) {
    EXPECT_NEAR(gelu_tanh_ref(z), static_cast<double>(megatron_gelu(z)), 1e-15 * (1 + std::fabs(z))) << z;
  }
  // The published shape: gelu(0) = 0, gelu(1) ~ 0.8412 (tanh form; the erf form gives 0.8413).
  EXPECT_EQ(gelu_tanh_ref(0.0), 0.0);
  EXPECT_NEAR(gelu_tanh_ref(1.0), 0.841192, 1e-6);
}

TEST(BiasGelu, Fp32FormulaIsAccurateOverTheWholeRange) {
  // The sigmoid form loses no digits to cancellation where the literal 0.5 z (1 + tanh u)
  // does in fp32 (z in [-6, -3]: 1 + tanh u ~ 1e-8 .. 1e-3): its relative error is e^{-2u}'s
  // conditioning, (8 + 4|u|) ulp (bias_gelu_math.h), checked at twice that. The double
  // reference cancels too, at 2^-53 (1 + |z|): the absolute floor.
  for (float z = -12.f; z <= 12.f; z += 1.f / 64) {
    const double y = gelu_tanh_ref(z), dy = gelu_tanh_grad_ref(z);
    const double u = 0.7978845608 * std::fabs(z) * (1 + 0.044715 * z * z);
    const double rel = 2 * (8 + 4 * u) * std::ldexp(1.0, -24);
    EXPECT_NEAR(gelu::forward(z), y, rel * std::fabs(y) + 1e-15 * (1 + std::fabs(z))) << z;
    EXPECT_NEAR(gelu::derivative(z), dy, 2e-6 * std::fabs(dy) + 1e-7) << z;  // 1e-7: gelu' crosses zero near z = -0.75
  }
  EXPECT_EQ(gelu::forward(-1e30f), -0.f);  // saturates without NaN
  EXPECT_EQ(gelu::forward(1e30f), 1e30f);
  EXPECT_EQ(gelu::derivative(-1e30f), 0.f);
  EXPECT_EQ(gelu::derivative(1e30f), 1.f);
}

TEST(BiasGelu, BackwardReferenceMatchesFiniteDifferences) {
  for (double z = -8; z <= 8; z += 0.125) {
    const double h = 1e-5, fd = (gelu_tanh_ref(z + h) - gelu_tanh_ref(z - h)) / (2 * h);
    EXPECT_NEAR(gelu_tanh_grad_ref(z), fd, 1e-9) << z;
  }
  // Through the vector form: loss = sum(dy * y); d loss / d x and d loss / d b.
  std::mt19937 rng(testing_support::test_seed());
  const std::int64_t rows = 3, cols = 17;
  auto x = random_vec(rows * cols, rng, 2.f), b = random_vec(cols, rng), dy = random_vec(rows * cols, rng);
  const auto g = bias_gelu_bwd_ref(dy, x, b, rows, cols);
  const auto loss = [&](const std::vector<float>& xx, const std::vector<float>& bb) {
    const auto y = bias_gelu_fwd_ref(xx, bb, rows, cols);
    double s = 0;
    for (std::size_t i = 0; i < y.size(); ++i) s += dy[i] * y[i];
    return s;
  };
  const float h = 1e-2f;
  for (std::size_t i = 0; i < x.size(); i += 4) {
    auto xp = x, xm = x;
    xp[i] += h;
    xm[i] -= h;
    const double fd = (loss(xp, b) - loss(xm, b)) / (static_cast<double>(xp[i]) - xm[i]);
    EXPECT_NEAR(g.dx[i], fd, 1e-3 * (1 + std::fabs(fd))) << i;
  }
  for (std::size_t c = 0; c < b.size(); c += 3) {
    auto bp = b, bm = b;
    bp[c] += h;
    bm[c] -= h;
    const double fd = (loss(x, bp) - loss(x, bm)) / (static_cast<double>(bp[c]) - bm[c]);
    EXPECT_NEAR(g.dbias[c], fd, 1e-3 * (1 + std::fabs(fd))) << c;
  }
}

TEST(BiasGelu, CpuBackendMatchesReference) {
  std::mt19937 rng(testing_support::test_seed());
  for (auto [rows, cols] : {std::pair<std::int64_t, std::int64_t>{1, 33}, {17, 96}, {1000, 33}, {1000, 6144},
                            {17, 24576}, {1, 24576}}) {
    auto x = random_vec(static_cast<std::size_t>(rows * cols), rng, 2.f), b = random_vec(static_cast<std::size_t>(cols), rng);
    auto dy = random_vec(static_cast<std::size_t>(rows * cols), rng);
    std::vector<float> y(x.size()), dx(x.size()), db(static_cast<std::size_t>(cols));
    bias_gelu_fwd_cpu(x.data(), b.data(), rows, cols, y.data());
    bias_gelu_bwd_cpu(dy.data(), x.data(), b.data(), rows, cols, dx.data(), db.data());
    const auto ref = bias_gelu_bwd_ref(dy, x, b, rows, cols);
    const std::string at = std::to_string(rows) + "x" + std::to_string(cols) + " ";
    EXPECT_TRUE(matches(compare_values(at + "y", y, bias_gelu_fwd_ref(x, b, rows, cols), bias_gelu_y_tolerance(DType::kFp32))));
    EXPECT_TRUE(matches(compare_values(at + "dx", dx, ref.dx, bias_gelu_dx_tolerance(DType::kFp32))));
    EXPECT_TRUE(matches(compare_values(at + "dbias", db, ref.dbias, bias_gelu_dbias_tolerance(rows))));
  }
}

TEST(BiasGelu, DeclaredBytesAreTheCompulsoryTraffic) {
  // GenSLM's MLP, bf16: read x, write y (2 B each) and the bias once.
  const auto f = bias_gelu_fwd_cost(32768, 24576, DType::kBf16);
  EXPECT_DOUBLE_EQ(f.bytes, 2.0 * 32768 * 24576 * 2 + 24576 * 2);
  EXPECT_EQ(f.workspace_bytes, 0);
  // Backward: read dy and x, write dx, the bias once, fp32 dbias; partials of 128 chunks.
  const auto b = bias_gelu_bwd_cost(32768, 24576, DType::kBf16);
  EXPECT_DOUBLE_EQ(b.bytes, 3.0 * 32768 * 24576 * 2 + 24576 * 2 + 24576 * 4);
  EXPECT_EQ(b.workspace_bytes, 128 * 24576 * 4);
  EXPECT_EQ(bias_gelu_bwd_cost(17, 33, DType::kFp32, false).workspace_bytes, 0);
  EXPECT_EQ(bias_gelu_bwd_row_chunks(1), 1);
  EXPECT_EQ(bias_gelu_bwd_row_chunks(1000), 32);
}

// The fp16 / bf16 tolerances hold for what the kernel does: inputs in the dtype, the fp32
// formula (the CPU backend evaluates the kernel's), one rounding of each output.
TEST(BiasGelu, HalfTolerancesCoverOneRoundingOfTheFp32Formula) {
  std::mt19937 rng(testing_support::test_seed());
  const std::int64_t rows = 200, cols = 96;
  for (DType t : {DType::kFp16, DType::kBf16}) {
    const auto x = rounded(random_vec(rows * cols, rng, 2.f), t), b = rounded(random_vec(cols, rng), t);
    const auto dy = rounded(random_vec(rows * cols, rng), t);
    std::vector<float> y(x.size()), dx(x.size());
    bias_gelu_fwd_cpu(x.data(), b.data(), rows, cols, y.data());
    bias_gelu_bwd_cpu(dy.data(), x.data(), b.data(), rows, cols, dx.data(), nullptr);
    const std::string at(dtype_name(t));
    EXPECT_TRUE(matches(compare_values(at + " y", rounded(y, t), bias_gelu_fwd_ref(x, b, rows, cols), bias_gelu_y_tolerance(t))));
    EXPECT_TRUE(matches(compare_values(at + " dx", rounded(dx, t), bias_gelu_bwd_ref(dy, x, b, rows, cols).dx,
                                       bias_gelu_dx_tolerance(t))));
  }
}

}  // namespace
}  // namespace seqscale
