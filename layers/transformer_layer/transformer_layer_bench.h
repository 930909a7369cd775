// What the CPU and CUDA bodies of the "transformer_layer" and "transformer_stack" benches
// share (transformer_layer_bench.cpp, transformer_layer_bench.cu): the point's axes, the
// model's StepProgram of the same point declared to the harness (its FLOPs and bytes, its
// peak as metric model_peak_bytes, tokens_per_step), whether the double reference can
// check it within the check budget, and the model's side of `bench --source model`.
//
// Axes: model (a transformer model file or HF config.json), plan (attn, recompute, mask,
// tp, sp, sp_degree: --plan's syntax), seq, micro_batch [1], dtype [the backend's default];
// stack only: layers [the model's], vocab_chunk [128]. Optional overrides of the model's
// layer: mlp (gelu | swiglu), norm (layernorm | rmsnorm), residual (sequential | parallel),
// hidden, heads, ffn_hidden (e.g. genslm-25b with hidden 8192: head size 128). CUDA only:
// gemm_epilogues [1] (0: the MLP's bias and GELU apart from its GEMMs; metric
// fused_gemm_fraction says how many fused-GEMM calls ran as cuBLASLt epilogues), attn_bwd
// [deterministic] (atomic: the fused backward's dQ with atomics and an fp32 accumulator).
#pragma once
#include <initializer_list>
#include <memory>
#include <vector>

#include "harness/bench/registry.h"
#include "layers/transformer_layer/transformer_layer_cpu.h"

namespace seqscale {

struct TransformerBenchPoint {
  TransformerStackDims dims;  // .layer for the layer bench
  MaskKind mask = MaskKind::kNone;
  DType io = DType::kFp32;
  bool checkable = false;
  std::shared_ptr<const StepProgram> program;
};

// Parses the axes, records and declares the program. `dtypes` lists what the backend
// runs, the first being its default. Returns false on the model's side (`bench --source
// model`, maxseq's prediction), where the program's memory events were replayed through
// the state's allocator and nothing is left to do.
bool setup_transformer_point(BenchState& s, bool stack, std::initializer_list<DType> dtypes, TransformerBenchPoint& pt);

// The checked call's verdict, one text for both backends: dx and every parameter gradient
// (the stack: its loss and every gradient) against the double reference run on the inputs
// read before the call, at transformer_layer_tolerance(pt.io).
CheckResult check_layer_outputs(const TransformerBenchPoint& pt, const TransformerLayerInputs& in,
                                const std::vector<double>& dx, const std::vector<std::vector<double>>& grads);
CheckResult check_stack_outputs(const TransformerBenchPoint& pt, const TransformerStackInputs& in,
                                const std::vector<double>& loss, const std::vector<std::vector<double>>& grads);

}  // namespace seqscale
