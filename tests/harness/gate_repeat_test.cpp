// bench --repeat K: the round orders spread every point evenly over the session, each run's
// median is recorded, a rerun adds only the missing runs, failures are not repeated, and
// the flags that cannot repeat are refused.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <set>

#include <nlohmann/json.hpp>

#include "harness/results/results.h"
#include "harness/runner.h"
#include "tests/support/binary.h"

namespace seqscale {
namespace {

const std::string kBinary = testing_support::seqscale_binary();

struct Ran {
  int code;
  std::string output;  // stdout and stderr
};

Ran run(const std::string& args) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen((kBinary + " " + args + " 2>&1").c_str(), "r"), pclose);
  std::string out;
  std::array<char, 4096> buf{};
  while (fgets(buf.data(), buf.size(), pipe.get())) out += buf.data();
  const int rc = pclose(pipe.release());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

std::string tmp_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("seqscale_repeat_" + std::to_string(::getpid()) + "_" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

std::string write_matrix(const std::string& dir, const std::string& modes) {
  const std::string path = dir + "/matrix.json";
  std::ofstream(path) << R"({"name":"repeat","timeout_s":5,
    "timing":{"min_samples":3,"max_samples":5,"time_cap_s":0.02,"warmup_s":0},
    "benchmarks":[{"name":"selftest","backend":"cpu","axes":{"mode":)" + modes + R"(,"n":[100,200,300,400]}}]})";
  return path;
}

TEST(RepeatOrders, EveryRoundIsAPermutationAndPairsBalancePositions) {
  for (int n : {1, 2, 5, 16}) {
    for (int k : {1, 2, 3, 5, 6}) {
      const auto orders = repeat_orders(n, k);
      ASSERT_EQ(orders.size(), static_cast<size_t>(k));
      std::vector<double> position_sum(static_cast<size_t>(n), 0);
      for (const auto& o : orders) {
        ASSERT_EQ(std::set<int>(o.begin(), o.end()).size(), static_cast<size_t>(n));
        for (int pos = 0; pos < n; ++pos) position_sum[static_cast<size_t>(o[static_cast<size_t>(pos)])] += pos;
      }
      // Each pair of rounds (a rotation, then its reverse) puts a point at i and at n-1-i,
      // so with an even K every point's mean position is exactly the middle.
      if (k % 2 == 0) {
        for (double s : position_sum) EXPECT_DOUBLE_EQ(s / k, (n - 1) / 2.0) << "n=" << n << " k=" << k;
      }
    }
  }
  const auto o = repeat_orders(4, 4);
  EXPECT_EQ(o[0], (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(o[1], (std::vector<int>{3, 2, 1, 0}));
  EXPECT_EQ(o[2], (std::vector<int>{2, 3, 0, 1}));  // rotated by n / (K/2) = 2
  EXPECT_EQ(o[3], (std::vector<int>{1, 0, 3, 2}));
}

TEST(AddRun, MergesSamplesMediansAndTheWorstOfEverythingElse) {
  PointResult a;
  a.id = "x";
  a.samples_s = {1, 2, 3};
  a.metrics["peak_bytes"] = 100;
  a.declared_bytes = 1e9;
  finalize_point(a);
  PointResult first = add_run(nullptr, a, 1);
  EXPECT_EQ(first.runs_median_s, (std::vector<double>{2}));
  PointResult b = a;
  b.samples_s = {4, 5, 6};
  b.metrics["peak_bytes"] = 300;
  finalize_point(b);
  const PointResult two = add_run(&first, b, 2);
  EXPECT_EQ(two.runs_median_s, (std::vector<double>{2, 5}));
  EXPECT_EQ(two.samples_s.size(), 6u);
  EXPECT_EQ(two.metrics.at("peak_bytes"), 300);
  EXPECT_DOUBLE_EQ(two.metrics.at("GBps"), 1e9 / 3.5 / 1e9);  // from the median over every run
  PointResult crashed = b;
  crashed.status = PointStatus::kFailed;
  crashed.reason = "crashed: signal 11";
  const PointResult bad = add_run(&two, crashed, 3);
  EXPECT_EQ(bad.status, PointStatus::kFailed);
  EXPECT_EQ(bad.reason, "run 3: crashed: signal 11");
  EXPECT_TRUE(bad.runs_median_s.empty());
  // A single-run record from a plain bench counts as the first run.
  EXPECT_EQ(add_run(&a, b, 2).runs_median_s, (std::vector<double>{2, 5}));
}

TEST(Repeat, RecordsEachRunInterleavedAndResumesOnlyMissingRuns) {
  const std::string dir = tmp_dir("interleave");
  const std::string m = write_matrix(dir, R"(["ok"])");
  const std::string out = dir + "/out";
  Ran r = run("bench --matrix " + m + " --out " + out + " --repeat 3 --isolation worker");
  ASSERT_EQ(r.code, 0) << r.output;
  // The log names each point-run in order: round 2 runs the points reversed.
  const std::regex line(R"(\[(\d+)/12\] run (\d)/3 ok (\S+))");
  std::vector<std::pair<int, std::string>> seen;
  for (auto it = std::sregex_iterator(r.output.begin(), r.output.end(), line); it != std::sregex_iterator(); ++it) {
    seen.emplace_back(std::stoi((*it)[2]), (*it)[3]);
  }
  ASSERT_EQ(seen.size(), 12u) << r.output;
  for (int i = 0; i < 4; ++i) EXPECT_EQ(seen[static_cast<size_t>(4 + i)].second, seen[static_cast<size_t>(3 - i)].second);
  ResultsFile f = read_results(out + "/results.json");
  ASSERT_EQ(f.points.size(), 4u);
  for (const auto& p : f.points) {
    EXPECT_EQ(p.runs_median_s.size(), 3u) << p.id;
    EXPECT_GE(p.samples_s.size(), 9u) << p.id;
  }
  EXPECT_EQ(f.run.extra["repeat"]["runs"], 3);
  // Asking for 5 runs into the same folder adds 2 per point and keeps the first 3.
  r = run("bench --matrix " + m + " --out " + out + " --repeat 5 --json");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto summary = nlohmann::json::parse(r.output.substr(r.output.rfind("{\"")));
  EXPECT_EQ(summary["ran"], 8);
  EXPECT_EQ(summary["resumed"], 12);
  const ResultsFile g = read_results(out + "/results.json");
  for (const auto& p : g.points) {
    ASSERT_EQ(p.runs_median_s.size(), 5u) << p.id;
    const PointResult* before = f.find(p.id);
    for (size_t i = 0; i < 3; ++i) EXPECT_EQ(p.runs_median_s[i], before->runs_median_s[i]);
  }
  std::filesystem::remove_all(dir);
}

TEST(Repeat, FailuresAreRecordedOnceAndNotRepeated) {
  const std::string dir = tmp_dir("fail");
  const std::string m = write_matrix(dir, R"(["ok","oom","fail"])");
  const Ran r = run("bench --matrix " + m + " --out " + dir + "/out --repeat 3 --json");
  EXPECT_EQ(r.code, 1) << r.output;  // failed points -> exit 1, as without --repeat
  const auto summary = nlohmann::json::parse(r.output.substr(r.output.rfind("{\"")));
  EXPECT_EQ(summary["ran"], 4 * 3 + 4 + 4);  // ok points 3 runs each, oom and fail once
  EXPECT_EQ(summary["ok"], 4);
  EXPECT_EQ(summary["oom"], 4);
  EXPECT_EQ(summary["failed"], 4);
  std::filesystem::remove_all(dir);
}

TEST(Repeat, RefusesWhatCannotRepeat) {
  for (const char* flags : {"--repeat 0", "--repeat 3 --isolation none", "--repeat 3 --check-only",
                            "--repeat 3 --source model --cluster h100"}) {
    const Ran r = run(std::string("bench --matrix layernorm --out /tmp/seqscale_repeat_refused ") + flags);
    EXPECT_EQ(r.code, 2) << flags << ": " << r.output;
    EXPECT_NE(r.output.find("--repeat"), std::string::npos) << flags << ": " << r.output;
  }
}

}  // namespace
}  // namespace seqscale
