// cross_entropy: the double reference against a long-double formula (ignored and last-column
// targets), its backward against finite differences of the forward, the chunked fp32 CPU
// backend against the unchunked reference at awkward shapes (vocab 50 in chunks of 7 and of
// 50; GPT-NeoX's 50277 in chunks of 1024 with a 101-column tail, and in one chunk; tokens
// 1, 17, 1000), NaN for out-of-range targets, the plain cross-entropy over given logits,
// and the declared cost and workspace (what chunking saves).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

#include "kernels/cross_entropy/cross_entropy_cost.h"
#include "kernels/cross_entropy/cross_entropy_cpu.h"
#include "kernels/cross_entropy/cross_entropy_ref.h"
#include "tests/support/matches.h"
#include "tests/support/seed.h"

namespace seqscale {
namespace {

using testing_support::matches;

CrossEntropyShape shape(std::int64_t tokens, std::int64_t hidden, std::int64_t vocab, std::int64_t chunk) {
  CrossEntropyShape s;
  s.tokens = tokens;
  s.hidden = hidden;
  s.vocab = vocab;
  s.vocab_chunk = chunk;
  return s;
}

// Unit-scale inputs, as the tolerances assume (cross_entropy_bench.h makes the same).
struct Head {
  std::vector<float> hidden, weight, dloss;
  std::vector<std::int32_t> targets;
};

Head random_head(const CrossEntropyShape& s, std::mt19937& rng) {
  Head h;
  std::uniform_real_distribution<float> u(-1.f, 1.f), g(0.5f, 1.5f);
  const float a = std::sqrt(3.f / static_cast<float>(s.hidden));
  h.hidden.resize(static_cast<std::size_t>(s.tokens * s.hidden));
  h.weight.resize(static_cast<std::size_t>(s.vocab * s.hidden));
  for (auto& x : h.hidden) x = u(rng);
  for (auto& x : h.weight) x = a * u(rng);
  std::uniform_int_distribution<std::int32_t> t(0, static_cast<std::int32_t>(s.vocab - 1));
  for (std::int64_t i = 0; i < s.tokens; ++i) h.targets.push_back(t(rng));
  // The edges: the first and last vocab entry (the tail chunk's last column), an ignored token.
  h.targets[0] = static_cast<std::int32_t>(s.vocab - 1);
  if (s.tokens > 1) h.targets[1] = 0;
  if (s.tokens > 2) h.targets[2] = -100;
  for (std::int64_t i = 0; i < s.tokens; ++i) h.dloss.push_back(g(rng));
  return h;
}

TEST(CrossEntropy, ReferenceMatchesLongDoubleFormula) {
  std::mt19937 rng(testing_support::test_seed());
  const CrossEntropyShape s = shape(4, 5, 11, 11);
  const Head h = random_head(s, rng);
  const auto ref = cross_entropy_fwd_ref(h.hidden, h.weight, h.targets, s);
  for (std::int64_t t = 0; t < s.tokens; ++t) {
    std::vector<long double> logits(static_cast<std::size_t>(s.vocab));
    long double sum = 0;
    for (std::int64_t v = 0; v < s.vocab; ++v) {
      for (std::int64_t k = 0; k < s.hidden; ++k) {
        logits[v] += static_cast<long double>(h.hidden[t * s.hidden + k]) * h.weight[v * s.hidden + k];
      }
      sum += std::exp(logits[v]);
    }
    const long double lse = std::log(sum);
    EXPECT_NEAR(ref.lse[t], static_cast<double>(lse), 1e-12);
    const std::int32_t tgt = h.targets[t];
    EXPECT_NEAR(ref.loss[t], tgt < 0 ? 0.0 : static_cast<double>(lse - logits[tgt]), 1e-12) << t;
  }
}

TEST(CrossEntropy, BackwardReferenceMatchesFiniteDifferences) {
  std::mt19937 rng(testing_support::test_seed());
  const CrossEntropyShape s = shape(4, 6, 9, 9);
  Head h = random_head(s, rng);
  for (auto& x : h.weight) x *= 4;  // logits of a few units: a softmax far from uniform
  const auto g = cross_entropy_bwd_ref(h.hidden, h.weight, h.targets, h.dloss, s);
  const auto loss = [&](const std::vector<float>& x, const std::vector<float>& w) {
    const auto r = cross_entropy_fwd_ref(x, w, h.targets, s);
    double sum = 0;
    for (std::int64_t t = 0; t < s.tokens; ++t) sum += h.dloss[t] * r.loss[t];
    return sum;
  };
  const float step = 1e-2f;
  for (std::size_t i = 0; i < h.hidden.size(); ++i) {
    auto xp = h.hidden, xm = h.hidden;
    xp[i] += step;
    xm[i] -= step;
    const double fd = (loss(xp, h.weight) - loss(xm, h.weight)) / (static_cast<double>(xp[i]) - xm[i]);
    EXPECT_NEAR(g.dhidden[i], fd, 1e-3 * (1 + std::fabs(fd))) << "dhidden " << i;
  }
  for (std::size_t i = 0; i < h.weight.size(); i += 2) {
    auto wp = h.weight, wm = h.weight;
    wp[i] += step;
    wm[i] -= step;
    const double fd = (loss(h.hidden, wp) - loss(h.hidden, wm)) / (static_cast<double>(wp[i]) - wm[i]);
    EXPECT_NEAR(g.dweight[i], fd, 1e-3 * (1 + std::fabs(fd))) << "dweight " << i;
  }
  for (std::int64_t k = 0; k < s.hidden; ++k) EXPECT_EQ(g.dhidden[2 * s.hidden + k], 0.0) << "ignored token";
}

TEST(CrossEntropy, ChunkedCpuBackendMatchesReference) {
  std::mt19937 rng(testing_support::test_seed());
  for (const CrossEntropyShape& s : {shape(1, 33, 50, 1024), shape(1000, 33, 50, 7), shape(17, 33, 50, 50),
                                     shape(17, 96, 50277, 1024), shape(5, 96, 50277, 60000)}) {
    const Head h = random_head(s, rng);
    std::vector<float> loss(static_cast<std::size_t>(s.tokens)), lse(loss.size());
    std::vector<float> dhidden(h.hidden.size()), dweight(h.weight.size());
    std::vector<unsigned char> fwd_ws(static_cast<std::size_t>(cross_entropy_fwd_cost(s, DType::kFp32).workspace_bytes));
    std::vector<unsigned char> bwd_ws(static_cast<std::size_t>(cross_entropy_bwd_cost(s, DType::kFp32).workspace_bytes));
    cross_entropy_fwd_cpu(h.hidden.data(), h.weight.data(), h.targets.data(), s, loss.data(), lse.data(), fwd_ws.data());
    cross_entropy_bwd_cpu(h.hidden.data(), h.weight.data(), h.targets.data(), lse.data(), h.dloss.data(), s,
                          dhidden.data(), dweight.data(), bwd_ws.data());
    const auto ref = cross_entropy_fwd_ref(h.hidden, h.weight, h.targets, s);
    const auto refg = cross_entropy_bwd_ref(h.hidden, h.weight, h.targets, h.dloss, s);
    const std::string at = "T" + std::to_string(s.tokens) + " h" + std::to_string(s.hidden) + " V" +
                           std::to_string(s.vocab) + "/" + std::to_string(s.vocab_chunk) + " ";
    const auto loss_tol = cross_entropy_loss_tolerance(s.hidden, s.vocab);
    const auto grad_tol = cross_entropy_grad_tolerance(DType::kFp32, s.hidden, s.vocab);
    EXPECT_TRUE(matches(compare_values(at + "loss", loss, ref.loss, loss_tol)));
    EXPECT_TRUE(matches(compare_values(at + "lse", lse, ref.lse, loss_tol)));
    EXPECT_TRUE(matches(compare_values(at + "dhidden", dhidden, refg.dhidden, grad_tol)));
    EXPECT_TRUE(matches(compare_values(at + "dweight", dweight, refg.dweight, grad_tol)));
  }
}

TEST(CrossEntropy, OutOfRangeTargetIsNaNAndIgnoredIsZero) {
  std::mt19937 rng(testing_support::test_seed());
  const CrossEntropyShape s = shape(3, 8, 50, 16);
  Head h = random_head(s, rng);
  h.targets = {50, -100, 7};
  std::vector<float> loss(3), lse(3), dhidden(h.hidden.size()), dweight(h.weight.size());
  std::vector<unsigned char> ws(static_cast<std::size_t>(cross_entropy_fwd_cost(s, DType::kFp32).workspace_bytes));
  cross_entropy_fwd_cpu(h.hidden.data(), h.weight.data(), h.targets.data(), s, loss.data(), lse.data(), ws.data());
  EXPECT_TRUE(std::isnan(loss[0])) << "target == vocab must be loud";
  EXPECT_EQ(loss[1], 0.f);
  EXPECT_TRUE(std::isfinite(loss[2]) && loss[2] > 0);
  const auto ref = cross_entropy_fwd_ref(h.hidden, h.weight, h.targets, s);
  EXPECT_TRUE(std::isnan(ref.loss[0]));
  EXPECT_EQ(ref.loss[1], 0.0);
  cross_entropy_bwd_cpu(h.hidden.data(), h.weight.data(), h.targets.data(), lse.data(), h.dloss.data(), s,
                        dhidden.data(), dweight.data(), ws.data());
  EXPECT_TRUE(std::isnan(dhidden[0]));
  for (std::int64_t k = 0; k < s.hidden; ++k) EXPECT_EQ(dhidden[s.hidden + k], 0.f);
}

TEST(CrossEntropy, LogitsCpuBackendMatchesReference) {
  std::mt19937 rng(testing_support::test_seed());
  std::uniform_real_distribution<float> u(-4.f, 4.f), g(0.5f, 1.5f);
  for (auto [tokens, vocab] : {std::pair<std::int64_t, std::int64_t>{1, 50}, {17, 50277}, {1000, 50}}) {
    std::vector<float> logits(static_cast<std::size_t>(tokens * vocab)), dloss(static_cast<std::size_t>(tokens));
    for (auto& x : logits) x = u(rng);
    for (auto& x : dloss) x = g(rng);
    std::vector<std::int32_t> targets(static_cast<std::size_t>(tokens));
    std::uniform_int_distribution<std::int32_t> t(0, static_cast<std::int32_t>(vocab - 1));
    for (auto& x : targets) x = t(rng);
    targets[0] = static_cast<std::int32_t>(vocab - 1);
    std::vector<float> loss(targets.size()), lse(targets.size()), dlogits(logits.size());
    cross_entropy_logits_fwd_cpu(logits.data(), vocab, targets.data(), tokens, vocab, loss.data(), lse.data());
    cross_entropy_logits_bwd_cpu(logits.data(), vocab, targets.data(), lse.data(), dloss.data(), tokens, vocab, dlogits.data());
    const std::vector<double> ld(logits.begin(), logits.end());
    const auto ref = cross_entropy_logits_fwd_ref(ld, targets, tokens, vocab);
    const std::string at = std::to_string(tokens) + "x" + std::to_string(vocab) + " ";
    EXPECT_TRUE(matches(compare_values(at + "loss", loss, ref.loss, cross_entropy_loss_tolerance(0, vocab))));
    EXPECT_TRUE(matches(compare_values(at + "dlogits", dlogits, cross_entropy_logits_bwd_ref(ld, targets, dloss, tokens, vocab),
                                       CheckTolerance{1e-9, 1e-6 + cross_entropy_lse_error(0, vocab), 0})));
  }
}

TEST(CrossEntropy, DeclaredCostAndWhatChunkingSaves) {
  // GenSLM's head at 32768 tokens: h 6144, GPT-NeoX vocab 50304, chunks of 1024, bf16.
  const CrossEntropyShape s = shape(32768, 6144, 50304, 1024);
  EXPECT_EQ(s.chunks(), 50);  // 49 full chunks and a tail of 128
  const auto f = cross_entropy_fwd_cost(s, DType::kBf16);
  EXPECT_DOUBLE_EQ(f.flops, 2.0 * 32768 * 50304 * 6144 + 5.0 * 32768 * 50304);
  EXPECT_DOUBLE_EQ(f.bytes, (32768.0 * 6144 + 50304.0 * 6144) * 2 + 12.0 * 32768);
  EXPECT_EQ(f.workspace_bytes, 32768LL * 1024 * 4 + 2 * 32768 * 4);  // one fp32 chunk + running max and sum
  const auto b = cross_entropy_bwd_cost(s, DType::kBf16);
  EXPECT_DOUBLE_EQ(b.flops, 6.0 * 32768 * 50304 * 6144 + 5.0 * 32768 * 50304);
  EXPECT_DOUBLE_EQ(b.bytes, (32768.0 * 6144 + 50304.0 * 6144) * 2 + 12.0 * 32768 + 32768.0 * 6144 * 2 + 4.0 * 50304 * 6144);
  EXPECT_EQ(b.workspace_bytes, 32768LL * 1024 * 4 + 32768LL * 1024 * 2 + 32768LL * 6144 * 4);
  // The whole sequence's fp32 logits would be 6.6 GB: the forward keeps 1/49 of it, the backward 1/6.5.
  const double materialised = 32768.0 * 50304 * 4;
  EXPECT_LT(static_cast<double>(f.workspace_bytes), materialised / 45);
  EXPECT_LT(static_cast<double>(b.workspace_bytes), materialised / 6);
  // fp32 I/O: d logits overwrite the logits chunk and d hidden accumulates in place.
  EXPECT_EQ(cross_entropy_bwd_cost(s, DType::kFp32).workspace_bytes, 32768LL * 1024 * 4);
  // The codon head (69 entries) is one chunk.
  EXPECT_EQ(shape(4096, 6144, 69, 1024).chunks(), 1);
}

}  // namespace
}  // namespace seqscale
