// host_strategy_math() is the free functions of strategy.h behind the StrategyMath
// interface (what every strategy's run() gets over MPI): bitwise the same results, every
// op, with and without accumulation, strided attention included.
#include <gtest/gtest.h>

#include "comm/strategies/strategy_math.h"
#include "tests/comm/strategy_math_cases.h"

namespace seqscale::comm {
namespace {

using namespace testing_cases;

TEST(HostStrategyMath, GemmsAreTheFreeFunctions) {
  StrategyMath& host = host_strategy_math();
  std::uint64_t seed = 1;
  for (Gemm g : {Gemm::kNN, Gemm::kTN, Gemm::kNT})
    for (const GemmCase& s : kGemmCases)
      for (bool acc : {false, true}) {
        const GemmOperands o = gemm_operands(g, s, seed += 3);
        std::vector<float> want = o.c;
        if (g == Gemm::kNN) matmul(o.a.data(), o.b.data(), want.data(), s.x, s.y, s.z, acc);
        if (g == Gemm::kTN) matmul_tn(o.a.data(), o.b.data(), want.data(), s.x, s.y, s.z, acc);
        if (g == Gemm::kNT) matmul_nt(o.a.data(), o.b.data(), want.data(), s.x, s.y, s.z, acc);
        EXPECT_EQ(run_gemm(host, g, s, o, acc), want) << gemm_name(g) << " " << s.x << "," << s.y << "," << s.z;
      }
}

TEST(HostStrategyMath, AttentionIsTheFreeFunctions) {
  std::uint64_t seed = 100;
  for (const AttnCase& s : kAttnCases) {
    AttnOperands want = attn_operands(s, seed += 10);
    const AttnOperands got = run_attention(host_strategy_math(), s, want);
    attention_fwd(want.q.data(), want.k.data(), want.v.data(), want.o.data(), s.lq, s.lk, s.d, s.ld);
    attention_bwd(want.q.data(), want.k.data(), want.v.data(), want.dout.data(), want.dq.data(), want.dk.data(),
                  want.dv.data(), s.lq, s.lk, s.d, s.ld);
    EXPECT_EQ(got.o, want.o);
    EXPECT_EQ(got.dq, want.dq);
    EXPECT_EQ(got.dk, want.dk);
    EXPECT_EQ(got.dv, want.dv);
  }
}

TEST(HostStrategyMath, AdamIsTheFreeFunction) {
  const std::int64_t n = 37;
  auto p = random_vector(n, 7), m = std::vector<float>(n, 0.f), v = m;
  for (int step = 1; step <= 2; ++step) {
    const auto g = random_vector(n, 7 + step);
    adam_step(p.data(), g.data(), m.data(), v.data(), n, step);
  }
  p.insert(p.end(), m.begin(), m.end());
  p.insert(p.end(), v.begin(), v.end());
  EXPECT_EQ(run_adam(host_strategy_math(), n, 7), p);
}

}  // namespace
}  // namespace seqscale::comm
