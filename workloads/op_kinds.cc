#include "workloads/op_kinds.h"

#include <algorithm>
#include <array>
#include <stdexcept>

namespace seqscale {
namespace {

using namespace op_kind;

constexpr auto kOpKinds = std::to_array<OpKind>({
    {kGemm, kGemm},
    {kAttentionFused, kAttentionFused},
    {kAttentionFusedFwd, kAttentionFused},
    {kAttentionFusedBwd, kAttentionFused},
    {kCausalAttention, kCausalAttention},
    {kCausalAttentionFwd, kCausalAttention},
    {kCausalAttentionBwd, kCausalAttention},
    {kAttentionNaive, kAttentionNaive},
    {kAttentionNaiveFwd, kAttentionNaive},
    {kAttentionNaiveBwd, kAttentionNaive},
    {kSoftmax, kSoftmax},
    {kSoftmaxFwd, kSoftmax},
    {kSoftmaxBwd, kSoftmax},
    {kLayernorm, kLayernorm},
    {kLayernormFwd, kLayernorm},
    {kLayernormBwd, kLayernorm},
    {kElementwise, kElementwise},
    {kPermute, kPermute},
    {kCrossEntropy, kCrossEntropy},
    {kOptimizer, kOptimizer},
});

struct BenchOpKind {
  std::string_view bench;
  std::string_view op_kind;
};

// The benchmarks whose name is not the op kind they measure, grouped by the op kind the
// model prices their kernel as. Their names stay: a point id (suite/bench/backend/axes)
// is the key `seqscale gate` compares runs by.
constexpr auto kRenamedBenches = std::to_array<BenchOpKind>({
    // Fused attention: the Evoformer's (gated, pair bias). A "fwdbwd" benchmark times the
    // forward and the backward together: the family.
    {"evoformer_attn_fused_fwd", kAttentionFusedFwd},
    {"evoformer_attn_fused_fwdbwd", kAttentionFused},
    // The GPT layer's causal attention ("causal_attention_fwd" is its op kind's own name).
    {"causal_attention_fwdbwd", kCausalAttention},
    // Materialized attention; the CPU reference computes the same (calibrate refuses CPU
    // results; `bench --source model` prices its points as that op).
    {"evoformer_attn_naive_fwd", kAttentionNaiveFwd},
    {"evoformer_attn_naive_fwdbwd", kAttentionNaive},
    {"evoformer_attn_ref_fwd", kAttentionNaiveFwd},
    // Norms: the model prices RMSNorm as a LayerNorm (one pass over the rows, no mean).
    {"rmsnorm_fwd", kLayernormFwd},
    {"rmsnorm_bwd", kLayernormBwd},
    // Fused elementwise kernels of the GPT layer.
    {"bias_gelu_fwd", kElementwise},
    {"bias_gelu_bwd", kElementwise},
    {"swiglu_fwd", kElementwise},
    {"swiglu_bwd", kElementwise},
    {"rotary_fwd", kElementwise},
    {"rotary_bwd", kElementwise},
    // The cross-entropy over given logits (either pass: the model prices the loss as one op).
    {"cross_entropy_logits_fwd", kCrossEntropy},
    {"cross_entropy_logits_bwd", kCrossEntropy},
});

struct BenchWithoutOpKind {
  std::string_view bench;
  std::string_view why;
};

constexpr auto kBenchesWithoutOpKind = std::to_array<BenchWithoutOpKind>({
    {"copy", "the device's copy bandwidth: the ceiling efficiencies are read against, not an op the model prices"},
    {"evoformer_block", "a whole Evoformer block: the model prices it op by op from its program"},
    {"transformer_layer", "a whole GPT layer (forward and backward): the model prices it op by op from its program"},
    {"transformer_stack", "a whole GPT training step: the model prices it op by op from its program"},
    {"cross_entropy_fwd", "the fused vocabulary head (logits GEMM and cross-entropy): the model prices gemm and cross_entropy"},
    {"cross_entropy_bwd", "the fused vocabulary head (logits GEMM and cross-entropy): the model prices gemm and cross_entropy"},
    {"selftest", "the harness's own test benchmark (isolation, planted failures, memory budgets)"},
});

}  // namespace

std::span<const OpKind> op_kinds() { return kOpKinds; }

const OpKind* find_op_kind(std::string_view name) {
  const auto it = std::ranges::find(kOpKinds, name, &OpKind::name);
  return it == kOpKinds.end() ? nullptr : &*it;
}

const OpKind& op_kind_named(std::string_view name) {
  if (const OpKind* k = find_op_kind(name)) return *k;
  throw std::logic_error("'" + std::string(name) + "' is not an op kind (workloads/op_kinds.h: " + op_kind_list() + ")");
}

std::string op_kind_list() {
  std::string s;
  for (const OpKind& k : kOpKinds) s += (s.empty() ? "" : ", ") + std::string(k.name);
  return s;
}

std::optional<Collective> collective_named(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(Collective::kSendRecv); ++i) {
    const auto c = static_cast<Collective>(i);
    if (collective_name(c) == name) return c;
  }
  return std::nullopt;
}

std::optional<std::string_view> bench_op_kind(std::string_view bench) {
  if (const auto it = std::ranges::find(kRenamedBenches, bench, &BenchOpKind::bench); it != kRenamedBenches.end()) {
    return it->op_kind;
  }
  if (const OpKind* k = find_op_kind(bench)) return k->name;
  return std::nullopt;
}

std::optional<Collective> bench_collective(std::string_view bench) { return collective_named(bench); }

std::optional<std::string_view> bench_without_op_kind(std::string_view bench) {
  const auto it = std::ranges::find(kBenchesWithoutOpKind, bench, &BenchWithoutOpKind::bench);
  return it == kBenchesWithoutOpKind.end() ? std::nullopt : std::optional(it->why);
}

std::vector<std::string_view> benches_measuring(std::string_view op_kind) {
  std::vector<std::string_view> out;
  for (const BenchOpKind& b : kRenamedBenches) {
    if (b.op_kind == op_kind) out.push_back(b.bench);
  }
  out.push_back(op_kind_named(op_kind).name);
  return out;
}

}  // namespace seqscale
