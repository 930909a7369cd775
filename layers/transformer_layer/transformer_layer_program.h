// The StepProgram of the GPT layer and of a stack step, recorded by running
// transformer_layer_def.h / transformer_stack_def.h on a backend that executes nothing:
// every call becomes a ComputeOp (FLOPs, compulsory bytes, an op-kind name model/
// calibration.cc prices), every alloc/release a MemoryEvent, every collective the CommOp
// the definition took from its emitter (workloads/parallel/), recorded as is.
// The CPU executor (layers/transformer_layer/) runs the same text, so replaying this
// program gives its measured peak byte for byte (tests/layers/), and the model prices
// the tensors and kernels that run, not a closed form of them.
//
// Element sizes: Elem::kIo in `dtype`; kFp32 4 B (norm statistics, log-sum-exp, parameter
// gradients, master weights and Adam moments); kBool 1 B; kInt32 4 B.
// Op kinds: gemm (projections, MLP, logits), causal_attention_fwd / _bwd (the fused causal
// kernel, kernels/causal_attention: not the Evoformer's attention_fused), attention_naive
// (the materialized path's batched products, each the full s x s: a GEMM skips no masked
// tile), softmax (masked softmax and its backward),
// layernorm (LayerNorm and RMSNorm, both passes), elementwise (bias, activations,
// residuals, rotary, embedding, copies), cross_entropy (the chunked loss's online
// softmax), optimizer (Adam).
#pragma once
#include <cstdint>

#include "workloads/dtype.h"
#include "workloads/step_program.h"
#include "layers/transformer_layer/transformer_stack_def.h"

namespace seqscale {

// One layer: x, mask, dy, dx and the weights allocated first (TransformerLayerStep), then
// forward and backward.
// tp_rank: the rank's index in its TP group. Memory and collectives are the same on every
// rank; the embedding's cost is not (TP rank 0 adds the position table).
StepProgram build_transformer_layer_program(const TransformerLayerDims& d, MaskKind mask, DType dtype, int tp_rank = 0);
// One training step of the stack (TransformerStackStep): states, inputs, the step, Adam.
StepProgram build_transformer_stack_program(const TransformerStackDims& d, DType dtype, int tp_rank = 0);

}  // namespace seqscale
