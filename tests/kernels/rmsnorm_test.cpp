// rmsnorm: the double reference against a long-double formula, its backward against finite
// differences, the fp32 CPU backend at awkward sizes (rows 1, 17, 1000; cols 33, 96, 6144),
// and the declared cost against hand-counted bytes.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

#include "common/half.h"
#include "kernels/rmsnorm/rmsnorm_cost.h"
#include "kernels/rmsnorm/rmsnorm_cpu.h"
#include "kernels/rmsnorm/rmsnorm_ref.h"
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

std::vector<float> random_vec(std::size_t n, std::mt19937& rng, float scale = 1.f, float offset = 0.f) {
  std::normal_distribution<float> d(offset, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

TEST(RmsNorm, ReferenceMatchesLongDoubleFormula) {
  std::mt19937 rng(testing_support::test_seed());
  for (auto [rows, cols] : {std::pair<std::int64_t, std::int64_t>{1, 1}, {3, 33}, {2, 96}, {2, 6144}}) {
    const auto x = random_vec(static_cast<std::size_t>(rows * cols), rng, 1.5f, 0.5f);
    const auto w = random_vec(static_cast<std::size_t>(cols), rng);
    const auto out = rmsnorm_fwd_ref(x, w, rows, cols, 1e-6);
    for (std::int64_t r = 0; r < rows; ++r) {
      long double ss = 0;
      for (std::int64_t c = 0; c < cols; ++c) ss += static_cast<long double>(x[r * cols + c]) * x[r * cols + c];
      const long double rstd = 1.0L / std::sqrt(ss / cols + 1e-6L);
      EXPECT_NEAR(out.rstd[r], static_cast<double>(rstd), 1e-12 * static_cast<double>(rstd));
      for (std::int64_t c = 0; c < cols; ++c) {
        ASSERT_NEAR(out.y[r * cols + c], static_cast<double>(x[r * cols + c] * rstd * w[c]), 1e-12);
      }
    }
  }
}

TEST(RmsNorm, BackwardReferenceMatchesFiniteDifferences) {
  std::mt19937 rng(testing_support::test_seed());
  const std::int64_t rows = 3, cols = 17;
  const auto x = random_vec(rows * cols, rng, 1.f, 0.3f), w = random_vec(cols, rng), dy = random_vec(rows * cols, rng);
  const auto g = rmsnorm_bwd_ref(dy, x, w, rows, cols, 1e-6);
  const auto loss = [&](const std::vector<float>& xx, const std::vector<float>& ww) {
    const auto o = rmsnorm_fwd_ref(xx, ww, rows, cols, 1e-6);
    double s = 0;
    for (std::size_t i = 0; i < o.y.size(); ++i) s += dy[i] * o.y[i];
    return s;
  };
  const float h = 1e-2f;
  for (std::size_t i = 0; i < x.size(); i += 3) {
    auto xp = x, xm = x;
    xp[i] += h;
    xm[i] -= h;
    const double fd = (loss(xp, w) - loss(xm, w)) / (static_cast<double>(xp[i]) - xm[i]);
    EXPECT_NEAR(g.dx[i], fd, 2e-3 * (1 + std::fabs(fd))) << i;
  }
  for (std::size_t c = 0; c < w.size(); c += 2) {
    auto wp = w, wm = w;
    wp[c] += h;
    wm[c] -= h;
    const double fd = (loss(x, wp) - loss(x, wm)) / (static_cast<double>(wp[c]) - wm[c]);
    EXPECT_NEAR(g.dweight[c], fd, 1e-6 * (1 + std::fabs(fd))) << c;  // y is linear in w: exact up to rounding
  }
}

TEST(RmsNorm, CpuBackendMatchesReference) {
  std::mt19937 rng(testing_support::test_seed());
  for (auto [rows, cols] : {std::pair<std::int64_t, std::int64_t>{1, 33}, {17, 96}, {1000, 33}, {1000, 6144}, {17, 2049}}) {
    const auto x = random_vec(static_cast<std::size_t>(rows * cols), rng, 1.5f, 0.5f);
    const auto w = random_vec(static_cast<std::size_t>(cols), rng), dy = random_vec(x.size(), rng, 1.f, 0.5f);
    std::vector<float> y(x.size()), rstd(static_cast<std::size_t>(rows)), dx(x.size()), dw(static_cast<std::size_t>(cols));
    rmsnorm_fwd_cpu(x.data(), w.data(), rows, cols, 1e-6f, y.data(), rstd.data());
    rmsnorm_bwd_cpu(dy.data(), x.data(), w.data(), rstd.data(), rows, cols, dx.data(), dw.data());
    const auto ref = rmsnorm_fwd_ref(x, w, rows, cols, 1e-6);
    const auto refg = rmsnorm_bwd_ref(dy, x, w, rows, cols, 1e-6);
    const std::string at = std::to_string(rows) + "x" + std::to_string(cols) + " ";
    EXPECT_TRUE(matches(compare_values(at + "y", y, ref.y, rmsnorm_y_tolerance(DType::kFp32))));
    EXPECT_TRUE(matches(compare_values(at + "rstd", rstd, ref.rstd, rmsnorm_rstd_tolerance())));
    EXPECT_TRUE(matches(compare_values(at + "dx", dx, refg.dx, rmsnorm_dx_tolerance(DType::kFp32))));
    EXPECT_TRUE(matches(compare_values(at + "dweight", dw, refg.dweight, rmsnorm_dweight_tolerance(rows))));
  }
}

TEST(RmsNorm, DeclaredBytesAreTheCompulsoryTraffic) {
  // GenSLM-width forward in bf16: read x, write y, the weight once, fp32 rstd per row.
  EXPECT_DOUBLE_EQ(rmsnorm_fwd_cost(4096, 6144, DType::kBf16).bytes, 2.0 * 4096 * 6144 * 2 + 6144 * 2 + 4.0 * 4096);
  const auto b = rmsnorm_bwd_cost(4096, 6144, DType::kFp32);
  EXPECT_DOUBLE_EQ(b.bytes, 3.0 * 4096 * 6144 * 4 + 6144 * 4 + 4.0 * 4096 + 4.0 * 6144);
  EXPECT_EQ(b.workspace_bytes, 128 * 6144 * 4);
  EXPECT_EQ(rmsnorm_bwd_cost(4096, 6144, DType::kFp32, false).workspace_bytes, 0);
}

// The fp16 / bf16 tolerances hold for what the kernel does: inputs in the dtype, fp32
// math, one rounding of y and dx.
TEST(RmsNorm, HalfTolerancesCoverOneRoundingOfFp32Math) {
  std::mt19937 rng(testing_support::test_seed());
  const std::int64_t rows = 100, cols = 6144;
  for (DType t : {DType::kFp16, DType::kBf16}) {
    const auto x = rounded(random_vec(rows * cols, rng, 1.5f, 0.5f), t), w = rounded(random_vec(cols, rng), t);
    const auto dy = rounded(random_vec(rows * cols, rng, 1.f, 0.5f), t);
    std::vector<float> y(x.size()), rstd(static_cast<std::size_t>(rows)), dx(x.size());
    rmsnorm_fwd_cpu(x.data(), w.data(), rows, cols, 1e-6f, y.data(), rstd.data());
    rmsnorm_bwd_cpu(dy.data(), x.data(), w.data(), rstd.data(), rows, cols, dx.data(), nullptr);
    const std::string at(dtype_name(t));
    EXPECT_TRUE(matches(compare_values(at + " y", rounded(y, t), rmsnorm_fwd_ref(x, w, rows, cols, 1e-6).y,
                                       rmsnorm_y_tolerance(t))));
    EXPECT_TRUE(matches(compare_values(at + " dx", rounded(dx, t), rmsnorm_bwd_ref(dy, x, w, rows, cols, 1e-6).dx,
                                       rmsnorm_dx_tolerance(t))));
  }
}

}  // namespace
}  // namespace seqscale
