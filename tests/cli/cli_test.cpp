// CLI exit codes and one-line errors: 0 ok, 1 negative outcome, 2 bad usage or input.
#include <gtest/gtest.h>

#include "tests/support/binary.h"
#include <sys/wait.h>

#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

namespace {

const std::string kBinary = seqscale::testing_support::seqscale_binary();

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
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(Cli, InfoNeverCrashesWithoutAGpu) {
  const Ran r = run("info");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.output.find("features:"), std::string::npos);
  const Ran j = run("info --json");
  EXPECT_EQ(j.code, 0);
  EXPECT_NE(j.output.find("\"device_count\""), std::string::npos);
}

TEST(Cli, UnknownVerbOrFlagIsOneLineAndExitTwo) {
  Ran r = run("frobnicate");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("unknown verb 'frobnicate'"), std::string::npos);
  for (const char* verb : {"info", "bench", "gate", "report"}) {
    r = run(std::string(verb) + " --no-such-flag");
    EXPECT_EQ(r.code, 2) << verb;
    EXPECT_NE(r.output.find("no-such-flag"), std::string::npos) << verb << ": " << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  }
}

TEST(Cli, EveryVerbHasHelp) {
  for (const char* verb : {"info", "bench", "gate", "report"}) {
    const Ran r = run(std::string(verb) + " --help");
    EXPECT_EQ(r.code, 0) << verb;
    EXPECT_NE(r.output.find("usage: seqscale"), std::string::npos) << verb;
  }
}

TEST(Cli, BadValuesNameTheirFlagOrField) {
  Ran r = run("bench --matrix no-such-matrix --out /tmp/x");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("unknown matrix 'no-such-matrix'"), std::string::npos) << r.output;
  r = run("bench --matrix layernorm --out /tmp/x --isolation sometimes");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("--isolation"), std::string::npos) << r.output;
  r = run("gate /nonexistent/a.json /nonexistent/b.json");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("/nonexistent/a.json"), std::string::npos) << r.output;
  r = run("gate --min-band 7 a b");
  EXPECT_EQ(r.code, 2);
}

TEST(Cli, BenchDryRunListsPoints) {
  const Ran r = run("bench --matrix layernorm --dry-run --filter 'layernorm_bwd/cpu'");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 6) << r.output;
}

TEST(Cli, ModelSourceHonoursTheFilter) {
  const std::string out = "/tmp/seqscale_cli_model_" + std::to_string(getpid());
  const Ran r = run("bench --matrix layernorm --source model --cluster h100 --filter 'layernorm_fwd/cuda' --out " + out);
  ASSERT_EQ(r.code, 0) << r.output;
  std::ifstream in(out + "/results.json");
  const auto doc = nlohmann::json::parse(in);
  ASSERT_FALSE(doc["points"].empty());
  for (const auto& p : doc["points"]) EXPECT_NE(p["id"].get<std::string>().find("layernorm_fwd/cuda"), std::string::npos);
  std::filesystem::remove_all(out);
}

// The report pairs each measured point with the model's price of the same id and flags an
// error beyond 10%: here the "measurement" is the model's own file with every time 25% longer.
TEST(Cli, ReportComparesPredictedWithMeasured) {
  const std::string dir = "/tmp/seqscale_cli_report_" + std::to_string(getpid());
  const Ran priced = run("bench --matrix layernorm --source model --cluster h100 --filter 'layernorm_fwd/cuda' --out " +
                         dir + "/model");
  ASSERT_EQ(priced.code, 0) << priced.output;
  std::ifstream in(dir + "/model/results.json");
  auto doc = nlohmann::json::parse(in);
  for (auto& p : doc["points"]) {
    p["source"] = "measured";
    for (auto& x : p["samples_s"]) x = x.get<double>() * 1.25;
    for (const char* k : {"median_s", "min_s", "max_s", "mean_s"}) p["stats"][k] = p["stats"][k].get<double>() * 1.25;
  }
  std::filesystem::create_directories(dir + "/measured");
  std::ofstream(dir + "/measured/results.json") << doc.dump(1);
  const Ran rep = run("report " + dir + "/measured " + dir + "/model --out " + dir + "/report");
  ASSERT_EQ(rep.code, 0) << rep.output;
  const std::string md = read_file(dir + "/report/index.md");
  ASSERT_NE(md.find("## Predicted vs measured"), std::string::npos) << md.substr(0, 2000);
  EXPECT_NE(md.find("-20%"), std::string::npos);  // 1 / 1.25 - 1
  EXPECT_NE(md.find("> 10%"), std::string::npos);
  std::filesystem::remove_all(dir);
}

// The report shows each point's check against its CPU reference: ok with the error, or FAILED.
TEST(Cli, ReportShowsTheCheckStatus) {
  const std::string dir = "/tmp/seqscale_cli_report_check_" + std::to_string(getpid());
  const Ran ok = run("bench --matrix layernorm --filter 'layernorm_fwd/cpu/cols=33,' --out " + dir + "/ok");
  ASSERT_EQ(ok.code, 0) << ok.output;
  ::setenv("SEQSCALE_TEST_PLANT_WRONG_OUTPUT", "1", 1);
  const Ran bad = run("bench --matrix layernorm --filter 'layernorm_fwd/cpu/cols=128,' --out " + dir + "/bad");
  ::unsetenv("SEQSCALE_TEST_PLANT_WRONG_OUTPUT");
  ASSERT_EQ(bad.code, 1) << bad.output;
  const Ran rep = run("report " + dir + "/ok " + dir + "/bad --out " + dir + "/report");
  ASSERT_EQ(rep.code, 0) << rep.output;
  const std::string md = read_file(dir + "/report/index.md");
  EXPECT_NE(md.find("| check |"), std::string::npos) << md.substr(0, 3000);
  EXPECT_NE(md.find("ok (max abs err"), std::string::npos) << md.substr(0, 3000);
  EXPECT_NE(md.find("**FAILED**"), std::string::npos) << md.substr(0, 3000);
  std::filesystem::remove_all(dir);
}

// A scaling report from the cost model: maxseq --json per preset, drawn against the GPU
// count; a corrupt maxseq file is a one-line error naming the entry and field (exit 2).
TEST(Cli, ReportDrawsMaxseqScaling) {
  const std::string dir = "/tmp/seqscale_cli_scaling_" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  for (const char* preset : {"megatron-deepspeed-new", "seqscale-best"}) {
    const Ran ms = run(std::string("maxseq --model genslm-25b --cluster dgx-a100-40g --gpus 8,16,32 --preset ") + preset +
                       " --json");
    ASSERT_EQ(ms.code, 0) << ms.output;
    const auto doc = nlohmann::json::parse(ms.output);
    ASSERT_EQ(doc.size(), 3u);
    EXPECT_EQ(doc[0]["model"], "genslm-25b");
    std::ofstream(dir + "/" + preset + ".json") << ms.output;
  }
  const Ran rep = run("report --scaling " + dir + "/megatron-deepspeed-new.json --scaling " + dir +
                      "/seqscale-best.json --out " + dir + "/report");
  ASSERT_EQ(rep.code, 0) << rep.output;
  const std::string md = read_file(dir + "/report/index.md");
  EXPECT_NE(md.find("## Scaling (cost model)"), std::string::npos) << md.substr(0, 1000);
  EXPECT_NE(md.find("| genslm-25b | dgx-a100-40g | seqscale-best | 32 |"), std::string::npos) << md;
  EXPECT_TRUE(std::filesystem::exists(dir + "/report/scaling_maxseq.png"));
  std::ofstream(dir + "/bad.json") << R"([{"model": "m", "cluster": "c", "preset": "p", "gpus": 8, "max_seq": "long"}])";
  const Ran bad = run("report --scaling " + dir + "/bad.json --out " + dir + "/report");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.output.find("entry 0: field 'max_seq'"), std::string::npos) << bad.output;
  std::filesystem::remove_all(dir);
}

}  // namespace
