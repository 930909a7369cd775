// Op kinds: the one set of names for the work the cost model prices. A ComputeOp's
// `kernel`, a calibration file's compute key and what a benchmark measures are all names
// from this file, so the efficiency `seqscale calibrate` fits from a benchmark is the one
// the model prices that op at.
//
// A name is <family> or <family>_<pass> (pass: fwd, bwd):
//   - the model names the pass where the two passes are different kernels (the Evoformer
//     block's attention and LayerNorm, the GPT layer's recorded causal attention);
//   - it names the family where one efficiency serves both passes (gemm, elementwise) or
//     where a closed form prices the backward from the forward (the transformer's
//     attention and softmax).
// A calibration lookup falls back from a pass to its family (model/calibration.h), and
// `seqscale calibrate` fits a family from every point of the family.
//
// Benchmarks (STYLE.md: the benchmark name is the op name):
//   - a benchmark named after an op kind measures that op kind ("gemm", "layernorm_fwd");
//   - a benchmark named after a collective (collective_name()) measures that collective;
//   - the few named otherwise are mapped in op_kinds.cc, one line each with what their
//     timing covers ("evoformer_attn_fused_fwd" measures attention_fused_fwd,
//     "causal_attention_fwdbwd" the family causal_attention);
//   - the ones that time no single op (a whole step, the copy ceiling) are listed there
//     too, with the reason. Every registered benchmark is one of these four
//     (tests/harness/calibrate_test.cpp checks it).
#pragma once
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "workloads/step_program.h"

namespace seqscale {

// The op kinds. char arrays, so that a name passes as `const char*` and `std::string_view`.
namespace op_kind {
inline constexpr char kGemm[] = "gemm";                           // dense (batched) matmul, either pass
inline constexpr char kAttentionFused[] = "attention_fused";      // the Evoformer's: one kernel, logits never in HBM
inline constexpr char kAttentionFusedFwd[] = "attention_fused_fwd";
inline constexpr char kAttentionFusedBwd[] = "attention_fused_bwd";
// The GPT layer's causal self-attention (kernels/causal_attention: FlashAttention-2 style,
// masked tiles skipped, the s^2 work halved), apart from the Evoformer's gated pair-biased
// attention_fused: a different kernel, head sizes and shapes, so its own efficiency.
inline constexpr char kCausalAttention[] = "causal_attention";
inline constexpr char kCausalAttentionFwd[] = "causal_attention_fwd";
inline constexpr char kCausalAttentionBwd[] = "causal_attention_bwd";
inline constexpr char kAttentionNaive[] = "attention_naive";      // QK^T, softmax, PV: logits in HBM
inline constexpr char kAttentionNaiveFwd[] = "attention_naive_fwd";
inline constexpr char kAttentionNaiveBwd[] = "attention_naive_bwd";
inline constexpr char kSoftmax[] = "softmax";                     // row softmax of materialized logits
inline constexpr char kSoftmaxFwd[] = "softmax_fwd";
inline constexpr char kSoftmaxBwd[] = "softmax_bwd";
inline constexpr char kLayernorm[] = "layernorm";
inline constexpr char kLayernormFwd[] = "layernorm_fwd";
inline constexpr char kLayernormBwd[] = "layernorm_bwd";
inline constexpr char kElementwise[] = "elementwise";             // bias, activation, gating, residual
inline constexpr char kPermute[] = "permute";                     // a strided copy between layouts
inline constexpr char kCrossEntropy[] = "cross_entropy";          // the loss, forward and backward
inline constexpr char kOptimizer[] = "optimizer";                 // the fused Adam step on the shard
}  // namespace op_kind

struct OpKind {
  std::string_view name;
  std::string_view family;  // the name itself for a family, "attention_fused" for "attention_fused_bwd"
};

// Every op kind, each family before its passes.
std::span<const OpKind> op_kinds();
const OpKind* find_op_kind(std::string_view name);
// Throws std::logic_error naming the name and this file when it is not an op kind: a
// model that prices an op under another name would never see its calibrated efficiency.
const OpKind& op_kind_named(std::string_view name);
std::string op_kind_list();  // "gemm, attention_fused, ...": for error messages

// The collective named by collective_name() (workloads/step_program.h), if any.
std::optional<Collective> collective_named(std::string_view name);

// What a registered benchmark's timing measures: one op kind, one collective, or nothing
// the model prices as one op (then the reason, for `seqscale calibrate`'s notes). A name
// that is none of the three is a benchmark nobody classified.
std::optional<std::string_view> bench_op_kind(std::string_view bench);
std::optional<Collective> bench_collective(std::string_view bench);
std::optional<std::string_view> bench_without_op_kind(std::string_view bench);
// The benchmark names that measure an op kind: those named otherwise (op_kinds.cc) first,
// then the op kind's own name, which measures it by convention once such a benchmark exists.
std::vector<std::string_view> benches_measuring(std::string_view op_kind);

}  // namespace seqscale
