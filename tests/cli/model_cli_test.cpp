// CLI contract of the cost-model verbs (scripts depend on it): predict prints one JSON
// object with the documented keys, maxseq a JSON array of {gpus, preset, max_seq, plan,
// binding}, validate a row per anchor; bad input is one line and exit 2.
#include <gtest/gtest.h>

#include "tests/support/binary.h"
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

namespace {

const std::string kSeqscale = seqscale::testing_support::seqscale_binary();

struct Out {
  int code;
  std::string text;
};

Out run_cli(const std::string& args, bool with_stderr = true) {
  const std::string cmd = kSeqscale + " " + args + (with_stderr ? " 2>&1" : " 2>/dev/null");
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  std::string out;
  std::array<char, 4096> buf{};
  while (fgets(buf.data(), buf.size(), pipe.get())) out += buf.data();
  const int rc = pclose(pipe.release());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

TEST(ModelCli, PredictJsonHasTheContractKeys) {
  const Out r = run_cli(
      "predict --model genslm-25b --cluster dgx-a100-40g --gpus 16 "
      "--plan tp=8,pp=2,sp=megatron,zero=1,recompute=full,attn=fused,mask=none,offload=none --seq 65536 --json",
      false);
  ASSERT_EQ(r.code, 0) << r.text;
  const auto j = nlohmann::json::parse(r.text);
  for (const char* key : {"fits", "memory", "time", "throughput", "mfu"}) EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_TRUE(j["memory"].contains("peak_bytes"));
  EXPECT_TRUE(j["memory"]["breakdown"].is_object());
  EXPECT_TRUE(j["memory"]["binding"].is_string());
  EXPECT_TRUE(j["time"].contains("step_s"));
  EXPECT_TRUE(j["time"]["breakdown"].is_object());
  EXPECT_TRUE(j["throughput"].contains("tokens_per_s"));
  EXPECT_TRUE(j["throughput"].contains("tflops_per_gpu"));
  EXPECT_GT(j["time"]["step_s"].get<double>(), 0.0);
}

TEST(ModelCli, PredictRejectsBadPlansInOneLine) {
  for (const char* plan : {"tp=3", "tp=8,pp=4,dp=4", "bogus=1", "zero=9"}) {
    const Out r = run_cli("predict --model genslm-25b --cluster dgx-a100-40g --gpus 16 --seq 8192 --plan " + std::string(plan));
    EXPECT_EQ(r.code, 2) << plan << ": " << r.text;
    EXPECT_EQ(std::count(r.text.begin(), r.text.end(), '\n'), 1) << r.text;
    EXPECT_NE(r.text.find("--plan"), std::string::npos) << r.text;
  }
  const Out missing = run_cli("predict --model genslm-25b --cluster dgx-a100-40g --gpus 16");
  EXPECT_EQ(missing.code, 2);
}

TEST(ModelCli, MaxseqJsonArray) {
  const Out r = run_cli("maxseq --model genslm-25b --cluster dgx-a100-40g --gpus 16,32,64 --preset seqscale-best --json", false);
  ASSERT_EQ(r.code, 0) << r.text;
  const auto j = nlohmann::json::parse(r.text);
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 3u);
  std::int64_t prev = 0;
  for (const auto& row : j) {
    for (const char* key : {"gpus", "preset", "max_seq", "plan", "binding"}) EXPECT_TRUE(row.contains(key)) << key;
    EXPECT_GT(row["max_seq"].get<std::int64_t>(), prev);
    prev = row["max_seq"].get<std::int64_t>();
  }
  const Out f = run_cli("maxseq --model genslm-25b --cluster dgx-a100-40g --gpus 16 --preset megatron-lm --at-seq 8192 --json", false);
  ASSERT_EQ(f.code, 0) << f.text;
  const auto fj = nlohmann::json::parse(f.text);
  EXPECT_TRUE(fj[0]["fastest"]["found"].get<bool>());
  EXPECT_GT(fj[0]["fastest"]["tokens_per_s"].get<double>(), 0.0);
  EXPECT_EQ(run_cli("maxseq --model genslm-25b --cluster dgx-a100-40g --gpus 16 --preset nope").code, 2);
  EXPECT_EQ(run_cli("maxseq --model genslm-25b --cluster dgx-a100-40g --gpus 16,x").code, 2);
}

TEST(ModelCli, ValidatePrintsEveryAnchor) {
  const Out r = run_cli("validate --json", false);
  ASSERT_TRUE(r.code == 0 || r.code == 1) << r.text;  // 1: a claimed row is outside tolerance
  const auto j = nlohmann::json::parse(r.text);
  int failed = 0;
  for (const auto& row : j) {
    for (const char* key : {"name", "published", "predicted", "error", "ok", "claimed"}) EXPECT_TRUE(row.contains(key));
    failed += (row["claimed"].get<bool>() && !row["ok"].get<bool>()) ? 1 : 0;
  }
  EXPECT_EQ(r.code, failed > 0 ? 1 : 0);
  EXPECT_EQ(failed, 0);  // issue 3: validate passes, and CI runs it
  EXPECT_GE(j.size(), 18u + 4u + 1u);
}

}  // namespace
