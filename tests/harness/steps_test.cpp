// The CPU executor of a training step: its allocator's high-water mark equals the model's
// StepProgram replay and the closed-form live peak, byte for byte, over fresh random
// tiny configurations (issue 3's self-consistency check).
#include <gtest/gtest.h>

#include <random>
#include <utility>
#include <vector>

#include "harness/bench/execute.h"
#include "tests/support/seed.h"

namespace seqscale {
namespace {

// One CPU point of suite "steps", one sample, no warm-up.
MatrixPoint cpu_step_point(nlohmann::json params, const std::string& bench = "transformer_step") {
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

TEST(Steps, CpuExecutorPeakEqualsTheModelsMemory) {
  std::mt19937 rng(testing_support::test_seed());  // printed: SEQSCALE_TEST_SEED replays
  const std::vector<std::string> plans = {
      "tp=1,pp=1,zero=0,recompute=none,attn=naive,mask=fp32",
      "tp=1,pp=1,zero=0,recompute=selective,attn=naive,mask=bool",
      "tp=1,pp=1,zero=1,recompute=full,attn=fused,mask=none",
      "tp=1,pp=1,zero=2,recompute=full,attn=fused,mask=none,offload=optimizer",
  };
  for (int trial = 0; trial < 6; ++trial) {
    const std::int64_t seq = 16 * (1 + static_cast<std::int64_t>(rng() % 16));
    const std::int64_t mb = 1 + static_cast<std::int64_t>(rng() % 2);
    const MatrixPoint p = cpu_step_point(
        {{"model", "tiny-gpt"}, {"plan", plans[rng() % plans.size()]}, {"seq", seq}, {"micro_batch", mb}});
    const PointResult r = execute_point(p);
    ASSERT_EQ(r.status, PointStatus::kOk) << r.reason << " " << p.id;
    const double measured = r.metrics.at("peak_bytes");
    EXPECT_GT(measured, 0);
    EXPECT_EQ(measured, r.metrics.at("replay_peak_bytes")) << p.id;
    EXPECT_EQ(measured, r.metrics.at("program_replay_peak_bytes")) << p.id;
    EXPECT_NEAR(measured, r.metrics.at("model_live_peak_bytes"), 2.0) << p.id;  // llround of each term
    EXPECT_GT(r.metrics.at("tokens_per_s"), 0);
    EXPECT_GT(r.declared_flops, 0);
  }
}

// One rank of an LSS step (tiny-gpt over 2 segments) and of a MoE step (tiny-moe, experts
// over 2 data-parallel ranks): the executed peak is the model's for those plan keys too.
TEST(Steps, CpuExecutorPeakEqualsTheModelsMemoryForLssAndMoe) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"tiny-gpt", "sp=lss,sp_degree=2,recompute=none,attn=naive"},
      {"tiny-gpt", "sp=lss,sp_degree=2,zero=1,recompute=full,attn=fused"},
      {"tiny-moe", "ep=2,zero=1,recompute=none,attn=fused"},
      {"tiny-moe", "ep=2,zero=3,recompute=full,attn=fused"},
  };
  for (const auto& [model, plan] : cases) {
    const MatrixPoint p = cpu_step_point({{"model", model}, {"plan", plan}, {"seq", 256}, {"gpus", 2}});
    const PointResult r = execute_point(p);
    ASSERT_EQ(r.status, PointStatus::kOk) << r.reason << " " << p.id;
    const double measured = r.metrics.at("peak_bytes");
    EXPECT_EQ(measured, r.metrics.at("program_replay_peak_bytes")) << p.id;
    EXPECT_NEAR(measured, r.metrics.at("model_live_peak_bytes"), 2.0) << p.id;
  }
}

TEST(Steps, BadPlanIsAFailedPointNamingTheField) {
  MatrixPoint p;
  p.bench = "transformer_step";
  p.backend = "cpu";
  p.params = {{"model", "tiny-gpt"}, {"plan", "tp=3"}, {"seq", 64}};
  const PointResult r = execute_point(p);
  EXPECT_EQ(r.status, PointStatus::kFailed);
  EXPECT_NE(r.reason.find("tp"), std::string::npos) << r.reason;
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
