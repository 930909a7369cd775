// seqscale gate through the binary: exit codes (0 PASS or INCONCLUSIVE, 1 FAIL, 2 bad input),
// cross-device refusal, the Markdown and JSON outputs, --baseline-dir, --update-baseline's
// stamp and refusals, and the model gate CI runs (model-snapshot against itself, and a
// moved prediction failing with the diff).
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "harness/gate.h"
#include "harness/results/results.h"
#include "tests/support/binary.h"

namespace seqscale {
namespace {

const std::string kBinary = testing_support::seqscale_binary();

struct Ran {
  int code;
  std::string output;
};

Ran run(const std::string& args) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen((kBinary + " " + args + " 2>&1").c_str(), "r"), pclose);
  std::string out;
  std::array<char, 4096> buf{};
  while (fgets(buf.data(), buf.size(), pipe.get())) out += buf.data();
  const int rc = pclose(pipe.release());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class GateCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::temp_directory_path() / ("seqscale_gate_cli_" + std::to_string(::getpid()) + "_" +
                                                      ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Two points with 7 runs each; `slower` scales point 1's runs.
  std::string write(const std::string& name, double slower = 1, const std::string& device = "GPU-X",
                    const std::string& commit = "c0ffee") {
    ResultsFile f;
    f.run.device = device;
    f.run.git_commit = commit;
    f.run.started_utc = "2026-01-01T00:00:00Z";
    for (int i = 0; i < 2; ++i) {
      PointResult p;
      p.id = "kernels/k/cuda/i=" + std::to_string(i);
      const double scale = (i == 1 ? slower : 1) * 1e-3;
      for (double x : {1.000, 1.002, 0.998, 1.001, 0.999, 1.003, 0.997}) p.runs_median_s.push_back(x * scale);
      p.samples_s = p.runs_median_s;
      p.metrics["peak_bytes"] = 4096;
      finalize_point(p);
      f.points.push_back(p);
    }
    const std::string path = dir_ + "/" + name;
    write_results_atomic(f, path);
    return path;
  }

  std::string dir_;
};

TEST_F(GateCli, ExitCodesFollowTheVerdict) {
  const std::string base = write("base.json");
  Ran r = run("gate " + base + " " + write("same.json"));
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("overall: PASS"), std::string::npos) << r.output;
  r = run("gate " + base + " " + write("slow.json", 1.10));
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("overall: FAIL"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("slower by 10.0%"), std::string::npos) << r.output;
  r = run("gate " + base + " " + write("fast.json", 0.90));
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("faster by"), std::string::npos) << r.output;
  // INCONCLUSIVE exits 0: 5% slower, beyond a 4% band but not significant at alpha 1e-4.
  r = run("gate --min-band 0.04 " + base + " " + write("bit.json", 1.05) + " --alpha 0.0001");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("overall: INCONCLUSIVE"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("runs a side"), std::string::npos) << r.output;
}

TEST_F(GateCli, BadInputExitsTwoWithOneLine) {
  const std::string base = write("base.json");
  Ran r = run("gate " + base + " " + dir_ + "/missing.json");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("missing.json"), std::string::npos) << r.output;
  std::ofstream(dir_ + "/torn.json") << "{\"schema\": ";
  r = run("gate " + base + " " + dir_ + "/torn.json");
  EXPECT_EQ(r.code, 2) << r.output;
  r = run("gate " + base);
  EXPECT_EQ(r.code, 2) << r.output;
  r = run("gate " + base + " " + base + " --alpha 2");
  EXPECT_EQ(r.code, 2) << r.output;
}

TEST_F(GateCli, DifferentDevicesAreRefused) {
  const Ran r = run("gate " + write("h100.json", 1, "NVIDIA H100 80GB HBM3") + " " +
                    write("h200.json", 1, "NVIDIA H200"));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("refusing to compare results from different devices"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("'NVIDIA H100 80GB HBM3'"), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
}

TEST_F(GateCli, MarkdownAndJsonOutputs) {
  const std::string md = dir_ + "/gate.md", js = dir_ + "/gate.json";
  Ran r = run("gate " + write("base.json") + " " + write("slow.json", 1.10) + " --markdown " + md + " --json-out " + js);
  EXPECT_EQ(r.code, 1);
  const std::string text = read_file(md);
  EXPECT_NE(text.find("## seqscale gate: **FAIL**"), std::string::npos) << text;
  EXPECT_NE(text.find("### FAIL"), std::string::npos) << text;
  EXPECT_NE(text.find("`kernels/k/cuda/i=1`"), std::string::npos) << text;
  const auto j = nlohmann::json::parse(read_file(js));
  EXPECT_EQ(j["overall"], "FAIL");
  EXPECT_EQ(j["rows"][1]["outcome"], "FAIL");
  r = run("gate " + write("b2.json") + " " + write("c2.json") + " --json");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(nlohmann::json::parse(r.output)["overall"], "PASS");
}

TEST_F(GateCli, BaselineDirPicksTheDevicesFile) {
  std::filesystem::create_directories(dir_ + "/baselines");
  const std::string cand = write("cand.json", 1, "NVIDIA H100 80GB HBM3");
  Ran r = run("gate --baseline-dir " + dir_ + "/baselines " + cand);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("no baseline for device 'NVIDIA H100 80GB HBM3'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("nvidia-h100-80gb-hbm3.json"), std::string::npos) << r.output;
  r = run("gate --update-baseline --baseline-dir " + dir_ + "/baselines " + cand + " --reason first --by ci");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/baselines/nvidia-h100-80gb-hbm3.json"));
  r = run("gate --baseline-dir " + dir_ + "/baselines " + cand);
  EXPECT_EQ(r.code, 0) << r.output;
}

TEST_F(GateCli, UpdateBaselineIsDeliberateAndStamped) {
  const std::string baseline = dir_ + "/baselines/gpu-x.json";
  const std::string slow = write("slow.json", 1.10, "GPU-X", "beef");
  Ran r = run("gate --update-baseline " + baseline + " " + slow);
  EXPECT_EQ(r.code, 2) << r.output;  // no --reason
  EXPECT_NE(r.output.find("--reason"), std::string::npos) << r.output;
  r = run("gate --update-baseline " + baseline + " " + write("base.json") + " --reason 'first' --by alice");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("baseline created"), std::string::npos) << r.output;
  EXPECT_EQ(run("gate " + baseline + " " + slow).code, 1);
  // Replacing it prints the diff first (the FAIL it accepts), then stamps the new one.
  r = run("gate --update-baseline " + baseline + " " + slow + " --reason 'slower on purpose: more checks' --by bob");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("FAIL"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("baseline replaced"), std::string::npos) << r.output;
  const ResultsFile b = read_results(baseline);
  const auto& stamp = b.run.extra["baseline"];
  EXPECT_EQ(stamp["updated_by"], "bob");
  EXPECT_EQ(stamp["commit"], "beef");
  EXPECT_EQ(stamp["reason"], "slower on purpose: more checks");
  EXPECT_FALSE(stamp["updated_utc"].get<std::string>().empty());
  EXPECT_EQ(stamp["previous"]["updated_by"], "alice");
  EXPECT_EQ(run("gate " + baseline + " " + slow).code, 0);
  // Another device's results do not replace this device's baseline.
  const std::string before = read_file(baseline);
  r = run("gate --update-baseline " + baseline + " " + write("other.json", 1, "GPU-Y") + " --reason x");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("different devices"), std::string::npos) << r.output;
  EXPECT_EQ(read_file(baseline), before);
}

TEST_F(GateCli, ModelSnapshotGatesExactly) {
  const std::string a = dir_ + "/a.json", b = dir_ + "/b.json";
  Ran r = run("model-snapshot --out " + a);
  ASSERT_EQ(r.code, 0) << r.output;
  ASSERT_EQ(run("model-snapshot --out " + b).code, 0);
  r = run("gate " + a + " " + b);
  EXPECT_EQ(r.code, 0) << r.output.substr(0, 2000);
  EXPECT_NE(r.output.find("overall: PASS"), std::string::npos) << r.output.substr(r.output.size() - 500);
  // Every kind of prediction is there.
  const ResultsFile f = read_results(a);
  std::set<std::string> benches;
  for (const auto& p : f.points) benches.insert(p.bench);
  for (const char* kind : {"anchor", "predict", "maxseq", "strategy_bytes"}) EXPECT_TRUE(benches.count(kind)) << kind;
  EXPECT_EQ(f.run.device, "model");
  // A prediction that moves by 3% fails, and the diff names it with the size of the move.
  ResultsFile moved = f;
  for (auto& p : moved.points) {
    if (p.bench == "predict" && p.status == PointStatus::kOk) {
      p.metrics["peak_bytes"] *= 1.03;
      break;
    }
  }
  write_results_atomic(moved, b);
  r = run("gate " + a + " " + b);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("moved: peak_bytes"), std::string::npos);
  EXPECT_NE(r.output.find("(+3.00%)"), std::string::npos);
}

}  // namespace
}  // namespace seqscale
