// Suite "steps" on the GPU: the GPT layer ("transformer_layer": one layer's forward and
// backward) and a training step of a stack of them ("transformer_stack": embedding, k
// layers, chunked cross-entropy, Adam) on TransformerCudaOps (transformer_layer.cuh), bf16
// by default (fp32 also runs). Every tensor comes from the harness's pool, so peak_bytes is
// the step's measured high-water mark, beside model_peak_bytes (the replay of the recorded
// program of the same point; the backend adds only transient kernel workspaces, at most
// max_workspace_bytes() at once: transformer_layer.cuh). A point the double reference can
// afford is checked once (dx and every parameter gradient; the stack's loss too) before it
// is timed. The harness derives
// TFLOPs (declared FLOPs / median time), tokens_per_s and, with peak_flops set here from
// the cluster file (axis `cluster`, else the device's name: H200 -> h200, H100 -> h100),
// mfu = declared FLOPs / time / peak. The declared FLOPs are the program's: recomputation
// and the materialized path's masked half of the s^2 products included, so `mfu` is the
// hardware FLOPs' utilisation of this implementation, not Megatron's model-FLOPs MFU.
// Axes: transformer_layer_bench.h.
//
//   seqscale bench --matrix transformer --filter 'transformer_(layer|stack)/cuda/' --out D
#include <cuda_runtime.h>

#include <string>
#include <vector>

#include "harness/bench/registry.h"
#include "harness/gpu_runtime.h"
#include "layers/transformer_layer/transformer_layer.cuh"
#include "layers/transformer_layer/transformer_layer_bench.h"
#include "workloads/config_error.h"
#include "workloads/specs.h"

namespace seqscale {
namespace {

using Ops = TransformerCudaOps;

// The dense peak of the GPU the point runs on, for mfu; 0 (no mfu) when neither the
// `cluster` axis nor the device's name says which.
double device_peak_flops(BenchState& s, DType io) {
  std::string cluster = s.has("cluster") ? s.get_string("cluster") : "";
  if (cluster.empty()) {
    const GpuRuntimeInfo info = query_gpu_runtime();
    const std::string name = info.devices.empty() ? "" : info.devices.front().name;
    if (name.find("H200") != std::string::npos) cluster = "h200";
    else if (name.find("H100") != std::string::npos) cluster = "h100";
    else return 0;
  }
  const ClusterSpec c = load_cluster(cluster);
  return io == DType::kBf16 ? c.peak_bf16_flops : c.peak_fp32_flops;
}

// The harness's stream, before anything is allocated: the pool's memory and every kernel
// then stay on one stream (setup_call runs only where the body executes).
cudaStream_t harness_stream(BenchState& s) {
  cudaStream_t stream = nullptr;
  s.setup_call([&](void* st) { stream = static_cast<cudaStream_t>(st); });
  return stream;
}

std::vector<double> read(BenchState& s, const Ops::Tensor& t) { return s.read_back(t.p, t.n, t.t); }

template <class Params>
void fill_weights(BenchState& s, Params& params) {
  std::uint64_t seed = 1;
  for (auto* p : params) {
    s.fill_random(p->w.p, p->w.n, p->w.t, seed++, -static_cast<float>(kTransformerWeightRange),
                  static_cast<float>(kTransformerWeightRange));
  }
}

void set_peak(BenchState& s, const TransformerBenchPoint& pt) {
  const double peak = device_peak_flops(s, pt.io);
  if (peak > 0) s.set_metric("peak_flops", peak);
}

// Axis gemm_epilogues [1]: the fused GEMMs as cuBLASLt epilogues (1) or the GEMM and the
// elementwise kernels apart (0), so a matrix measures what the fusion buys. Axis attn_bwd
// [deterministic]: the fused backward's dQ, deterministic or atomic (FlashAttention-2's and
// SDPA's default, with a transient fp32 accumulator).
void set_cuda_options(BenchState& s, Ops& ops) {
  ops.set_gemm_epilogues(!s.has("gemm_epilogues") || s.get_int("gemm_epilogues") != 0);
  const std::string bwd = s.has("attn_bwd") ? s.get_string("attn_bwd") : "deterministic";
  if (bwd != "deterministic" && bwd != "atomic") {
    throw ConfigError("attn_bwd: must be deterministic or atomic, got '" + bwd + "'");
  }
  ops.set_attention_bwd(bwd == "atomic" ? CausalBwdMode::kAtomic : CausalBwdMode::kDeterministic);
}
// The share of fused-GEMM calls cuBLASLt ran with its epilogue (0 in fp32, or when off).
void record_epilogues(BenchState& s, const Ops& ops) {
  const double calls = static_cast<double>(ops.fused_gemm_calls() + ops.unfused_gemm_calls());
  if (calls > 0) s.set_metric("fused_gemm_fraction", static_cast<double>(ops.fused_gemm_calls()) / calls);
}

SEQSCALE_BENCH(transformer_layer_cuda, "transformer_layer", "steps", Backend::kCuda, [](BenchState& s) {
  TransformerBenchPoint pt;
  if (!setup_transformer_point(s, /*stack=*/false, {DType::kBf16, DType::kFp32}, pt)) return;
  set_peak(s, pt);
  Ops ops(harness_stream(s), pt.io, [&](std::size_t bytes) { return s.alloc(bytes); }, [&](void* p) { s.release(p); });
  set_cuda_options(s, ops);
  TransformerLayerStep<Ops> step(ops, pt.dims.layer, pt.mask);
  fill_weights(s, step.layer.params());
  s.fill_random(step.x.p, step.x.n, step.x.t, 101);
  s.fill_random(step.dy.p, step.dy.n, step.dy.t, 102);
  ops.synchronize();  // the mask's fill
  const auto run = [&](void* stream) {
    ops.set_stream(static_cast<cudaStream_t>(stream));
    step.run();
  };
  if (pt.checkable && s.checks()) {
    TransformerLayerInputs in;
    in.x = read(s, step.x);
    in.dy = read(s, step.dy);
    for (auto* p : step.layer.params()) in.params.push_back(read(s, p->w));
    s.check(run, [&] {
      // Outputs first (the test hook perturbs the first value read).
      const std::vector<double> dx = read(s, step.dx);
      std::vector<std::vector<double>> grads;
      for (auto* p : step.layer.params()) grads.push_back(read(s, p->dw));
      return check_layer_outputs(pt, in, dx, grads);
    });
  }
  s.exec(run);
  record_epilogues(s, ops);
});

SEQSCALE_BENCH(transformer_stack_cuda, "transformer_stack", "steps", Backend::kCuda, [](BenchState& s) {
  TransformerBenchPoint pt;
  if (!setup_transformer_point(s, /*stack=*/true, {DType::kBf16, DType::kFp32}, pt)) return;
  set_peak(s, pt);
  Ops ops(harness_stream(s), pt.io, [&](std::size_t bytes) { return s.alloc(bytes); }, [&](void* p) { s.release(p); });
  set_cuda_options(s, ops);
  TransformerStackStep<Ops> step(ops, pt.dims);
  fill_weights(s, step.stack.params());
  step.stack.sync_master();
  const float vocab = static_cast<float>(pt.dims.vocab);
  s.fill_random(step.tokens.p, step.tokens.n, DType::kInt32, 201, 0.f, vocab);
  s.fill_random(step.targets.p, step.targets.n, DType::kInt32, 202, 0.f, vocab);
  ops.synchronize();  // the master weights' copy and the moments' zeroing
  const auto run = [&](void* stream) {
    ops.set_stream(static_cast<cudaStream_t>(stream));
    step.run();
  };
  if (pt.checkable && s.checks()) {
    // The weights before the checked step: its gradients are of these (Adam runs after).
    TransformerStackInputs in;
    for (double v : read(s, step.tokens)) in.tokens.push_back(static_cast<std::int32_t>(v));
    for (double v : read(s, step.targets)) in.targets.push_back(static_cast<std::int32_t>(v));
    for (auto* p : step.stack.params()) in.params.push_back(read(s, p->w));
    s.check(run, [&] {
      const std::vector<double> loss = read(s, step.loss);
      std::vector<std::vector<double>> grads;
      for (auto* p : step.stack.params()) grads.push_back(read(s, p->dw));
      return check_stack_outputs(pt, in, loss, grads);
    });
  }
  s.exec(run);
  record_epilogues(s, ops);
});

}  // namespace
}  // namespace seqscale
