// One name per op kind: the model's programs price only op kinds (workloads/op_kinds.h),
// a pass falls back to its family, and a calibration keyed by anything else is refused,
// in a file and in a lookup.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <variant>

#include "model/calibration.h"
#include "model/estimate.h"
#include "layers/evoformer_block/evoformer_block_program.h"
#include "model/evoformer_program.h"
#include "model/transformer_program.h"
#include "tests/support/errors.h"
#include "workloads/op_kinds.h"
#include "workloads/plan.h"

namespace seqscale {
namespace {

TEST(OpKinds, EachPassNamesItsFamily) {
  for (const OpKind& k : op_kinds()) {
    const OpKind* family = find_op_kind(k.family);
    ASSERT_NE(family, nullptr) << k.name;
    EXPECT_EQ(family->family, family->name) << k.name << ": a family is its own family";
    if (k.family != k.name) {
      EXPECT_TRUE(k.name == std::string(k.family) + "_fwd" || k.name == std::string(k.family) + "_bwd") << k.name;
    }
  }
  EXPECT_EQ(op_kind_named(op_kind::kAttentionFusedBwd).family, op_kind::kAttentionFused);
  EXPECT_THROW(op_kind_named("evoformer_attn_fused_fwd"), std::logic_error);
}

TEST(OpKinds, BenchmarksMapToTheOpKindTheyMeasure) {
  EXPECT_EQ(bench_op_kind("evoformer_attn_fused_fwd"), op_kind::kAttentionFusedFwd);
  EXPECT_EQ(bench_op_kind("evoformer_attn_naive_fwdbwd"), op_kind::kAttentionNaive);  // both passes: the family
  EXPECT_EQ(bench_op_kind("layernorm_bwd"), op_kind::kLayernormBwd);                   // named after its op kind
  EXPECT_EQ(bench_op_kind("evoformer_block"), std::nullopt);
  EXPECT_TRUE(bench_without_op_kind("evoformer_block").has_value());
  EXPECT_EQ(bench_collective("all_to_all"), Collective::kAllToAll);
  EXPECT_EQ(bench_op_kind("all_to_all"), std::nullopt);
  EXPECT_EQ(benches_measuring(op_kind::kAttentionFusedFwd).front(), "evoformer_attn_fused_fwd");
  EXPECT_EQ(benches_measuring(op_kind::kGemm), std::vector<std::string_view>{"gemm"});
  // The GPT layer's causal attention is its own op kind, not the Evoformer's fused one.
  EXPECT_EQ(bench_op_kind("causal_attention_fwd"), op_kind::kCausalAttentionFwd);
  EXPECT_EQ(bench_op_kind("causal_attention_fwdbwd"), op_kind::kCausalAttention);
  EXPECT_EQ(op_kind_named(op_kind::kCausalAttentionBwd).family, op_kind::kCausalAttention);
  EXPECT_EQ(benches_measuring(op_kind::kCausalAttention).front(), "causal_attention_fwdbwd");
  EXPECT_TRUE(std::ranges::none_of(benches_measuring(op_kind::kAttentionFused),
                                   [](std::string_view b) { return b.starts_with("causal"); }));
}

// The transformer's attention is priced as causal_attention, recorded and in closed form:
// its efficiency moves the GPT step and leaves the Evoformer's alone.
TEST(OpKinds, TheTransformersAttentionIsPricedAsCausalAttention) {
  const ModelSpec gpt = load_model("tiny-gpt");
  Plan p = parse_plan("attn=fused");
  validate_plan(p, gpt, 1, RunShape{256});
  int causal = 0;
  for (const StepOp& op : build_transformer_program(gpt.transformer(), p, RunShape{256}).ops) {
    if (const auto* c = std::get_if<ComputeOp>(&op)) {
      EXPECT_FALSE(c->kernel.starts_with("attention_fused")) << c->kernel;
      causal += c->kernel.starts_with("causal_attention");
    }
  }
  EXPECT_GT(causal, 0);
  const ClusterSpec h100 = load_cluster("h100");
  Calibration slow = default_calibration();
  slow.compute[op_kind::kCausalAttention] = 0.01;
  const auto step = [&](const char* model, const Calibration& cal) {
    return estimate(load_model(model), h100, parse_plan("attn=fused"), 1, RunShape{0, 1, 0}, cal).time.step;
  };
  EXPECT_DOUBLE_EQ(step("tiny-evoformer", slow), step("tiny-evoformer", default_calibration()));
  const auto gpt_step = [&](const Calibration& cal) {
    return estimate(gpt, h100, parse_plan("attn=fused"), 1, RunShape{1024, 1, 0}, cal).time.step;
  };
  EXPECT_GT(gpt_step(slow), gpt_step(default_calibration()));
}

void expect_only_op_kinds(const StepProgram& prog, const std::string& what) {
  int compute_ops = 0;
  for (const StepOp& op : prog.ops) {
    if (const auto* c = std::get_if<ComputeOp>(&op)) {
      ++compute_ops;
      EXPECT_NE(find_op_kind(c->kernel), nullptr) << what << ": ComputeOp '" << c->kernel << "' is not an op kind";
    }
  }
  EXPECT_GT(compute_ops, 0) << what;
}

TEST(OpKinds, ModelProgramsPriceOnlyOpKinds) {
  const EvoformerSpec ev = load_model("tiny-evoformer").evoformer();
  for (bool fused : {false, true}) {
    expect_only_op_kinds(build_evoformer_block_program(EvoformerBlockDims::from_spec(ev), DType::kBf16, fused),
                         "evoformer block");
    expect_only_op_kinds(
        build_evoformer_block_program(EvoformerBlockDims::extra_msa_from_spec(ev), DType::kBf16, fused),
        "extra-MSA block");
    Plan p = parse_plan(fused ? "attn=fused" : "attn=materialized");
    validate_plan(p, load_model("tiny-evoformer"), 1, RunShape{ev.n_res});
    expect_only_op_kinds(build_evoformer_program(ev, p, RunShape{ev.n_res}), "evoformer step");
  }
  const ModelSpec gpt = load_model("tiny-gpt");
  for (const char* plan : {"attn=fused", "attn=materialized,recompute=full", "tp=2,pp=2,sp=megatron"}) {
    Plan p = parse_plan(plan);
    validate_plan(p, gpt, 4, RunShape{256});
    expect_only_op_kinds(build_transformer_program(gpt.transformer(), p, RunShape{256}), plan);
  }
}

TEST(OpKinds, APassFallsBackToItsFamilyAndItsOwnSizeClassWins) {
  Calibration cal = default_calibration();
  EXPECT_DOUBLE_EQ(cal.compute_efficiency(op_kind::kAttentionFusedBwd), cal.compute.at(op_kind::kAttentionFused));
  EXPECT_DOUBLE_EQ(cal.compute_efficiency(op_kind::kPermute), cal.default_compute_efficiency);  // no key at all
  cal.compute[Calibration::size_class_key(op_kind::kAttentionFused, 30)] = 0.3;
  EXPECT_DOUBLE_EQ(cal.compute_efficiency(op_kind::kAttentionFusedBwd, 1.5e9), 0.3);  // the family's class 30
  cal.compute[op_kind::kAttentionFusedBwd] = 0.4;
  EXPECT_DOUBLE_EQ(cal.compute_efficiency(op_kind::kAttentionFusedBwd, 1.5e9), 0.4);  // its own key first
  cal.compute[Calibration::size_class_key(op_kind::kAttentionFusedBwd, 31)] = 0.45;
  EXPECT_DOUBLE_EQ(cal.compute_efficiency(op_kind::kAttentionFusedBwd, 1.5e9), 0.45);  // its own nearest class
  EXPECT_DOUBLE_EQ(cal.compute_efficiency(op_kind::kAttentionFusedFwd, 1.5e9), 0.3);   // a sibling: the family's
}

TEST(OpKinds, ACalibrationKeyedByAnythingElseIsRefused) {
  const Calibration cal = default_calibration();
  EXPECT_THROW(cal.compute_efficiency("evoformer_attn_fused_fwd"), std::logic_error);
  EXPECT_THROW(cal.compute_efficiency("attention", 1e9), std::logic_error);
  const std::string path = ::testing::TempDir() + "/seqscale_op_kinds_cal.json";
  auto load = [&](const std::string& compute) {
    std::ofstream(path) << R"({"schema": "seqscale.calibration/1", "compute_efficiency": )" << compute << "}";
    return testing_support::error_of([&] { load_calibration(path); });
  };
  EXPECT_EQ(load(R"({"attention_fused_fwd": 0.5, "gemm@40": 0.8, "gemm@-2": 0.1})"), "");
  for (const char* bad : {"evoformer_attn_fused_fwd", "copy", "gemm@", "gemm@4x", "gemmx@40"}) {
    const std::string e = load(std::string(R"({")") + bad + R"(": 0.5})");
    EXPECT_NE(e.find(std::string("compute_efficiency.") + bad), std::string::npos) << e;
    EXPECT_NE(e.find("is not an op kind"), std::string::npos) << e;
  }
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace seqscale
