// The recorded program (layers/transformer_layer/transformer_layer_program.h) against
// the fp32 executor that runs the same definition (their peaks equal byte for byte), and
// against the closed form the search uses (model/memory.h, Korthikanti et al. 2022):
// term by term, with every difference the one layers/transformer_layer/README.md's
// NOTE gives a reason for.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <variant>

#include "layers/transformer_layer/transformer_layer_cpu.h"
#include "model/comm_volume.h"
#include "model/memory.h"
#include "tests/consistency/consistency.h"
#include "tests/support/seed.h"
#include "layers/transformer_layer/transformer_layer_program.h"

namespace seqscale {
namespace {

// A random tiny configuration: every path, recompute mode, residual, MLP and norm, GQA,
// rotary or not, tp and sp shards, awkward sizes.
TransformerStackDims random_dims(std::mt19937_64& rng) {
  auto pick = [&](std::int64_t lo, std::int64_t hi) { return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng); };
  TransformerStackDims d;
  TransformerLayerDims& l = d.layer;
  l.tp = pick(1, 2);
  l.sp = static_cast<SeqParallel>(pick(0, 2));  // none, megatron, ulysses
  l.sp_degree = l.sp == SeqParallel::kUlysses ? 2 : 1;
  const std::int64_t shards = l.tp * l.sp_degree;
  l.kv_heads = shards * pick(1, 2);
  l.heads = l.kv_heads * pick(1, 2);
  l.head_dim = pick(1, 5) * 2;
  l.hidden = l.heads * l.head_dim;
  l.ffn = l.tp * pick(3, 20);
  l.batch = pick(1, 2);
  l.seq = shards * pick(1, 9);
  l.rotary_dims = pick(0, 1) ? pick(0, l.head_dim / 2) * 2 : 0;
  l.mlp = static_cast<MlpKind>(pick(0, 1));
  l.norm = static_cast<NormKind>(pick(0, 1));
  l.parallel_residual = pick(0, 1);
  l.attn = static_cast<AttentionImpl>(pick(0, 1));
  l.recompute = static_cast<Recompute>(pick(0, 2));
  d.layers = pick(1, 3);
  d.vocab = l.tp * pick(1, 20);  // vocab-parallel: a multiple of tp
  d.vocab_chunk = pick(1, d.vocab + 3);
  d.learned_positions = l.rotary_dims == 0;
  d.mask = static_cast<MaskKind>(pick(0, 2));
  return d;
}

std::string describe(const TransformerStackDims& d) {
  const TransformerLayerDims& l = d.layer;
  char buf[256];
  std::snprintf(buf, sizeof buf, "b%lld s%lld h%lld H%lld kv%lld ffn%lld rot%lld tp%lld sp=%s/%lld %s %s %s %s %s L%lld V%lld/%lld mask=%s",
                (long long)l.batch, (long long)l.seq, (long long)l.hidden, (long long)l.heads, (long long)l.kv_heads,
                (long long)l.ffn, (long long)l.rotary_dims, (long long)l.tp, std::string(sp_name(l.sp)).c_str(),
                (long long)l.sp_degree, std::string(attn_name(l.attn)).c_str(), std::string(recompute_name(l.recompute)).c_str(),
                l.parallel_residual ? "parallel" : "sequential", l.mlp == MlpKind::kGelu ? "gelu" : "swiglu",
                l.norm == NormKind::kLayerNorm ? "layernorm" : "rmsnorm", (long long)d.layers, (long long)d.vocab,
                (long long)d.vocab_chunk, std::string(mask_name(d.mask)).c_str());
  return buf;
}

TEST(TransformerLayerProgram, ExecutorPeakEqualsReplayByteForByte) {
  const std::uint64_t seed = testing_support::test_seed();
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 60; ++i) {
    const TransformerStackDims d = random_dims(rng);
    SCOPED_TRACE(describe(d));
    {
      TransformerExecOps ops;
      TransformerLayerStep<TransformerExecOps> step(ops, d.layer, d.mask);
      step.run();
      step.run();  // a second step in the same memory: the timing loop's
      const MemoryReplay replay = build_transformer_layer_program(d.layer, d.mask, DType::kFp32).replay_memory();
      EXPECT_EQ(ops.peak_bytes(), replay.peak_device_bytes) << "layer";
      EXPECT_EQ(ops.live_bytes(), replay.final_device_bytes) << "layer";
    }
    TransformerExecOps ops;
    TransformerStackStep<TransformerExecOps> step(ops, d);
    step.run();
    step.run();
    const MemoryReplay replay = build_transformer_stack_program(d, DType::kFp32).replay_memory();
    EXPECT_EQ(ops.peak_bytes(), replay.peak_device_bytes) << "stack";
    EXPECT_EQ(ops.live_bytes(), replay.final_device_bytes) << "stack";
  }
}

// The model prices gradients at kGradBytes (ZeRO's 2 B accounting); the program keeps
// fp32 gradients (Megatron's main_grad; layers/transformer_layer/README.md NOTE 4), so its
// Megatron-SP per-step gradient all-reduce (the one overlappable TP all-reduce) moves
// 4 / kGradBytes times the model's bytes.
std::vector<CommOp> with_fp32_grads(std::vector<CommOp> ops) {
  for (CommOp& o : ops)
    if (o.group == GroupKind::kTensor && o.collective == Collective::kAllReduce && o.overlappable)
      o.bytes = static_cast<std::int64_t>(std::llround(static_cast<double>(o.bytes) * 4.0 / kGradBytes));
  return ops;
}

// The program's collectives are the ones the model prices: a stack step's CommOps equal
// transformer_step_comm's for the same model and plan (one micro-batch, one stage), less
// the data-parallel reduction, which is the step's, op for op. (That an executor over MPI
// moves exactly these: tests/consistency/transformer_layer_mpi_test.cpp.)
TEST(TransformerLayerProgram, StackCollectivesAreWhatTheModelPrices) {
  const std::uint64_t seed = testing_support::test_seed();
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 40; ++i) {
    TransformerStackDims d = random_dims(rng);
    TransformerLayerDims& l = d.layer;
    l.tp = 1 << (rng() % 3);  // 1, 2, 4
    l.kv_heads = l.tp * l.sp_degree * (1 + static_cast<std::int64_t>(rng() % 2));
    l.heads = l.kv_heads * (1 + static_cast<std::int64_t>(rng() % 2));
    l.hidden = l.heads * l.head_dim;
    l.ffn = l.tp * (3 + static_cast<std::int64_t>(rng() % 5));
    l.seq = l.tp * l.sp_degree * (1 + static_cast<std::int64_t>(rng() % 4));
    // Megatron-SP's per-step reduction is priced at GPT's 6h replicated weights a layer.
    l.mlp = MlpKind::kGelu;
    l.norm = NormKind::kLayerNorm;
    d.vocab = l.tp * (1 + static_cast<std::int64_t>(rng() % 20));
    SCOPED_TRACE(describe(d));
    TransformerSpec t;
    t.layers = d.layers;
    t.hidden = l.hidden;
    t.heads = l.heads;
    t.kv_heads = l.kv_heads;
    t.ffn_hidden = l.ffn;
    t.vocab = d.vocab;
    t.dtype = rng() % 2 ? DType::kBf16 : DType::kFp32;
    Plan p;
    p.tp = static_cast<std::int32_t>(l.tp);
    p.sp = l.sp;
    p.sp_degree = static_cast<std::int32_t>(l.ulysses());
    p.dp = 1;
    p.recompute = l.recompute;
    const auto priced = with_fp32_grads(consistency::only(transformer_step_comm(t, p, RunShape{l.seq, l.batch, l.batch}, 0),
                                                          [](const CommOp& o) { return o.group != GroupKind::kData; }));
    const auto recorded = consistency::comm_ops(build_transformer_stack_program(d, t.dtype));
    EXPECT_EQ(consistency::first_difference(recorded, priced), "");
    EXPECT_EQ(priced.empty(), l.tp == 1 && l.ulysses() == 1);
  }
}

// ---- the closed form, term by term ----------------------------------------------------------

// Live bytes after replaying ops [0, end).
std::int64_t live_at(const StepProgram& p, std::size_t end) {
  std::int64_t live = 0;
  for (std::size_t i = 0; i < end; ++i)
    if (const auto* e = std::get_if<MemoryEvent>(&p.ops[i]); e && !e->on_host) live += e->bytes;
  return live;
}
std::size_t first_op(const StepProgram& p, const std::function<bool(const ComputeOp&)>& pred, std::size_t from = 0) {
  for (std::size_t i = from; i < p.ops.size(); ++i)
    if (const auto* c = std::get_if<ComputeOp>(&p.ops[i]); c && pred(*c)) return i;
  return p.ops.size();
}
std::int64_t peak_between(const StepProgram& p, std::size_t begin, std::size_t end) {
  std::int64_t live = live_at(p, begin), peak = live;
  for (std::size_t i = begin; i < end; ++i)
    if (const auto* e = std::get_if<MemoryEvent>(&p.ops[i]); e && !e->on_host) peak = std::max(peak, live += e->bytes);
  return peak;
}

// What the layer program keeps from forward to backward (its input included, as Korthikanti
// counts the first LayerNorm's input), the most its backward adds on top of that, and the
// most its forward holds above what was live when it started.
struct ProgramTerms { double stored = 0, backward_working = 0, forward_working = 0; };
ProgramTerms layer_terms(const TransformerLayerDims& d, DType dtype) {
  const StepProgram p = build_transformer_layer_program(d, MaskKind::kNone, dtype);
  // The forward starts after the step's own tensors (the last of them is "d_layer_in").
  std::size_t fwd = 0;
  while (fwd < p.ops.size()) {
    const auto* e = std::get_if<MemoryEvent>(&p.ops[fwd++]);
    if (e && e->tag == "d_layer_in") break;
  }
  // The forward ends after its last op and the frees that follow it (full recompute's
  // release of every saved tensor, the step's release of the layer output).
  std::size_t bwd = first_op(p, [](const ComputeOp& c) { return c.phase != Phase::kForward; });
  while (bwd > 0 && !std::holds_alternative<ComputeOp>(p.ops[bwd - 1])) --bwd;
  while (bwd < p.ops.size()) {
    const auto* e = std::get_if<MemoryEvent>(&p.ops[bwd]);
    if (!e || e->bytes > 0) break;
    ++bwd;
  }
  const double x = static_cast<double>(d.rows_out() * d.hidden * dtype_bytes(dtype));
  ProgramTerms t;
  t.stored = static_cast<double>(live_at(p, bwd) - live_at(p, fwd)) + x;
  t.backward_working = static_cast<double>(peak_between(p, bwd, p.ops.size()) - live_at(p, bwd));
  t.forward_working = static_cast<double>(peak_between(p, fwd, bwd) - live_at(p, fwd));
  return t;
}

// Korthikanti's setting: Megatron GPT (sequential, LayerNorm, bias + GELU, ffn 4h, MHA),
// bf16, one micro-batch, no pipeline.
TEST(TransformerLayerProgram, StoredActivationsMatchKorthikantiTermByTerm) {
  const std::uint64_t seed = testing_support::test_seed();
  std::mt19937_64 rng(seed);
  auto pick = [&](std::int64_t lo, std::int64_t hi) { return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng); };
  for (int i = 0; i < 40; ++i) {
    TransformerSpec t;
    t.layers = pick(1, 4);
    t.heads = 4 * pick(1, 2);
    t.hidden = t.heads * 2 * pick(1, 8);
    t.kv_heads = t.heads;
    t.ffn_hidden = 4 * t.hidden;
    t.vocab = pick(5, 300);
    Plan p;
    p.dp = 1;
    p.tp = static_cast<std::int32_t>(pick(1, 2));
    p.sp = static_cast<SeqParallel>(pick(0, 2));  // none, megatron, ulysses
    p.sp_degree = p.sp == SeqParallel::kUlysses ? 2 : 1;
    p.attn = static_cast<AttentionImpl>(pick(0, 1));
    p.recompute = static_cast<Recompute>(pick(0, 2));
    const RunShape shape{p.tp * p.sp_degree * pick(1, 40), pick(1, 3), 0};
    const RunShape one{shape.seq, shape.micro_batch, shape.micro_batch};
    const TransformerLayerDims d = TransformerLayerDims::from(t, p, shape.seq, shape.micro_batch);
    const MemoryBreakdown mb = transformer_memory(t, ClusterSpec{}, p, one);
    const ProgramTerms got = layer_terms(d, DType::kBf16);
    // Korthikanti's symbols; ss the shards of the sequence outside TP regions, tp the shards
    // of the TP regions (Ulysses splits both by its degree u: ss = u, t = tp u).
    const double s = static_cast<double>(shape.seq), b = static_cast<double>(shape.micro_batch);
    const double h = static_cast<double>(t.hidden), a = static_cast<double>(t.heads), u = p.sp_degree;
    const double tp = p.tp * u;
    const double ss = (p.sp == SeqParallel::kMegatron && p.tp > 1 ? static_cast<double>(p.tp) : 1.0) * u;
    const double closed = mb[MemTerm::kActivations] / static_cast<double>(t.layers);
    // The NOTE's differences: Korthikanti's two dropout masks (sbh/ss each at 1 B), and with
    // materialized attention the softmax dropout's mask and output (3as^2b/t); the program's
    // fp32 LayerNorm statistics (2 LayerNorms x mean, rstd: 16sb/ss); fused + selective
    // recomputes the log-sum-exp instead of keeping it (4asb/t).
    double expected_delta = 0;
    if (p.recompute != Recompute::kFull) {
      expected_delta = 2.0 * s * b * h / ss - 16.0 * s * b / ss;
      if (p.attn == AttentionImpl::kMaterialized && p.recompute == Recompute::kNone) expected_delta += 3.0 * a * s * s * b / tp;
      if (p.attn == AttentionImpl::kFused && p.recompute == Recompute::kSelective) expected_delta += 4.0 * a * s * b / tp;
      // Ulysses (NOTE 9): the attention context kept twice, the core's O in the heads layout
      // [s, H/(tp u)] for the attention backward and its all-to-all into [s/u, H/tp] for the
      // output projection's weight gradient; the closed form counts one (2sbh/t).
      if (p.sp == SeqParallel::kUlysses) expected_delta -= 2.0 * s * b * h / tp;
    }
    SCOPED_TRACE("h" + std::to_string(t.hidden) + " a" + std::to_string(t.heads) + " s" + std::to_string(shape.seq) + " b" +
                 std::to_string(shape.micro_batch) + " tp" + std::to_string(p.tp) + " sp=" + std::string(sp_name(p.sp)) + "/" + std::to_string(p.sp_degree) +
                 " " + std::string(attn_name(p.attn)) + " " + std::string(recompute_name(p.recompute)));
    EXPECT_NEAR(closed - got.stored, expected_delta, 1e-6 * closed) << "closed " << closed << " program " << got.stored;
    // The backward working set (NOTE 6): the closed form counts dY and dX (4sbh/ss) and,
    // materialized, dP and dS (4as^2b/t) on top of everything stored. The program's dY and
    // dX are the caller's (live before forward), and its backward releases as it allocates:
    // FC2's weight gradient first, so the GELU output goes before du exists, and du written
    // by the DGELU epilogue (no d(GELU output) tensor). With fused attention it never rises
    // above what was stored, but for Megatron-SP's gathered output gradient (2sbh); the
    // materialized dP and dS come after the MLP's tensors are freed, so within 4as^2b/t (and
    // Megatron-SP's gathered gradient).
    const bool gathers = p.sp == SeqParallel::kMegatron && p.tp > 1;
    if (p.recompute != Recompute::kFull && p.attn == AttentionImpl::kFused) {
      EXPECT_EQ(got.backward_working, gathers ? 2.0 * s * b * h : 0.0);
    }
    if (p.recompute == Recompute::kNone && p.attn == AttentionImpl::kMaterialized) {
      EXPECT_LE(got.backward_working, 4.0 * a * s * s * b / tp + (gathers ? 2.0 * s * b * h : 0.0) + 1e-9);
    }
    // Full recompute (NOTE 3, 6, 10): both price its backward as the layer rebuilt on top
    // of its input, then that layer's backward. The closed form's working set is what no
    // recompute stores (less the scores, which it prices apart) plus dY, dX; the program's
    // is the larger of the rebuilt forward's own peak and what its no-recompute layer
    // stores (less the input, already counted) plus that layer's backward working set.
    if (p.recompute == Recompute::kFull) {
      Plan none = p;
      none.recompute = Recompute::kNone;
      TransformerLayerDims dn = d;
      dn.recompute = Recompute::kNone;
      const ProgramTerms got_none = layer_terms(dn, DType::kBf16);
      const double x = 2.0 * s * b * h / ss;
      EXPECT_DOUBLE_EQ(got.backward_working,
                       std::max(got_none.forward_working, got_none.stored - x + got_none.backward_working));
      // A one-token vocabulary, so the stage's peak is a layer's backward, not the loss.
      TransformerSpec small_vocab = t;
      small_vocab.vocab = 1;
      const MemoryBreakdown mb_full = transformer_memory(small_vocab, ClusterSpec{}, p, one);
      const MemoryBreakdown mb_none = transformer_memory(small_vocab, ClusterSpec{}, none, one);
      const double closed_stored_none = mb_none[MemTerm::kActivations] / static_cast<double>(t.layers) -
                                        (p.attn == AttentionImpl::kMaterialized ? 5.0 * a * s * s * b / tp : 0.0);
      ASSERT_GT(mb_full[MemTerm::kBackwardWorkingSet], 0);
      EXPECT_NEAR(mb_full[MemTerm::kBackwardWorkingSet], closed_stored_none + 4.0 * s * b * h / ss,
                  1e-9 * mb_full[MemTerm::kBackwardWorkingSet]);
    }
  }
}

// Parameters, gradients and optimizer states of a stack: the program's against
// transformer_params (ANCHORS s4) and model_state_bytes.
TEST(TransformerLayerProgram, ModelStatesMatchTheClosedForm) {
  const std::uint64_t seed = testing_support::test_seed();
  std::mt19937_64 rng(seed);
  auto pick = [&](std::int64_t lo, std::int64_t hi) { return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng); };
  for (int i = 0; i < 20; ++i) {
    TransformerSpec t;
    t.layers = pick(1, 4);
    t.heads = pick(1, 4);
    t.hidden = t.heads * 2 * pick(1, 8);
    t.kv_heads = t.heads;
    t.ffn_hidden = 4 * t.hidden;
    t.vocab = pick(5, 300);
    t.position = pick(0, 1) ? PositionEmbedding::kLearned : PositionEmbedding::kRotary;
    Plan p;
    p.dp = 1;
    const std::int64_t seq = pick(2, 30);
    TransformerStackDims d;
    d.layer = TransformerLayerDims::from(t, p, seq, 1);
    d.layers = t.layers;
    d.vocab = t.vocab;
    d.vocab_chunk = pick(1, t.vocab);
    d.learned_positions = t.position == PositionEmbedding::kLearned;
    const StepProgram prog = build_transformer_stack_program(d, DType::kBf16);
    double params = 0, grads = 0, optimizer = 0;
    for (const StepOp& op : prog.ops) {
      if (const auto* e = std::get_if<MemoryEvent>(&op); e && e->bytes > 0) {
        if (e->kind == MemoryKind::kParameters) params += static_cast<double>(e->bytes);
        if (e->kind == MemoryKind::kGradients) grads += static_cast<double>(e->bytes);
        if (e->kind == MemoryKind::kOptimizerStates) optimizer += static_cast<double>(e->bytes);
      }
    }
    // The program has the final LayerNorm (2h) the closed form leaves out, and keeps fp32
    // gradients (Megatron's main_grad) where ZeRO's count is 2 B.
    const double n = transformer_params(t, seq) + 2.0 * static_cast<double>(t.hidden);
    EXPECT_DOUBLE_EQ(params, kParamBytes * n);
    EXPECT_DOUBLE_EQ(grads, 4.0 * n);
    EXPECT_DOUBLE_EQ(optimizer, kOptimizerBytes * n);
  }
}

// The loss: the closed form's 18 B per logit of the whole sequence (Megatron's vocab-parallel
// cross entropy) against the chunked loss's one [tokens, vocab_chunk] chunk.
TEST(TransformerLayerProgram, ChunkedLossHoldsOneChunkOfLogits) {
  const std::uint64_t seed = testing_support::test_seed();
  std::mt19937_64 rng(seed);
  auto pick = [&](std::int64_t lo, std::int64_t hi) { return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng); };
  for (int i = 0; i < 20; ++i) {
    TransformerSpec t;
    t.layers = 1;
    t.heads = 2;
    t.hidden = 8;
    t.kv_heads = 2;
    t.ffn_hidden = 32;
    t.vocab = pick(200, 2000);  // the loss binds
    Plan p;
    p.dp = 1;
    const RunShape shape{pick(2, 30), 1, 1};
    TransformerStackDims d;
    d.layer = TransformerLayerDims::from(t, p, shape.seq, 1);
    d.vocab = t.vocab;
    d.vocab_chunk = pick(1, 64);
    const StepProgram prog = build_transformer_stack_program(d, DType::kBf16);
    const std::size_t begin = first_op(prog, [](const ComputeOp& c) { return c.kernel == "cross_entropy"; });
    std::size_t end = begin;
    for (std::size_t k = begin; k < prog.ops.size(); ++k)
      if (const auto* c = std::get_if<ComputeOp>(&prog.ops[k]); c && c->kernel == "cross_entropy") end = k + 1;
    // From just before the first chunk's GEMM (3 ops back: its alloc, the GEMM) to the last chunk.
    const std::int64_t before = live_at(prog, begin - 2);
    const double held = static_cast<double>(peak_between(prog, begin - 2, end) - before);
    const double R = static_cast<double>(shape.seq), Vc = static_cast<double>(std::min(d.vocab_chunk, d.vocab));
    // One chunk (2 B), its dlogits in place, and the fp32 running max, sum, target logit,
    // log-sum-exp (16 B a token) beside d(final norm out) (2h B a token) in backward.
    EXPECT_LE(held, R * (2.0 * Vc + 16.0) + R * 2.0 * static_cast<double>(t.hidden));
    const MemoryBreakdown mb = transformer_memory(t, ClusterSpec{}, p, shape);
    EXPECT_DOUBLE_EQ(mb[MemTerm::kLogits], kLogitBytesPerElement * R * static_cast<double>(t.vocab));
    EXPECT_LT(held, mb[MemTerm::kLogits]);
  }
}

}  // namespace
}  // namespace seqscale
