// rotary: the double reference against an independent complex-number formulation (each
// pair (x_i, x_{i+h}) is x_i + i x_{i+h}, multiplied by e^{i theta_i}), the backward as the
// forward's adjoint and inverse, the fp32 CPU backend at awkward shapes (rotary_pct 0.25
// and 1, head_dim 33 / 64 / 96 / 128, a position offset, positions past 2^15), rotary_pct
// validation, and the declared cost.
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <random>
#include <string>

#include "common/half.h"
#include "kernels/rotary/rotary_cost.h"
#include "kernels/rotary/rotary_cpu.h"
#include "kernels/rotary/rotary_ref.h"
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

std::vector<float> random_vec(std::size_t n, std::mt19937& rng) {
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

RotaryShape shape(std::int64_t b, std::int64_t s, std::int64_t h, std::int64_t d, double pct, std::int64_t offset = 0) {
  RotaryShape r;
  r.batch = b;
  r.seq = s;
  r.heads = h;
  r.head_dim = d;
  r.rotary_dims = rotary_dims_of(d, pct);
  r.position_offset = offset;
  return r;
}

TEST(Rotary, ReferenceIsAComplexRotationOfRotateHalfPairs) {
  std::mt19937 rng(testing_support::test_seed());
  for (const RotaryShape& sh : {shape(2, 17, 3, 96, 0.25), shape(1, 5, 2, 128, 1.0), shape(1, 3, 1, 64, 0.5, 40000)}) {
    const auto x = random_vec(static_cast<std::size_t>(sh.elements()), rng);
    const auto y = rotary_ref(x, sh, false);
    const std::int64_t h = sh.rotary_dims / 2;
    for (std::int64_t row = 0; row < sh.rows(); ++row) {
      const long double p = static_cast<long double>(row / sh.heads % sh.seq + sh.position_offset);
      for (std::int64_t i = 0; i < h; ++i) {
        // GPT-NeoX: inv_freq = 1 / base^(arange(0, r, 2) / r); emb = cat(freqs, freqs); rotate_half pairs i, i + r/2.
        const long double theta = p / std::pow(10000.0L, static_cast<long double>(2 * i) / sh.rotary_dims);
        const std::complex<long double> z(x[row * sh.head_dim + i], x[row * sh.head_dim + h + i]);
        const auto r = z * std::polar(1.0L, theta);
        ASSERT_NEAR(y[row * sh.head_dim + i], static_cast<double>(r.real()), 1e-9) << row << " " << i;
        ASSERT_NEAR(y[row * sh.head_dim + h + i], static_cast<double>(r.imag()), 1e-9) << row << " " << i;
      }
      for (std::int64_t j = sh.rotary_dims; j < sh.head_dim; ++j) {
        ASSERT_EQ(y[row * sh.head_dim + j], x[row * sh.head_dim + j]) << "pass-through dim " << j;
      }
    }
  }
}

TEST(Rotary, BackwardIsTheAdjointAndTheInverse) {
  std::mt19937 rng(testing_support::test_seed());
  const RotaryShape sh = shape(2, 9, 3, 96, 0.25, 7);
  const auto x = random_vec(static_cast<std::size_t>(sh.elements()), rng), dy = random_vec(x.size(), rng);
  // d(sum dy * R x)/dx = R^T dy: the forward is linear, so <dy, R x> = <R^T dy, x> is the
  // finite-difference check taken to its limit.
  const auto rx = rotary_ref(x, sh, false), rtdy = rotary_ref(dy, sh, true);
  double lhs = 0, rhs = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    lhs += dy[i] * rx[i];
    rhs += rtdy[i] * x[i];
  }
  EXPECT_NEAR(lhs, rhs, 1e-9 * (1 + std::fabs(lhs)));
  // ... and a finite difference on one element, through the vector form.
  const std::size_t k = 5;
  auto xp = x, xm = x;
  xp[k] += 1e-2f;
  xm[k] -= 1e-2f;
  const auto yp = rotary_ref(xp, sh, false), ym = rotary_ref(xm, sh, false);
  double fd = 0;
  for (std::size_t i = 0; i < x.size(); ++i) fd += dy[i] * (yp[i] - ym[i]);
  fd /= static_cast<double>(xp[k]) - xm[k];
  EXPECT_NEAR(rtdy[k], fd, 1e-9);
  // R^T R = I: the backward undoes the forward.
  const std::vector<float> rxf(rx.begin(), rx.end());
  const auto back = rotary_ref(rxf, sh, true);
  for (std::size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(back[i], x[i], 1e-6) << i;
}

TEST(Rotary, CpuBackendMatchesReference) {
  std::mt19937 rng(testing_support::test_seed());
  for (const RotaryShape& sh : {shape(1, 1, 1, 96, 0.25), shape(2, 17, 3, 96, 0.25), shape(1, 17, 2, 33, 0.5),
                                shape(3, 1000, 1, 128, 1.0), shape(1, 64, 4, 96, 1.0, 32768),
                                shape(1, 5, 2, 64, 0.0)}) {
    const auto x = random_vec(static_cast<std::size_t>(sh.elements()), rng);
    const std::string at = std::to_string(sh.head_dim) + "/" + std::to_string(sh.rotary_dims) + " ";
    for (bool inverse : {false, true}) {
      std::vector<float> out(x.size()), in_place = x;
      rotary_cpu(x.data(), out.data(), sh, inverse);
      rotary_cpu(in_place.data(), in_place.data(), sh, inverse);
      const auto want = rotary_ref(x, sh, inverse);
      EXPECT_TRUE(matches(compare_values(at + "out", out, want, rotary_tolerance(DType::kFp32))));
      EXPECT_EQ(out, in_place) << at << "in place differs";
    }
  }
}

TEST(Rotary, RotaryPctIsValidated) {
  EXPECT_EQ(rotary_dims_of(96, 0.25), 24);  // GPT-NeoX / GenSLM
  EXPECT_EQ(rotary_dims_of(128, 1.0), 128); // Llama
  EXPECT_EQ(rotary_dims_of(96, 0.0), 0);
  const auto message = [](double pct, std::int64_t d) {
    try {
      rotary_dims_of(d, pct);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(message(1.5, 96), "rotary_pct must be in [0, 1], got 1.500000");
  EXPECT_EQ(message(-0.1, 96), "rotary_pct must be in [0, 1], got -0.100000");
  EXPECT_NE(message(0.25, 100).find("even"), std::string::npos);  // 25 rotary dims
}

TEST(Rotary, DeclaredBytesAreTheCompulsoryTraffic) {
  // GenSLM's q at 32768 tokens, 64 heads x 96, rotary_pct 0.25, bf16: in place moves the 24 rotated dims only.
  const RotaryShape sh = shape(1, 32768, 64, 96, 0.25);
  EXPECT_DOUBLE_EQ(rotary_cost(sh, DType::kBf16, true).bytes, 2.0 * 32768 * 64 * 24 * 2);
  EXPECT_DOUBLE_EQ(rotary_cost(sh, DType::kBf16, false).bytes, 2.0 * 32768 * 64 * 96 * 2);
  EXPECT_DOUBLE_EQ(rotary_cost(sh, DType::kBf16, true).flops, 3.0 * 32768 * 64 * 24);
}

// The fp16 / bf16 tolerance holds for what the kernel does: inputs in the dtype, the fp32
// rotation (the CPU backend uses the kernel's angle rule), one rounding of the output.
TEST(Rotary, HalfTolerancesCoverOneRoundingOfTheFp32Rotation) {
  std::mt19937 rng(testing_support::test_seed());
  const RotaryShape sh = shape(2, 300, 4, 96, 0.25, 30000);
  for (DType t : {DType::kFp16, DType::kBf16}) {
    const auto x = rounded(random_vec(static_cast<std::size_t>(sh.elements()), rng), t);
    std::vector<float> y(x.size());
    rotary_cpu(x.data(), y.data(), sh, false);
    EXPECT_TRUE(matches(compare_values(std::string(dtype_name(t)) + " y", rounded(y, t), rotary_ref(x, sh, false),
                                       rotary_tolerance(t))));
  }
}

}  // namespace
}  // namespace seqscale
