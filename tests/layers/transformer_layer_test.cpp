// The GPT layer and stack (layers/transformer_layer/*_def.h) on the CPU backends: the
// double reference's gradients against central differences of its own loss, the paths
// that must compute the same function (fused = materialized, every recompute mode, every
// chunking of the loss), and the fp32 executor against the reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "layers/transformer_layer/transformer_layer_cpu.h"
#include "layers/transformer_layer/transformer_layer_program.h"
#include "tests/support/seed.h"
#include "workloads/config_error.h"

namespace seqscale {
namespace {

// hidden 16, heads 2 (head size 8), seq 7, ffn 32: every dimension different, seq odd.
TransformerLayerDims tiny_layer() {
  TransformerLayerDims d;
  d.batch = 2;
  d.seq = 7;
  d.hidden = 16;
  d.heads = 2;
  d.kv_heads = 2;
  d.head_dim = 8;
  d.ffn = 32;
  d.rotary_dims = 4;  // rotary_pct 0.5
  return d;
}

std::string describe(const TransformerLayerDims& d) {
  return std::string(d.attn == AttentionImpl::kFused ? "fused" : "materialized") + "/" +
         std::string(recompute_name(d.recompute)) + "/" + (d.parallel_residual ? "parallel" : "sequential") + "/" +
         (d.mlp == MlpKind::kGelu ? "gelu" : "swiglu") + "/" + (d.norm == NormKind::kLayerNorm ? "layernorm" : "rmsnorm") +
         "/kv" + std::to_string(d.kv_heads) + "/rot" + std::to_string(d.rotary_dims);
}

// Central differences, step 1e-5 in double: truncation ~1e-10 and rounding ~1e-11 against
// gradients of O(1e-2..1), so 1e-6 (abs) + 1e-5 (rel) holds with a wide margin.
void expect_close(double analytic, double numeric, const std::string& what) {
  EXPECT_NEAR(analytic, numeric, 1e-6 + 1e-5 * std::fabs(numeric)) << what;
}

TEST(TransformerLayerRef, GradientsMatchCentralDifferences) {
  const std::uint64_t seed = testing_support::test_seed();
  std::mt19937_64 rng(seed);
  for (int c = 0; c < 8; ++c) {
    TransformerLayerDims d = tiny_layer();
    d.attn = c % 2 ? AttentionImpl::kFused : AttentionImpl::kMaterialized;
    d.recompute = static_cast<Recompute>(c % 3);
    d.parallel_residual = (c / 2) % 2;
    d.mlp = c >= 4 ? MlpKind::kSwiglu : MlpKind::kGelu;
    d.norm = c % 4 == 3 ? NormKind::kRmsNorm : NormKind::kLayerNorm;
    d.kv_heads = c == 5 ? 1 : 2;  // GQA
    d.rotary_dims = c == 6 ? 0 : 4;
    const MaskKind mask = c == 2 ? MaskKind::kBool : c == 4 ? MaskKind::kFp32 : MaskKind::kNone;
    SCOPED_TRACE(describe(d));
    TransformerLayerInputs in = make_transformer_layer_inputs(d, rng());
    const TransformerLayerRun run = run_transformer_layer_ref(d, mask, in);
    const double eps = 1e-5;
    auto numeric = [&](std::vector<double>& v, std::size_t i) {
      const double keep = v[i];
      v[i] = keep + eps;
      const double up = transformer_layer_ref_loss(d, mask, in);
      v[i] = keep - eps;
      const double down = transformer_layer_ref_loss(d, mask, in);
      v[i] = keep;
      return (up - down) / (2 * eps);
    };
    for (std::size_t i : {std::size_t{0}, std::size_t{37}, in.x.size() - 1}) expect_close(run.dx[i], numeric(in.x, i), "dx");
    for (std::size_t p = 0; p < in.params.size(); ++p) {
      const std::size_t n = in.params[p].size();
      for (std::size_t i : {std::size_t{0}, n / 2, n - 1}) {
        expect_close(run.param_grads[p][i], numeric(in.params[p], i), "param " + std::to_string(p) + "[" + std::to_string(i) + "]");
      }
    }
  }
}

TransformerStackDims tiny_stack() {
  TransformerStackDims d;
  d.layer = tiny_layer();
  d.layers = 2;
  d.vocab = 11;
  d.vocab_chunk = 4;  // chunks of 4, 4, 3
  return d;
}

double stack_loss(const TransformerStackDims& d, const TransformerStackInputs& in) {
  return run_transformer_stack_ref(d, in).loss;
}

TEST(TransformerStackRef, GradientsMatchCentralDifferences) {
  const std::uint64_t seed = testing_support::test_seed();
  std::mt19937_64 rng(seed);
  for (int c = 0; c < 3; ++c) {
    TransformerStackDims d = tiny_stack();
    d.learned_positions = c != 1;
    d.layer.rotary_dims = d.learned_positions ? 0 : 4;
    d.layer.attn = c == 2 ? AttentionImpl::kMaterialized : AttentionImpl::kFused;
    d.layer.recompute = c == 2 ? Recompute::kFull : Recompute::kNone;
    d.mask = c == 2 ? MaskKind::kBool : MaskKind::kNone;
    SCOPED_TRACE(c);
    TransformerStackInputs in = make_transformer_stack_inputs(d, rng());
    const TransformerStackRun run = run_transformer_stack_ref(d, in);
    EXPECT_GT(run.loss, 0.0);
    const double eps = 1e-5;
    for (std::size_t p = 0; p < in.params.size(); ++p) {
      const std::size_t n = in.params[p].size();
      for (std::size_t i : {std::size_t{0}, n / 3, n - 1}) {
        const double keep = in.params[p][i];
        in.params[p][i] = keep + eps;
        const double up = stack_loss(d, in);
        in.params[p][i] = keep - eps;
        const double down = stack_loss(d, in);
        in.params[p][i] = keep;
        expect_close(run.param_grads[p][i], (up - down) / (2 * eps), "param " + std::to_string(p) + "[" + std::to_string(i) + "]");
      }
    }
  }
}

// The same function whatever the path: only memory and time may differ.
TEST(TransformerStackRef, PathsComputeTheSameStep) {
  const std::uint64_t seed = testing_support::test_seed();
  TransformerStackDims base = tiny_stack();
  const TransformerStackInputs in = make_transformer_stack_inputs(base, seed);
  const TransformerStackRun want = run_transformer_stack_ref(base, in);
  for (int c = 0; c < 6; ++c) {
    TransformerStackDims d = base;
    d.layer.attn = c % 2 ? AttentionImpl::kMaterialized : AttentionImpl::kFused;
    d.layer.recompute = static_cast<Recompute>(c % 3);
    d.vocab_chunk = c < 3 ? 11 : 1 + c;  // unchunked, and chunks that do not divide the vocabulary
    d.mask = static_cast<MaskKind>(c % 3);
    SCOPED_TRACE(c);
    const TransformerStackRun got = run_transformer_stack_ref(d, in);
    EXPECT_NEAR(got.loss, want.loss, 1e-12);
    for (std::size_t p = 0; p < want.param_grads.size(); ++p)
      for (std::size_t i = 0; i < want.param_grads[p].size(); ++i) ASSERT_NEAR(got.param_grads[p][i], want.param_grads[p][i], 1e-12) << p;
  }
}

// The fp32 executor against the reference, at the bench's tolerance.
TEST(TransformerStackExec, MatchesReference) {
  const std::uint64_t seed = testing_support::test_seed();
  std::mt19937_64 rng(seed);
  for (int c = 0; c < 4; ++c) {
    TransformerStackDims d = tiny_stack();
    d.layer.seq = 29;
    d.layer.attn = c % 2 ? AttentionImpl::kMaterialized : AttentionImpl::kFused;
    d.layer.recompute = static_cast<Recompute>(c % 3);
    d.layer.parallel_residual = c >= 2;
    d.layer.mlp = c == 3 ? MlpKind::kSwiglu : MlpKind::kGelu;
    SCOPED_TRACE(c);
    const TransformerStackInputs in = make_transformer_stack_inputs(d, rng());
    const TransformerStackRun want = run_transformer_stack_ref(d, in);
    TransformerExecOps ops;
    TransformerStackStep<TransformerExecOps> step(ops, d);
    auto& params = step.stack.params();
    for (std::size_t i = 0; i < params.size(); ++i) std::copy(in.params[i].begin(), in.params[i].end(), params[i]->w.p);
    std::copy(in.tokens.begin(), in.tokens.end(), step.tokens.i32());
    std::copy(in.targets.begin(), in.targets.end(), step.targets.i32());
    step.stack.sync_master();
    step.run();
    const CheckTolerance tol = transformer_layer_tolerance(DType::kFp32);
    CheckResult r = compare_values("loss", std::vector<double>{step.loss.p[0]}, std::vector<double>{want.loss}, tol);
    for (std::size_t i = 0; i < params.size(); ++i) {
      r.merge(compare_values("grad" + std::to_string(i), std::vector<double>(params[i]->dw.p, params[i]->dw.p + params[i]->dw.n),
                             want.param_grads[i], tol));
    }
    EXPECT_TRUE(r.ok) << r.worst;
    // Adam moved every weight by about lr (its first step is lr * sign(g)).
    EXPECT_NE(params[0]->w.p[0], static_cast<float>(in.params[0][0]));
  }
}

// Plans the layer cannot shard: one line naming the field (the bench turns it into a
// failed point, the CLI into a non-zero exit). Heads not divisible by tp and a sequence
// not divisible by Megatron-SP's degree: tests/layers/hf_config_test.cpp.
TEST(TransformerLayerDims, BadShardingNamesTheField) {
  auto error_of = [](auto&& f) -> std::string {
    try {
      f();
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  };
  TransformerSpec t;
  t.layers = 1;
  t.hidden = 24;
  t.heads = 6;
  t.kv_heads = 6;
  t.ffn_hidden = 48;
  t.vocab = 50;
  Plan ulysses;
  ulysses.sp = SeqParallel::kUlysses;
  ulysses.sp_degree = 2;
  const std::string seq = error_of([&] { TransformerLayerDims::from(t, ulysses, 31, 1); });
  EXPECT_EQ(seq.rfind("seq: 31 is not divisible by the sequence-parallel degree 2", 0), 0u) << seq;
  ulysses.sp_degree = 4;  // 6 heads over 4 Ulysses ranks
  EXPECT_EQ(error_of([&] { TransformerLayerDims::from(t, ulysses, 32, 1); }).rfind("kv_heads:", 0), 0u);
  Plan tp4;
  tp4.tp = 4;
  const std::string heads = error_of([&] { TransformerLayerDims::from(t, tp4, 32, 1); });
  EXPECT_EQ(heads, "heads: 6 is not divisible by tp=4");
  // The vocab-parallel table: V rows over tp ranks.
  Plan tp3;
  tp3.tp = 3;
  TransformerStackDims d;
  d.layer = TransformerLayerDims::from(t, tp3, 30, 1);
  d.vocab = t.vocab;
  const std::string vocab = error_of([&] { build_transformer_stack_program(d, DType::kBf16); });
  EXPECT_EQ(vocab.rfind("vocab: 50 is not divisible by tp=3", 0), 0u) << vocab;
  EXPECT_EQ(vocab.find('\n'), std::string::npos);
  d.vocab = 51;
  EXPECT_EQ(error_of([&] { build_transformer_stack_program(d, DType::kBf16); }), "");
}

}  // namespace
}  // namespace seqscale
