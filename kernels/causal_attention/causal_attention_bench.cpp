// CPU benchmarks of causal attention: the fp32 CPU backend (causal_attention_cpu.h) on
// tracked host buffers, checked against the double reference before it is timed
// (causal_attention_bench.h), as the CUDA kernels are. Axes: B, S, H, D, dtype (fp32 only
// on the CPU). "causal_attention_fwd" times the forward; "causal_attention_fwdbwd" the
// forward and backward together.
#include <string>

#include "kernels/causal_attention/causal_attention_bench.h"
#include "kernels/causal_attention/causal_attention_cost.h"
#include "kernels/causal_attention/causal_attention_cpu.h"
#include "workloads/config_error.h"

namespace seqscale {
namespace {

struct CpuSetup {
  CausalAttentionParams p;
  CausalAttentionGrads g;
};

CpuSetup cpu_setup(BenchState& s, bool backward) {
  if (s.get_dtype() != DType::kFp32) throw ConfigError("dtype: the CPU causal attention runs fp32 only");
  for (const char* cuda_only : {"kernel", "deterministic"}) {
    if (s.has(cuda_only)) throw ConfigError(std::string(cuda_only) + ": a CUDA axis; the CPU backend has one deterministic kernel");
  }
  CpuSetup c;
  CausalAttentionParams& p = c.p;
  p.shape = {s.get_int("B"), s.get_int("S"), s.get_int("H"), s.get_int("D")};
  p.io = DType::kFp32;
  if (!causal_attention_head_dim_supported(p.shape.head_dim)) {
    throw ConfigError("D: must be 64, 96 or 128, got " + std::to_string(p.shape.head_dim));
  }
  const std::int64_t n = p.shape.elements();
  s.add_cost(causal_attention_fwd_cost(p.shape, p.io));
  if (backward) s.add_cost(causal_attention_bwd_cost(p.shape, p.io, CausalBwdMode::kDeterministic));
  float* q = s.alloc_array<float>(n);
  float* k = s.alloc_array<float>(n);
  float* v = s.alloc_array<float>(n);
  s.fill_random(q, n, p.io, 1);
  s.fill_random(k, n, p.io, 2);
  s.fill_random(v, n, p.io, 3);
  p.q = q;
  p.k = k;
  p.v = v;
  p.o = s.alloc_array<float>(n);
  p.lse = s.alloc_array<float>(p.shape.rows());
  if (backward) {
    float* d_o = s.alloc_array<float>(n);
    s.fill_random(d_o, n, p.io, 5);
    c.g.d_o = d_o;
    c.g.dq = s.alloc_array<float>(n);
    c.g.dk = s.alloc_array<float>(n);
    c.g.dv = s.alloc_array<float>(n);
    c.g.row_dot = s.alloc_array<float>(p.shape.rows());
    c.g.mode = CausalBwdMode::kDeterministic;
  }
  return c;
}

CausalAttentionCheckBuffers check_buffers(const CpuSetup& c, bool backward) {
  CausalAttentionCheckBuffers b{c.p.q, c.p.k, c.p.v, c.p.o, c.p.lse};
  if (backward) {
    b.d_o = c.g.d_o;
    b.dq = c.g.dq;
    b.dk = c.g.dk;
    b.dv = c.g.dv;
  }
  return b;
}

SEQSCALE_BENCH(causal_attention_fwd_cpu, "causal_attention_fwd", "kernels", Backend::kCpu, [](BenchState& s) {
  const CpuSetup c = cpu_setup(s, false);
  const auto run = [&](void*) { causal_attention_fwd_cpu(c.p); };
  s.check(run, [&] { return check_causal_attention(s, c.p.shape, c.p.io, check_buffers(c, false)); });
  s.exec(run);
});

SEQSCALE_BENCH(causal_attention_fwdbwd_cpu, "causal_attention_fwdbwd", "kernels", Backend::kCpu, [](BenchState& s) {
  const CpuSetup c = cpu_setup(s, true);
  const auto run = [&](void*) {
    causal_attention_fwd_cpu(c.p);
    causal_attention_bwd_cpu(c.p, c.g);
  };
  s.check(run, [&] { return check_causal_attention(s, c.p.shape, c.p.io, check_buffers(c, true)); });
  s.exec(run);
});

}  // namespace
}  // namespace seqscale
