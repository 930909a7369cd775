// CUDA benchmarks of the naive Evoformer attention (the OpenFold baseline): forward, and
// forward + backward. Axes: B, N, L, H, D, dtype, pair_bias (0/1). Every buffer comes from
// the harness's pool, so peak_bytes shows the materialised logits (12.08 GB per copy at the
// finetuning extra-MSA shape) and an `oom` where they do not fit. Every point is checked
// against the double reference before it is timed (evoformer_attn_bench.h).
#include <cublas_v2.h>

#include <memory>
#include <string>

#include "harness/bench/registry.h"
#include "common/check_cublas.h"
#include "kernels/evoformer_attn/evoformer_attn.cuh"
#include "kernels/evoformer_attn/evoformer_attn_bench.h"
#include "workloads/config_error.h"

namespace seqscale {
namespace {

struct NaiveSetup {
  EvoformerAttnParams p;
  EvoformerAttnGrads g;
};

// The inputs both paths share: shape and dtype from the point, Q K V (random), a zero mask
// bias, the optional pair bias and O, every buffer from the harness's pool.
EvoformerAttnParams shared_inputs(BenchState& s) {
  EvoformerAttnParams p;
  p.shape = {s.get_int("B"), s.get_int("N"), s.get_int("L"), s.get_int("H"), s.get_int("D")};
  p.io = s.get_dtype();
  const auto es = static_cast<std::size_t>(dtype_bytes(p.io));
  const auto qkv = static_cast<std::size_t>(p.shape.qkv_elements());
  const std::int64_t mask_n = p.shape.batch * p.shape.n * p.shape.len;
  const std::int64_t pair_n = p.shape.batch * p.shape.heads * p.shape.len * p.shape.len;
  void* q = s.alloc(qkv * es);
  void* k = s.alloc(qkv * es);
  void* v = s.alloc(qkv * es);
  void* mask = s.alloc(static_cast<std::size_t>(mask_n) * es);
  s.fill_random(q, p.shape.qkv_elements(), p.io, 1);
  s.fill_random(k, p.shape.qkv_elements(), p.io, 2);
  s.fill_random(v, p.shape.qkv_elements(), p.io, 3);
  s.fill_value(mask, mask_n, p.io, 0.f);
  p.q = q;
  p.k = k;
  p.v = v;
  p.mask_bias = mask;
  if (s.get_int("pair_bias") != 0) {
    void* b = s.alloc(static_cast<std::size_t>(pair_n) * es);
    s.fill_random(b, pair_n, p.io, 4);
    p.pair_bias = b;
  }
  p.o = s.alloc(qkv * es);
  return p;
}

NaiveSetup setup(BenchState& s, bool backward) {
  NaiveSetup n;
  auto& p = n.p;
  p = shared_inputs(s);
  const bool pair = p.pair_bias != nullptr;
  s.add_cost(evoformer_attn_fwd_cost(p.shape, p.io, pair, false));
  if (backward) s.add_cost(evoformer_attn_bwd_cost(p.shape, p.io, pair, false));
  const auto es = static_cast<std::size_t>(dtype_bytes(p.io));
  const auto qkv = static_cast<std::size_t>(p.shape.qkv_elements());
  const auto logits = static_cast<std::size_t>(p.shape.logits_elements());
  const std::int64_t pair_n = p.shape.batch * p.shape.heads * p.shape.len * p.shape.len;
  p.probs = s.alloc(logits * es);
  if (backward) {
    void* d_o = s.alloc(qkv * es);
    s.fill_random(d_o, p.shape.qkv_elements(), p.io, 5);
    n.g.d_o = d_o;
    n.g.dq = s.alloc(qkv * es);
    n.g.dk = s.alloc(qkv * es);
    n.g.dv = s.alloc(qkv * es);
    n.g.d_probs = s.alloc(logits * es);
    if (pair) n.g.d_pair = s.alloc_array<float>(pair_n);
  }
  return n;
}

struct Cublas {
  cublasHandle_t h = nullptr;
  ~Cublas() {
    if (h) cublasDestroy(h);
  }
  cublasHandle_t get() {
    if (!h) CUBLAS_CHECK(cublasCreate(&h));  // first exec: the device is touched only there
    return h;
  }
};

EvoformerAttnCheckBuffers check_buffers(const EvoformerAttnParams& p) {
  EvoformerAttnCheckBuffers b;
  b.q = p.q;
  b.k = p.k;
  b.v = p.v;
  b.mask = p.mask_bias;
  b.pair = p.pair_bias;
  b.o = p.o;
  return b;
}

template <typename Grads>
EvoformerAttnCheckBuffers check_buffers(const EvoformerAttnParams& p, const Grads& g) {
  EvoformerAttnCheckBuffers b = check_buffers(p);
  b.d_o = g.d_o;
  b.dq = g.dq;
  b.dk = g.dk;
  b.dv = g.dv;
  b.d_pair = g.d_pair;
  return b;
}

SEQSCALE_BENCH(evoformer_attn_naive_fwd_cuda, "evoformer_attn_naive_fwd", "kernels", Backend::kCuda, [](BenchState& s) {
  NaiveSetup n = setup(s, false);
  Cublas cublas;
  const auto run = [&](void* stream) { evoformer_attn_naive_fwd(n.p, cublas.get(), static_cast<cudaStream_t>(stream)); };
  s.check(run, [&] { return check_evoformer_attn(s, n.p.shape, n.p.io, check_buffers(n.p)); });
  s.exec(run);
});

SEQSCALE_BENCH(evoformer_attn_naive_fwdbwd_cuda, "evoformer_attn_naive_fwdbwd", "kernels", Backend::kCuda, [](BenchState& s) {
  NaiveSetup n = setup(s, true);
  Cublas cublas;
  const auto run = [&](void* stream) {
    evoformer_attn_naive_fwd(n.p, cublas.get(), static_cast<cudaStream_t>(stream));
    evoformer_attn_naive_bwd(n.p, n.g, cublas.get(), static_cast<cudaStream_t>(stream));
  };
  s.check(run, [&] { return check_evoformer_attn(s, n.p.shape, n.p.io, check_buffers(n.p, n.g)); });
  s.exec(run);
});

struct FusedSetup {
  EvoformerAttnFusedParams p;
  EvoformerAttnFusedGrads g;
};

FusedSetup fused_setup(BenchState& s, bool backward) {
  FusedSetup f;
  auto& a = f.p.a;
  a = shared_inputs(s);
  const bool pair = a.pair_bias != nullptr;
  s.add_cost(evoformer_attn_fwd_cost(a.shape, a.io, pair, true));
  if (backward) s.add_cost(evoformer_attn_bwd_cost(a.shape, a.io, pair, true));
  const auto es = static_cast<std::size_t>(dtype_bytes(a.io));
  const auto qkv = static_cast<std::size_t>(a.shape.qkv_elements());
  const std::int64_t rows = a.shape.rows() * a.shape.heads * a.shape.len;
  const std::int64_t pair_n = a.shape.batch * a.shape.heads * a.shape.len * a.shape.len;
  f.p.lse = s.alloc_array<float>(rows);
  if (s.has("kernel")) {  // optional axis: simt | tc (default: tensor cores where they apply)
    const std::string kernel = s.get_string("kernel");
    if (kernel != "simt" && kernel != "tc") throw ConfigError("kernel: expected simt or tc, got '" + kernel + "'");
    f.p.kernel = kernel == "tc" ? FusedKernel::kTensorCore : FusedKernel::kSimt;
  }
  if (backward) {
    void* d_o = s.alloc(qkv * es);
    s.fill_random(d_o, a.shape.qkv_elements(), a.io, 5);
    f.g.d_o = d_o;
    f.g.dq = s.alloc(qkv * es);
    f.g.dk = s.alloc(qkv * es);
    f.g.dv = s.alloc(qkv * es);
    f.g.row_dot = s.alloc_array<float>(rows);
    if (pair) f.g.d_pair = s.alloc_array<float>(pair_n);  // the fp32 d(pair bias) the fused path keeps
    f.g.pair_mode = s.has("deterministic") && s.get_int("deterministic") ? PairGradMode::kDeterministic : PairGradMode::kAtomic;
  }
  return f;
}

SEQSCALE_BENCH(evoformer_attn_fused_fwd_cuda, "evoformer_attn_fused_fwd", "kernels", Backend::kCuda, [](BenchState& s) {
  FusedSetup f = fused_setup(s, false);
  const auto run = [&](void* stream) { evoformer_attn_fused_fwd(f.p, static_cast<cudaStream_t>(stream)); };
  s.check(run, [&] { return check_evoformer_attn(s, f.p.a.shape, f.p.a.io, check_buffers(f.p.a)); });
  s.exec(run);
});

SEQSCALE_BENCH(evoformer_attn_fused_fwdbwd_cuda, "evoformer_attn_fused_fwdbwd", "kernels", Backend::kCuda, [](BenchState& s) {
  FusedSetup f = fused_setup(s, true);
  const auto run = [&](void* stream) {
    evoformer_attn_fused_fwd(f.p, static_cast<cudaStream_t>(stream));
    evoformer_attn_fused_bwd(f.p, f.g, static_cast<cudaStream_t>(stream));
  };
  s.check(run, [&] { return check_evoformer_attn(s, f.p.a.shape, f.p.a.io, check_buffers(f.p.a, f.g)); });
  s.exec(run);
});

}  // namespace
}  // namespace seqscale
