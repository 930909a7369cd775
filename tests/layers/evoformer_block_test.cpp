// The Evoformer block's CPU reference backend: gradients equal central differences of the
// scalar <dm_out, m_out> + <dz_out, z_out>, its attention equals the Evoformer attention
// reference, and backward releases everything forward kept.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernels/evoformer_attn/evoformer_attn_ref.h"
#include "layers/evoformer_block/evoformer_block_ref.h"
#include "tests/support/seed.h"

namespace seqscale {
namespace {

// Awkward, distinct sizes so that a transposed index or a swapped dimension shows.
EvoformerBlockDims tiny_dims() {
  EvoformerBlockDims d;
  d.n_seq = 3;
  d.n_res = 5;
  d.c_m = 6;
  d.c_z = 4;
  d.msa_heads = 2;
  d.msa_head_dim = 3;
  d.tri_heads = 2;
  d.tri_head_dim = 2;
  d.c_opm = 3;
  d.c_tri_mul = 4;
  d.transition = 2;
  return d;
}

void expect_gradient(const EvoformerBlockDims& d, EvoformerBlockInputs& in, std::vector<double>& slot,
                     const std::vector<double>& analytic, std::size_t i, const std::string& what) {
  // `slot` lives in `in`: perturb it in place and restore it.
  const double keep = slot[i];
  auto central = [&](double h) {
    slot[i] = keep + h;
    const double up = evoformer_block_ref_loss(d, in);
    slot[i] = keep - h;
    const double down = evoformer_block_ref_loss(d, in);
    slot[i] = keep;
    return (up - down) / (2 * h);
  };
  auto close = [&](double numeric) { return std::fabs(analytic[i] - numeric) <= 1e-6 * std::max(1.0, std::fabs(numeric)); };
  double numeric = central(1e-5);
  // The transitions' ReLU has a kink: a pre-activation within 1e-5 of zero bends the
  // difference (random inputs hit one now and then). A 100x smaller step does not.
  if (!close(numeric)) numeric = central(1e-7);
  EXPECT_TRUE(close(numeric)) << what << "[" << i << "]: analytic " << analytic[i] << ", numeric " << numeric;
}

TEST(EvoformerBlockRef, GradientsMatchCentralDifferences) {
  const EvoformerBlockDims d = tiny_dims();
  std::mt19937 seeds(testing_support::test_seed());  // the inputs' seed, then the picks
  EvoformerBlockInputs in = make_evoformer_block_inputs(d, seeds());
  const EvoformerBlockRefRun run = run_evoformer_block_ref(d, in);
  std::mt19937 pick(seeds());
  auto some = [&](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(pick); };
  for (int t = 0; t < 12; ++t) {
    expect_gradient(d, in, in.m0, run.dm0, some(in.m0.size()), "dm0");
    expect_gradient(d, in, in.z0, run.dz0, some(in.z0.size()), "dz0");
  }
  // Every parameter tensor, at one random element each: a module whose weight gradient is
  // missing or transposed fails here.
  ASSERT_EQ(in.params.size(), run.param_grads.size());
  for (std::size_t p = 0; p < in.params.size(); ++p) {
    expect_gradient(d, in, in.params[p], run.param_grads[p], some(in.params[p].size()), "param " + std::to_string(p));
  }
}

TEST(EvoformerBlockRef, ExtraMsaBlockGradientsMatchCentralDifferences) {
  // The extra-MSA stack's block: global column attention instead of column attention.
  EvoformerBlockDims d = tiny_dims();
  d.global_column = true;
  d.n_seq = 6;
  std::mt19937 seeds(testing_support::test_seed());  // the inputs' seed, then the picks
  EvoformerBlockInputs in = make_evoformer_block_inputs(d, seeds());
  const EvoformerBlockRefRun run = run_evoformer_block_ref(d, in);
  std::mt19937 pick(seeds());
  auto some = [&](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(pick); };
  for (int t = 0; t < 12; ++t) expect_gradient(d, in, in.m0, run.dm0, some(in.m0.size()), "dm0");
  for (std::size_t p = 0; p < in.params.size(); ++p) {
    expect_gradient(d, in, in.params[p], run.param_grads[p], some(in.params[p].size()), "param " + std::to_string(p));
  }
  // The global column attention's key projection (parameter 15: after the row attention's
  // 12 and the column attention's LayerNorm pair and query) is one head wide.
  const EvoformerBlockInputs main = make_evoformer_block_inputs(tiny_dims(), 3);
  EXPECT_EQ(in.params[15].size(), static_cast<std::size_t>(d.c_m * d.msa_head_dim));
  EXPECT_EQ(main.params[15].size(), static_cast<std::size_t>(d.c_m * d.msa_heads * d.msa_head_dim));
}

TEST(EvoformerBlockRef, EveryModuleChangesTheOutput) {
  // Zeroing any one parameter tensor's gradient path would go unnoticed if the module never
  // reached the output; each parameter must move the loss.
  const EvoformerBlockDims d = tiny_dims();
  const EvoformerBlockInputs in = make_evoformer_block_inputs(d, 7);
  const EvoformerBlockRefRun run = run_evoformer_block_ref(d, in);
  // The one exception is exact: MSA row attention's pair-bias LayerNorm shift (parameter
  // 10, after the row attention's LayerNorm, q, k, v, gate, output and the pair LayerNorm
  // gain) adds the same constant to every key of a softmax row, so its gradient is zero.
  constexpr std::size_t kShiftInvariant = 10;
  for (std::size_t p = 0; p < run.param_grads.size(); ++p) {
    double norm = 0;
    for (double g : run.param_grads[p]) norm += g * g;
    if (p == kShiftInvariant) {
      EXPECT_LT(norm, 1e-20) << "the pair LayerNorm shift should not move the loss";
    } else {
      EXPECT_GT(norm, 1e-12) << "parameter " << p << " has no gradient";
    }
  }
}

TEST(EvoformerBlockRef, AttentionMatchesEvoformerAttentionReference) {
  EvoformerBlockCpuOps ops;
  const std::int64_t rows = 3, len = 7, heads = 2, D = 4, n = rows * len * heads * D;
  std::mt19937 rng(testing_support::test_seed());
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> q(n), k(n), v(n), bias(heads * len * len), d_o(n);
  for (auto* vec : {&q, &k, &v, &bias, &d_o})
    for (float& x : *vec) x = u(rng);
  auto tensor = [&](const std::vector<float>& src) {
    auto t = ops.alloc(static_cast<std::int64_t>(src.size()), MemoryKind::kActivations, "t");
    for (std::size_t i = 0; i < src.size(); ++i) t.p[i] = src[i];
    return t;
  };
  auto tq = tensor(q), tk = tensor(k), tv = tensor(v), tb = tensor(bias), tdo = tensor(d_o);
  auto o = ops.alloc(n, MemoryKind::kActivations, "o"), dq = ops.alloc(n, MemoryKind::kActivations, "dq");
  auto dk = ops.alloc(n, MemoryKind::kActivations, "dk"), dv = ops.alloc(n, MemoryKind::kActivations, "dv");
  auto db = ops.alloc(heads * len * len, MemoryKind::kActivations, "db");
  auto saved = ops.attention_fwd(tq, tk, tv, &tb, o, rows, len, heads, D);
  ops.attention_bwd(saved, tdo, dq, dk, dv, &db);
  const EvoformerAttnShape s{1, rows, len, heads, D};
  const auto ref = evoformer_attn_fwd_ref(s, q, k, v, nullptr, bias.data());
  const auto grads = evoformer_attn_bwd_ref(s, q, k, v, nullptr, bias.data(), d_o);
  for (std::int64_t i = 0; i < n; ++i) {
    EXPECT_NEAR(o.p[i], ref.o[static_cast<std::size_t>(i)], 1e-12);
    EXPECT_NEAR(dq.p[i], grads.dq[static_cast<std::size_t>(i)], 1e-12);
    EXPECT_NEAR(dk.p[i], grads.dk[static_cast<std::size_t>(i)], 1e-12);
    EXPECT_NEAR(dv.p[i], grads.dv[static_cast<std::size_t>(i)], 1e-12);
  }
  for (std::int64_t i = 0; i < heads * len * len; ++i) EXPECT_NEAR(db.p[i], grads.dpair[static_cast<std::size_t>(i)], 1e-12);
}

TEST(EvoformerBlockRef, BackwardReleasesWhatForwardKept) {
  const EvoformerBlockDims d = tiny_dims();
  EvoformerBlockCpuOps ops;
  EvoformerBlock<EvoformerBlockCpuOps> block(ops, d);
  const std::int64_t resident = ops.live_tensors();  // weights and their gradients
  EXPECT_EQ(resident, 2 * static_cast<std::int64_t>(block.params().size()));
  const std::int64_t nm = d.n_seq * d.n_res * d.c_m, nz = d.n_res * d.n_res * d.c_z;
  auto m0 = ops.alloc(nm, MemoryKind::kActivations, "m0"), z0 = ops.alloc(nz, MemoryKind::kActivations, "z0");
  auto dm = ops.alloc(nm, MemoryKind::kActivations, "dm"), dz = ops.alloc(nz, MemoryKind::kActivations, "dz");
  auto dm0 = ops.alloc(nm, MemoryKind::kActivations, "dm0"), dz0 = ops.alloc(nz, MemoryKind::kActivations, "dz0");
  const std::int64_t before = ops.live_bytes();
  block.forward(m0, z0);
  EXPECT_GT(ops.live_bytes(), before);
  block.backward(dm, dz, dm0, dz0);
  EXPECT_EQ(ops.live_bytes(), before);
  EXPECT_EQ(ops.live_tensors(), resident + 6);
}

}  // namespace
}  // namespace seqscale
