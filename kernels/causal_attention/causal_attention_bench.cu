// CUDA benchmarks of causal fused attention: "causal_attention_fwd" (forward) and
// "causal_attention_fwdbwd" (forward then backward, one timed call). Axes: B, S, H, D,
// dtype (bf16 | fp16 | fp32), and optionally kernel (simt | tc; default: tensor cores for
// fp16/bf16) and deterministic (0 | 1; default 0, the atomic dQ). Contiguous [B, S, H, D]
// buffers from the harness's pool, inputs uniform in [-1, 1). Every point makes one call
// checked against the double reference (causal_attention_bench.h) before it is timed.
// Declared cost: causal_attention_cost.h (FlashAttention's causal FLOP count).
#include <string>

#include "harness/bench/registry.h"
#include "kernels/causal_attention/causal_attention.cuh"
#include "kernels/causal_attention/causal_attention_bench.h"
#include "workloads/config_error.h"

namespace seqscale {
namespace {

struct Setup {
  CausalAttentionParams p;
  CausalAttentionGrads g;
};

Setup setup(BenchState& s, bool backward) {
  Setup c;
  CausalAttentionParams& p = c.p;
  p.shape = {s.get_int("B"), s.get_int("S"), s.get_int("H"), s.get_int("D")};
  p.io = s.get_dtype();
  if (!causal_attention_head_dim_supported(p.shape.head_dim)) {
    throw ConfigError("D: must be 64, 96 or 128, got " + std::to_string(p.shape.head_dim));
  }
  if (s.has("kernel")) {
    const std::string kernel = s.get_string("kernel");
    if (kernel != "simt" && kernel != "tc") throw ConfigError("kernel: expected simt or tc, got '" + kernel + "'");
    p.kernel = kernel == "tc" ? CausalAttentionKernel::kTensorCore : CausalAttentionKernel::kSimt;
  }
  if (causal_attention_uses_tc(p) && p.io == DType::kFp32) throw ConfigError("kernel: tc needs dtype fp16 or bf16");
  c.g.mode = s.has("deterministic") && s.get_int("deterministic") != 0 ? CausalBwdMode::kDeterministic : CausalBwdMode::kAtomic;
  // The SIMT kernels are deterministic whatever the mode and need no dQ accumulator.
  const bool accum = causal_attention_uses_tc(p) && c.g.mode == CausalBwdMode::kAtomic;
  s.add_cost(causal_attention_fwd_cost(p.shape, p.io));
  if (backward) {
    s.add_cost(causal_attention_bwd_cost(p.shape, p.io, accum ? CausalBwdMode::kAtomic : CausalBwdMode::kDeterministic));
  }
  const std::int64_t n = p.shape.elements();
  const auto bytes = static_cast<std::size_t>(n * dtype_bytes(p.io));
  void* q = s.alloc(bytes);
  void* k = s.alloc(bytes);
  void* v = s.alloc(bytes);
  s.fill_random(q, n, p.io, 1);
  s.fill_random(k, n, p.io, 2);
  s.fill_random(v, n, p.io, 3);
  p.q = q;
  p.k = k;
  p.v = v;
  p.o = s.alloc(bytes);
  p.lse = s.alloc_array<float>(p.shape.rows());
  if (backward) {
    void* d_o = s.alloc(bytes);
    s.fill_random(d_o, n, p.io, 5);
    c.g.d_o = d_o;
    c.g.dq = s.alloc(bytes);
    c.g.dk = s.alloc(bytes);
    c.g.dv = s.alloc(bytes);
    c.g.row_dot = s.alloc_array<float>(p.shape.rows());
    if (accum) c.g.dq_accum = s.alloc_array<float>(n);
  }
  return c;
}

CausalAttentionCheckBuffers check_buffers(const Setup& c, bool backward) {
  CausalAttentionCheckBuffers b{c.p.q, c.p.k, c.p.v, c.p.o, c.p.lse};
  if (backward) {
    b.d_o = c.g.d_o;
    b.dq = c.g.dq;
    b.dk = c.g.dk;
    b.dv = c.g.dv;
  }
  return b;
}

SEQSCALE_BENCH(causal_attention_fwd_cuda, "causal_attention_fwd", "kernels", Backend::kCuda, [](BenchState& s) {
  const Setup c = setup(s, false);
  const auto run = [&](void* stream) { causal_attention_fwd(c.p, static_cast<cudaStream_t>(stream)); };
  s.check(run, [&] { return check_causal_attention(s, c.p.shape, c.p.io, check_buffers(c, false)); });
  s.exec(run);
});

SEQSCALE_BENCH(causal_attention_fwdbwd_cuda, "causal_attention_fwdbwd", "kernels", Backend::kCuda, [](BenchState& s) {
  const Setup c = setup(s, true);
  const auto run = [&](void* stream) {
    causal_attention_fwd(c.p, static_cast<cudaStream_t>(stream));
    causal_attention_bwd(c.p, c.g, static_cast<cudaStream_t>(stream));
  };
  s.check(run, [&] { return check_causal_attention(s, c.p.shape, c.p.io, check_buffers(c, true)); });
  s.exec(run);
});

}  // namespace
}  // namespace seqscale
