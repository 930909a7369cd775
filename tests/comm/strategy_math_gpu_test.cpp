// The CUDA StrategyMath (cuBLAS fp32 GEMMs, softmax kernels, Adam kernel) against the host
// math on fresh random inputs (the seed is printed on failure), every op, accumulating
// and not, the awkward shapes of strategy_math_cases.h. Skipped without a GPU.
// Tolerances: both sides hold fp32; the host accumulates in double, the GPU in fp32, whose
// rounding error grows with sum_p |a_ip b_pj| (the terms, not their possibly cancelling
// sum): 1e-5 of that is >= 80 fp32 ulps for k <= 65, well above the ~sqrt(k) ulps of
// rounding, and far below the O(1) error of any indexing or transpose mistake.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>

#include "comm/strategies/cuda/strategy_math_cuda.h"
#include "tests/comm/strategy_math_cases.h"
#include "tests/support/gpu.h"

namespace seqscale::comm {
namespace {

using namespace testing_cases;

std::uint64_t fresh_seed() { return std::random_device{}(); }

// max |got - want| / (1 + |scale|), scale per element.
double worst(const std::vector<float>& got, const std::vector<float>& want, const std::vector<float>& scale) {
  EXPECT_EQ(got.size(), want.size());
  double w = 0;
  for (std::size_t i = 0; i < want.size() && i < got.size(); ++i)
    w = std::max(w, std::abs(static_cast<double>(got[i]) - want[i]) / (1.0 + std::abs(scale[i])));
  return w;
}
std::vector<float> abs_of(std::vector<float> x) {
  for (auto& e : x) e = std::abs(e);
  return x;
}

TEST(CudaStrategyMath, GemmsMatchHost) {
  SEQSCALE_REQUIRE_GPU();
  auto cuda = make_cuda_strategy_math();
  StrategyMath& host = host_strategy_math();
  std::uint64_t seed = fresh_seed();
  SCOPED_TRACE("first seed " + std::to_string(seed));
  for (Gemm g : {Gemm::kNN, Gemm::kTN, Gemm::kNT})
    for (const GemmCase& s : kGemmCases)
      for (bool acc : {false, true}) {
        const GemmOperands o = gemm_operands(g, s, seed += 3);
        const GemmOperands mag{abs_of(o.a), abs_of(o.b), abs_of(o.c)};
        EXPECT_LE(worst(run_gemm(*cuda, g, s, o, acc), run_gemm(host, g, s, o, acc), run_gemm(host, g, s, mag, acc)),
                  1e-5)
            << gemm_name(g) << " " << s.x << "," << s.y << "," << s.z << (acc ? " accumulate" : "");
      }
}

// Softmax rows sum to 1, so O and the gradients are O(|v|, |dout|) = O(1) here: relative
// to 1 + |reference|, 1e-5 is ~100 fp32 ulps (exp, the 1/sqrt(D) scale and sums <= 65 long).
TEST(CudaStrategyMath, AttentionMatchesHostAndKeepsOtherColumns) {
  SEQSCALE_REQUIRE_GPU();
  auto cuda = make_cuda_strategy_math();
  std::uint64_t seed = fresh_seed();
  SCOPED_TRACE("first seed " + std::to_string(seed));
  for (const AttnCase& s : kAttnCases) {
    const AttnOperands in = attn_operands(s, seed += 10);
    const AttnOperands got = run_attention(*cuda, s, in), want = run_attention(host_strategy_math(), s, in);
    const std::string what = std::to_string(s.lq) + "x" + std::to_string(s.lk) + " d " + std::to_string(s.d) +
                             " ld " + std::to_string(s.ld);
    EXPECT_LE(worst(got.o, want.o, want.o), 1e-5) << "o " << what;
    EXPECT_LE(worst(got.dq, want.dq, want.dq), 1e-5) << "dq " << what;
    EXPECT_LE(worst(got.dk, want.dk, want.dk), 1e-5) << "dk " << what;
    EXPECT_LE(worst(got.dv, want.dv, want.dv), 1e-5) << "dv " << what;
    // Columns >= d and rows past lq / lk were never the op's: bit-for-bit the inputs.
    for (std::size_t i = 0; i < in.o.size(); ++i) {
      const int row = static_cast<int>(i) / s.ld, col = static_cast<int>(i) % s.ld;
      if (col >= s.d || row >= s.lq) {
        ASSERT_EQ(got.o[i], in.o[i]) << "o[" << i << "] " << what;
        ASSERT_EQ(got.dq[i], in.dq[i]) << "dq[" << i << "] " << what;
      }
      if (col >= s.d || row >= s.lk) {
        ASSERT_EQ(got.dk[i], in.dk[i]) << "dk[" << i << "] " << what;
        ASSERT_EQ(got.dv[i], in.dv[i]) << "dv[" << i << "] " << what;
      }
    }
  }
}

// Adam: m and v are the same fp32 expressions on both sides (FMA contraction aside), the
// update lr * m^/(sqrt(v^) + eps) is <= ~lr; 1e-6 relative leaves ~10 ulps.
TEST(CudaStrategyMath, AdamMatchesHost) {
  SEQSCALE_REQUIRE_GPU();
  auto cuda = make_cuda_strategy_math();
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  for (std::int64_t n : {1, 37, 100003}) {
    const auto want = run_adam(host_strategy_math(), n, seed);
    EXPECT_LE(worst(run_adam(*cuda, n, seed), want, want), 1e-6) << "n " << n;
  }
}

// Scratch is grow-only: a large call, then a small one, then the large again.
TEST(CudaStrategyMath, ScratchReuseAcrossSizes) {
  SEQSCALE_REQUIRE_GPU();
  auto cuda = make_cuda_strategy_math();
  for (const GemmCase& s : {GemmCase{33, 65, 17}, GemmCase{1, 7, 13}, GemmCase{33, 65, 17}}) {
    const GemmOperands o = gemm_operands(Gemm::kNN, s, 5);
    const GemmOperands mag{abs_of(o.a), abs_of(o.b), abs_of(o.c)};
    EXPECT_LE(worst(run_gemm(*cuda, Gemm::kNN, s, o, true), run_gemm(host_strategy_math(), Gemm::kNN, s, o, true),
                    run_gemm(host_strategy_math(), Gemm::kNN, s, mag, true)),
              1e-5);
  }
}

}  // namespace
}  // namespace seqscale::comm
