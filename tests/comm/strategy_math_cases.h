// Shapes and one call per StrategyMath op, shared by strategy_math_test.cpp (host math ==
// the free functions) and strategy_math_gpu_test.cpp (CUDA math vs host math). Awkward
// sizes on purpose: 1-row and 1-deep GEMMs, odd sizes that fill no tile, attention with
// lq != lk and rows `ld` > d apart (Ulysses' interleaved heads, LSS's [k | v] rows).
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "comm/strategies/strategy.h"

namespace seqscale::comm::testing_cases {

enum class Gemm { kNN, kTN, kNT };
inline const char* gemm_name(Gemm g) { return g == Gemm::kNN ? "matmul" : g == Gemm::kTN ? "matmul_tn" : "matmul_nt"; }

// The three size arguments in the op's own order: matmul (m, k, n), matmul_tn (m, k, n),
// matmul_nt (m, n, k).
struct GemmCase {
  int x, y, z;
};
inline const std::vector<GemmCase> kGemmCases = {{1, 7, 13}, {33, 65, 17}, {6, 8, 16}, {16, 1, 5}, {13, 7, 1}};

struct GemmOperands {
  std::vector<float> a, b, c;  // c: the initial C (used when accumulating)
};
inline GemmOperands gemm_operands(Gemm g, GemmCase s, std::uint64_t seed) {
  const std::int64_t x = s.x, y = s.y, z = s.z;
  const std::int64_t nb = g == Gemm::kNN ? y * z : g == Gemm::kTN ? x * z : z * y;
  const std::int64_t nc = g == Gemm::kTN ? y * z : x * z;
  return {random_vector(x * y, seed), random_vector(nb, seed + 1), random_vector(nc, seed + 2)};
}
// C after the op on `math` (C starts from o.c).
inline std::vector<float> run_gemm(StrategyMath& math, Gemm g, GemmCase s, const GemmOperands& o, bool acc) {
  std::vector<float> c = o.c;
  if (g == Gemm::kNN) math.matmul(o.a.data(), o.b.data(), c.data(), s.x, s.y, s.z, acc);
  if (g == Gemm::kTN) math.matmul_tn(o.a.data(), o.b.data(), c.data(), s.x, s.y, s.z, acc);
  if (g == Gemm::kNT) math.matmul_nt(o.a.data(), o.b.data(), c.data(), s.x, s.y, s.z, acc);
  return c;
}

struct AttnCase {
  int lq, lk, d, ld;
};
inline const std::vector<AttnCase> kAttnCases = {
    {16, 16, 4, 32},   // Ulysses: one of 8 heads of 4 in a 32-wide row
    {4, 16, 8, 16},    // LSS: a 4-token segment against 16 keys, [k | v] rows
    {1, 7, 3, 3},      // one query
    {33, 65, 17, 20},  // odd everything, ld > d
    {5, 1, 2, 7}};     // one key: P == 1
// Operand rows are `ld` apart; every buffer holds max(lq, lk) rows so one size fits all.
struct AttnOperands {
  std::vector<float> q, k, v, dout, o, dq, dk, dv;
};
inline AttnOperands attn_operands(AttnCase s, std::uint64_t seed) {
  const std::int64_t n = std::int64_t{s.lq > s.lk ? s.lq : s.lk} * s.ld;
  return {random_vector(n, seed),     random_vector(n, seed + 1), random_vector(n, seed + 2),
          random_vector(n, seed + 3), random_vector(n, seed + 4), random_vector(n, seed + 5),
          random_vector(n, seed + 6), random_vector(n, seed + 7)};
}
// attention_fwd then attention_bwd on `math`; returns the operands with o written and
// dq, dk, dv accumulated. Columns >= d start random: they must come back unchanged.
inline AttnOperands run_attention(StrategyMath& math, AttnCase s, AttnOperands t) {
  math.attention_fwd(t.q.data(), t.k.data(), t.v.data(), t.o.data(), s.lq, s.lk, s.d, s.ld);
  math.attention_bwd(t.q.data(), t.k.data(), t.v.data(), t.dout.data(), t.dq.data(), t.dk.data(), t.dv.data(), s.lq,
                     s.lk, s.d, s.ld);
  return t;
}

// Two Adam steps on n elements; returns param | m | v.
inline std::vector<float> run_adam(StrategyMath& math, std::int64_t n, std::uint64_t seed) {
  auto p = random_vector(n, seed), m = std::vector<float>(static_cast<std::size_t>(n), 0.f), v = m;
  for (int step = 1; step <= 2; ++step) {
    const auto g = random_vector(n, seed + step);
    math.adam_step(p.data(), g.data(), m.data(), v.data(), n, step);
  }
  p.insert(p.end(), m.begin(), m.end());
  p.insert(p.end(), v.begin(), v.end());
  return p;
}

// Forwards to another StrategyMath and counts the calls: a strategy whose run() does its
// dense math by itself (bypassing the math it is given) shows up with a count of 0.
class CountingMath final : public StrategyMath {
 public:
  explicit CountingMath(StrategyMath& inner) : inner_(inner) {}
  int calls = 0;
  void matmul(const float* a, const float* b, float* c, int m, int k, int n, bool acc) override {
    ++calls;
    inner_.matmul(a, b, c, m, k, n, acc);
  }
  void matmul_tn(const float* a, const float* b, float* c, int m, int k, int n, bool acc) override {
    ++calls;
    inner_.matmul_tn(a, b, c, m, k, n, acc);
  }
  void matmul_nt(const float* a, const float* b, float* c, int m, int n, int k, bool acc) override {
    ++calls;
    inner_.matmul_nt(a, b, c, m, n, k, acc);
  }
  void attention_fwd(const float* q, const float* k, const float* v, float* o, int lq, int lk, int d,
                     int ld) override {
    ++calls;
    inner_.attention_fwd(q, k, v, o, lq, lk, d, ld);
  }
  void attention_bwd(const float* q, const float* k, const float* v, const float* dout, float* dq, float* dk,
                     float* dv, int lq, int lk, int d, int ld) override {
    ++calls;
    inner_.attention_bwd(q, k, v, dout, dq, dk, dv, lq, lk, d, ld);
  }
  void adam_step(float* param, const float* grad, float* m, float* v, std::int64_t n, int step,
                 const AdamConfig& c) override {
    ++calls;
    inner_.adam_step(param, grad, m, v, n, step, c);
  }

 private:
  StrategyMath& inner_;
};

}  // namespace seqscale::comm::testing_cases
