// Suite "steps": the GPT layer and stack (layers/transformer_layer) and the Evoformer block
// (layers/evoformer_block), each run for real on its fp32 CPU executor through the
// harness. Each point's allocator high-water mark equals the model's recorded program of
// the same point byte for byte (model_peak_bytes), over fresh random tiny configurations,
// and a point reports time, tokens/s and TFLOP/s.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <utility>
#include <vector>

#include "harness/bench/execute.h"
#include "tests/support/seed.h"

namespace seqscale {
namespace {

// One CPU point of suite "steps", one sample, no warm-up.
MatrixPoint cpu_step_point(nlohmann::json params, const std::string& bench) {
  MatrixPoint p;
  p.bench = bench;
  p.backend = "cpu";
  p.suite = "steps";
  p.timing.min_samples = 1;
  p.timing.max_samples = 1;
  p.timing.warmup_s = 0;
  p.timing.time_cap_s = 0;
  p.params = std::move(params);
  p.id = p.params.dump();
  return p;
}

// The GPT layer and a stack step of tiny-gpt under random plans and sizes: the measured peak
// is the recorded program's (the model's live peak for the point), and the point reports
// the step's throughput. seq is a multiple of 2 so tp = 2 with Megatron-SP divides it.
TEST(Steps, TransformerLayerAndStackPeakEqualsTheModelsProgram) {
  std::mt19937 rng(testing_support::test_seed());  // printed: SEQSCALE_TEST_SEED replays
  const std::vector<std::string> plans = {
      "attn=materialized,recompute=none,mask=fp32", "attn=materialized,recompute=selective,mask=bool",
      "attn=fused,recompute=none",                  "attn=fused,recompute=full",
      "tp=2,sp=megatron,attn=fused,recompute=selective",
  };
  for (int trial = 0; trial < 6; ++trial) {
    const std::int64_t seq = 2 * (3 + static_cast<std::int64_t>(rng() % 20));
    const std::string plan = plans[rng() % plans.size()];
    for (const char* bench : {"transformer_layer", "transformer_stack"}) {
      nlohmann::json params = {{"model", "tiny-gpt"}, {"plan", plan}, {"seq", seq}};
      if (std::string(bench) == "transformer_stack") params["vocab_chunk"] = 1 + static_cast<std::int64_t>(rng() % 200);
      const MatrixPoint p = cpu_step_point(params, bench);
      const PointResult r = execute_point(p);
      ASSERT_EQ(r.status, PointStatus::kOk) << r.reason << " " << p.id;
      const double measured = r.metrics.at("peak_bytes");
      EXPECT_GT(measured, 0);
      EXPECT_EQ(measured, r.metrics.at("model_peak_bytes")) << p.id;
      EXPECT_GT(r.stats.median, 0) << p.id;
      EXPECT_GT(r.metrics.at("tokens_per_s"), 0) << p.id;
      EXPECT_DOUBLE_EQ(r.metrics.at("tokens_per_s"), static_cast<double>(seq) / r.stats.median) << p.id;
      EXPECT_GT(r.metrics.at("TFLOPs"), 0) << p.id;
      EXPECT_EQ(r.metrics.count("mfu"), 0u) << p.id;  // utilisation only against a GPU's peak
    }
  }
}

TEST(Steps, BadPlanIsAFailedPointNamingTheField) {
  MatrixPoint p;
  p.bench = "transformer_layer";
  p.backend = "cpu";
  p.params = {{"model", "tiny-gpt"}, {"plan", "tp=3"}, {"seq", 64}};  // 4 heads
  const PointResult r = execute_point(p);
  EXPECT_EQ(r.status, PointStatus::kFailed);
  EXPECT_NE(r.reason.find("heads"), std::string::npos) << r.reason;
  EXPECT_EQ(r.reason.find('\n'), std::string::npos) << r.reason;
}

// The same check for the Evoformer block: the harness runs the fp32 CPU executor of the
// block definition; its allocator's peak equals the model's block program.
TEST(Steps, EvoformerBlockCpuPeakEqualsTheModelsProgram) {
  std::mt19937 rng(testing_support::test_seed());  // printed: SEQSCALE_TEST_SEED replays
  for (const char* attn : {"naive", "fused"}) {
    for (const char* stack : {"main", "extra_msa"}) {
      const std::int64_t n_res = 5 + static_cast<std::int64_t>(rng() % 9);  // awkward crops
      const MatrixPoint p = cpu_step_point(
          {{"model", "tiny-evoformer"}, {"attn", attn}, {"stack", stack}, {"n_res", n_res}}, "evoformer_block");
      const PointResult r = execute_point(p);
      ASSERT_EQ(r.status, PointStatus::kOk) << r.reason << " " << p.id;
      EXPECT_GT(r.metrics.at("peak_bytes"), 0);
      EXPECT_EQ(r.metrics.at("peak_bytes"), r.metrics.at("model_peak_bytes")) << p.id;
      EXPECT_GT(r.declared_flops, 0);
    }
  }
}

TEST(Steps, EvoformerBlockBadAxesAreFailedPointsNamingTheField) {
  const std::vector<std::pair<nlohmann::json, std::string>> cases = {
      {{{"model", "tiny-gpt"}, {"attn", "fused"}}, "not an Evoformer model"},
      {{{"model", "tiny-evoformer"}, {"attn", "flash"}}, "attn"},
      {{{"model", "tiny-evoformer"}, {"attn", "fused"}, {"stack", "template"}}, "stack"},
      {{{"model", "tiny-evoformer"}, {"attn", "fused"}, {"dtype", "bf16"}}, "dtype"},  // the CPU executor is fp32
      {{{"model", "tiny-evoformer"}, {"attn", "fused"}, {"n_res", 0}}, "n_res"},
  };
  for (const auto& [params, field] : cases) {
    MatrixPoint p;
    p.bench = "evoformer_block";
    p.backend = "cpu";
    p.params = params;
    const PointResult r = execute_point(p);
    EXPECT_EQ(r.status, PointStatus::kFailed) << params.dump();
    EXPECT_NE(r.reason.find(field), std::string::npos) << r.reason;
    EXPECT_EQ(r.reason.find('\n'), std::string::npos) << r.reason;
  }
}

}  // namespace
}  // namespace seqscale
