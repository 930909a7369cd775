// CPU benchmarks of the vocabulary cross-entropy: the chunked fp32 CPU backend
// (cross_entropy_cpu.h) on tracked host buffers (the workspace included, so the point's
// peak shows what chunking saves), checked against the double reference before it is
// timed. Axes: tokens, hidden, vocab, vocab_chunk, dtype (fp32 only on the CPU); the plain
// cross-entropy over given logits: tokens, vocab, dtype.
// Run: seqscale bench --matrix transformer_kernels --filter 'cross_entropy_.*/cpu/' --out DIR
#include "kernels/cross_entropy/cross_entropy_bench.h"
#include "kernels/cross_entropy/cross_entropy_cost.h"
#include "kernels/cross_entropy/cross_entropy_cpu.h"
#include "workloads/config_error.h"

namespace seqscale {
namespace {

void require_fp32(BenchState& s) {
  if (s.get_dtype() != DType::kFp32) throw ConfigError("dtype: the CPU cross_entropy runs fp32 only");
}

struct CpuHead {  // the head's inputs on tracked host memory
  float* hidden;
  float* weight;
  std::int32_t* targets;
};

CpuHead alloc_head(BenchState& s, const CrossEntropyShape& sh) {
  CpuHead h{s.alloc_array<float>(sh.tokens * sh.hidden), s.alloc_array<float>(sh.vocab * sh.hidden),
            s.alloc_array<std::int32_t>(sh.tokens)};
  const float a = cross_entropy_weight_bound(sh.hidden);
  s.fill_random(h.hidden, sh.tokens * sh.hidden, DType::kFp32, 1);
  s.fill_random(h.weight, sh.vocab * sh.hidden, DType::kFp32, 2, -a, a);
  fill_cross_entropy_targets(s, h.targets, sh.tokens, sh.vocab, 3);
  return h;
}

SEQSCALE_BENCH(cross_entropy_fwd_cpu, "cross_entropy_fwd", "kernels", Backend::kCpu, [](BenchState& s) {
  require_fp32(s);
  const CrossEntropyShape sh = cross_entropy_shape_of(s);
  const KernelCost cost = cross_entropy_fwd_cost(sh, DType::kFp32);
  s.add_cost(cost);
  const CpuHead h = alloc_head(s, sh);
  auto* loss = s.alloc_array<float>(sh.tokens);
  auto* lse = s.alloc_array<float>(sh.tokens);
  void* ws = s.alloc(static_cast<std::size_t>(cost.workspace_bytes));
  const auto run = [&](void*) { cross_entropy_fwd_cpu(h.hidden, h.weight, h.targets, sh, loss, lse, ws); };
  s.check(run, [&] { return check_cross_entropy_fwd(s, sh, h.hidden, h.weight, h.targets, loss, lse, DType::kFp32); });
  s.exec(run);
});

SEQSCALE_BENCH(cross_entropy_bwd_cpu, "cross_entropy_bwd", "kernels", Backend::kCpu, [](BenchState& s) {
  require_fp32(s);
  const CrossEntropyShape sh = cross_entropy_shape_of(s);
  const KernelCost cost = cross_entropy_bwd_cost(sh, DType::kFp32);
  s.add_cost(cost);
  const CpuHead h = alloc_head(s, sh);
  auto* lse = s.alloc_array<float>(sh.tokens);
  auto* dloss = s.alloc_array<float>(sh.tokens);
  s.fill_random(dloss, sh.tokens, DType::kFp32, 4, 0.5f, 1.5f);
  {  // lse comes from the forward, as in training; its loss and workspace are gone before the backward's
    auto* loss = s.alloc_array<float>(sh.tokens);
    void* fwd_ws = s.alloc(static_cast<std::size_t>(cross_entropy_fwd_cost(sh, DType::kFp32).workspace_bytes));
    s.setup_call([&](void*) { cross_entropy_fwd_cpu(h.hidden, h.weight, h.targets, sh, loss, lse, fwd_ws); });
    s.release(fwd_ws);
    s.release(loss);
  }
  auto* dhidden = s.alloc_array<float>(sh.tokens * sh.hidden);
  auto* dweight = s.alloc_array<float>(sh.vocab * sh.hidden);
  void* ws = s.alloc(static_cast<std::size_t>(cost.workspace_bytes));
  const auto run = [&](void*) {
    cross_entropy_bwd_cpu(h.hidden, h.weight, h.targets, lse, dloss, sh, dhidden, dweight, ws);
  };
  s.check(run, [&] {
    return check_cross_entropy_bwd(s, sh, h.hidden, h.weight, h.targets, dloss, dhidden, dweight, DType::kFp32);
  });
  s.exec(run);
});

SEQSCALE_BENCH(cross_entropy_logits_fwd_cpu, "cross_entropy_logits_fwd", "kernels", Backend::kCpu, [](BenchState& s) {
  require_fp32(s);
  const std::int64_t tokens = s.get_int("tokens"), vocab = s.get_int("vocab");
  s.add_cost(cross_entropy_logits_fwd_cost(tokens, vocab, DType::kFp32));
  auto* logits = s.alloc_array<float>(tokens * vocab);
  auto* targets = s.alloc_array<std::int32_t>(tokens);
  auto* loss = s.alloc_array<float>(tokens);
  auto* lse = s.alloc_array<float>(tokens);
  s.fill_random(logits, tokens * vocab, DType::kFp32, 1, -4.f, 4.f);
  fill_cross_entropy_targets(s, targets, tokens, vocab, 3);
  const auto run = [&](void*) { cross_entropy_logits_fwd_cpu(logits, vocab, targets, tokens, vocab, loss, lse); };
  s.check(run, [&] { return check_cross_entropy_logits_fwd(s, logits, targets, loss, lse, tokens, vocab, DType::kFp32); });
  s.exec(run);
});

SEQSCALE_BENCH(cross_entropy_logits_bwd_cpu, "cross_entropy_logits_bwd", "kernels", Backend::kCpu, [](BenchState& s) {
  require_fp32(s);
  const std::int64_t tokens = s.get_int("tokens"), vocab = s.get_int("vocab");
  s.add_cost(cross_entropy_logits_bwd_cost(tokens, vocab, DType::kFp32));
  auto* logits = s.alloc_array<float>(tokens * vocab);
  auto* dlogits = s.alloc_array<float>(tokens * vocab);
  auto* targets = s.alloc_array<std::int32_t>(tokens);
  auto* loss = s.alloc_array<float>(tokens);
  auto* lse = s.alloc_array<float>(tokens);
  auto* dloss = s.alloc_array<float>(tokens);
  s.fill_random(logits, tokens * vocab, DType::kFp32, 1, -4.f, 4.f);
  fill_cross_entropy_targets(s, targets, tokens, vocab, 3);
  s.fill_random(dloss, tokens, DType::kFp32, 4, 0.5f, 1.5f);
  s.setup_call([&](void*) { cross_entropy_logits_fwd_cpu(logits, vocab, targets, tokens, vocab, loss, lse); });
  const auto run = [&](void*) { cross_entropy_logits_bwd_cpu(logits, vocab, targets, lse, dloss, tokens, vocab, dlogits); };
  s.check(run, [&] {
    return check_cross_entropy_logits_bwd(s, logits, targets, dloss, dlogits, tokens, vocab, DType::kFp32);
  });
  s.exec(run);
});

}  // namespace
}  // namespace seqscale
