// The runner end to end through the real binary: planted oom / crash / hang / abort points
// are recorded and the matrix goes on; kill -9 mid-run then rerun gives every point once.
#include <gtest/gtest.h>

#include "tests/support/binary.h"
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "harness/results/results.h"
#include "harness/results/results_writer.h"

namespace seqscale {
namespace {

const std::string kBinary = seqscale::testing_support::seqscale_binary();

std::string tmp_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("seqscale_runner_" + std::to_string(::getpid()) + "_" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

std::string write_matrix(const std::string& dir, const std::string& body) {
  const std::string path = dir + "/matrix.json";
  std::ofstream(path) << body;
  return path;
}

int run(const std::string& args) {
  const int rc = std::system((kBinary + " " + args + " >/dev/null 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

TEST(Runner, PlantedOomCrashHangAreRecordedAndTheRestRuns) {
  const std::string dir = tmp_dir("planted");
  const std::string m = write_matrix(dir, R"({"name":"planted","timeout_s":3,
    "timing":{"min_samples":3,"max_samples":5,"time_cap_s":0.05,"warmup_s":0},
    "benchmarks":[{"name":"selftest","backend":"cpu",
      "axes":{"mode":["ok","oom","crash","hang","fail","abort"],"n":[64,256]}}]})");
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(run("bench --matrix " + m + " --out " + dir + "/out"), 1);  // failures -> exit 1
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(secs, 30) << "hung points must be killed at their timeout";
  const ResultsFile r = read_results(dir + "/out/results.json");
  ASSERT_EQ(r.points.size(), 12u);
  std::map<std::string, int> by_status;
  for (const auto& p : r.points) {
    const std::string mode = p.params["mode"];
    if (mode == "ok") {
      EXPECT_EQ(p.status, PointStatus::kOk) << p.id << " " << p.reason;
    }
    if (mode == "oom") {
      EXPECT_EQ(p.status, PointStatus::kOom) << p.id;
    }
    if (mode == "crash") {
      EXPECT_EQ(p.status, PointStatus::kFailed);
      EXPECT_NE(p.reason.find("crashed: signal 11"), std::string::npos) << p.reason;
    }
    if (mode == "hang") {
      EXPECT_EQ(p.status, PointStatus::kFailed);
      EXPECT_NE(p.reason.find("timeout"), std::string::npos) << p.reason;
    }
    if (mode == "fail") {
      EXPECT_EQ(p.reason, "planted failure");
    }
    if (mode == "abort") {
      EXPECT_NE(p.reason.find("signal 6"), std::string::npos) << p.reason;
    }
    if (p.status == PointStatus::kOk) {
      EXPECT_GE(p.samples_s.size(), 3u);
      EXPECT_GT(p.metrics.at("peak_bytes"), 0);
    }
  }
}

TEST(Runner, KillNineThenResumeGivesEveryPointOnce) {
  const std::string dir = tmp_dir("resume");
  const std::string m = write_matrix(dir, R"({"name":"resume",
    "timing":{"min_samples":5,"max_samples":20,"time_cap_s":0.02,"warmup_s":0},
    "benchmarks":[{"name":"selftest","backend":"cpu","axes":{"mode":["ok"],"sleep_ms":[20],"n":{"linear":[100,3000,100]}}}]})");
  const std::string out = dir + "/out";
  const pid_t pid = fork();
  if (pid == 0) {
    execl(kBinary.c_str(), kBinary.c_str(), "bench", "--matrix", m.c_str(), "--out", out.c_str(), nullptr);
    _exit(127);
  }
  // Wait until some but not all points are written, then kill -9 in the middle of the run.
  size_t seen = 0;
  for (int i = 0; i < 400 && seen < 5; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    try {
      seen = load_results_and_journal(out + "/results.json").points.size();
    } catch (...) {
    }
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  read_results(out + "/results.json");  // the compacted file parses: never torn
  const size_t before = load_results_and_journal(out + "/results.json").points.size();
  EXPECT_GE(before, 5u);
  EXPECT_LT(before, 30u) << "the kill must land mid-run for this test to mean anything";
  EXPECT_EQ(run("bench --matrix " + m + " --out " + out), 0);
  const ResultsFile r = read_results(out + "/results.json");
  ASSERT_EQ(r.points.size(), 30u);
  std::set<std::string> ids;
  for (const auto& p : r.points) EXPECT_TRUE(ids.insert(p.id).second) << "duplicate " << p.id;
  // A third run does nothing new.
  EXPECT_EQ(run("bench --matrix " + m + " --out " + out), 0);
  EXPECT_EQ(read_results(out + "/results.json").points.size(), 30u);
}

TEST(Runner, CorruptResultsFileIsRefusedNotOverwritten) {
  const std::string dir = tmp_dir("corrupt");
  const std::string m = write_matrix(dir, R"({"name":"c","benchmarks":[{"name":"selftest","backend":"cpu","axes":{"mode":["ok"]}}]})");
  std::filesystem::create_directories(dir + "/out");
  std::ofstream(dir + "/out/results.json") << "{garbage";
  EXPECT_EQ(run("bench --matrix " + m + " --out " + dir + "/out"), 2);
  std::ifstream in(dir + "/out/results.json");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(text, "{garbage");
}

}  // namespace
}  // namespace seqscale

namespace seqscale {
namespace {

// Goal (issue 6): a 1,000-point CPU matrix of small points with per-point overhead under
// 20 ms, process isolation (the worker) included. Measured here (2-core VM, loaded):
// ~0.45 ms per point with the journaled writer (7.6-20 ms when every point rewrote the file).
TEST(Runner, ThousandPointMatrixOverheadUnder20ms) {
  const std::string dir = tmp_dir("thousand");
  const std::string m = write_matrix(dir, R"({"name":"thousand",
    "timing":{"min_samples":1,"max_samples":1,"time_cap_s":0,"warmup_s":0,"min_sample_s":0},
    "benchmarks":[{"name":"selftest","backend":"cpu","axes":{"mode":["ok"],"n":{"linear":[1,1000,1]}}}]})");
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(run("bench --matrix " + m + " --out " + dir + "/out"), 0);
  const double per_point_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / 1000;
  EXPECT_EQ(read_results(dir + "/out/results.json").points.size(), 1000u);
  EXPECT_LT(per_point_ms, 20.0);
  std::printf("per-point overhead: %.2f ms\n", per_point_ms);
}

}  // namespace
}  // namespace seqscale
