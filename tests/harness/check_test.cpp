// Check before time (issue 12): the comparison rule, the harness's checked call, the
// results schema's "check" and "timing", --check-only, the test-only planted wrong output,
// resume across check-only and timed runs, and the gate. CPU backends run the same path a
// GPU does, so CI exercises it.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <vector>

#include "harness/bench/execute.h"
#include "harness/gate.h"
#include "harness/results/results.h"
#include "tests/support/binary.h"
#include "workloads/config_error.h"

namespace seqscale {
namespace {

const std::string kBinary = testing_support::seqscale_binary();

std::string tmp_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("seqscale_check_" + std::to_string(::getpid()) + "_" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

int run(const std::string& args) {
  const int rc = std::system((kBinary + " " + args + " >/dev/null 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

MatrixPoint layernorm_point(std::int64_t rows, std::int64_t cols) {
  MatrixPoint p;
  p.suite = "kernels";
  p.bench = "layernorm_fwd";
  p.backend = "cpu";
  p.params = {{"rows", rows}, {"cols", cols}, {"dtype", "fp32"}};
  p.id = point_id(p.suite, p.bench, p.backend, p.params);
  p.timing.warmup_s = 0;
  p.timing.min_samples = 3;
  p.timing.max_samples = 3;
  p.timing.time_cap_s = 0.05;
  return p;
}

// Sets an environment variable for one scope.
struct ScopedEnv {
  std::string name;
  ScopedEnv(const std::string& n, const std::string& v) : name(n) { ::setenv(n.c_str(), v.c_str(), 1); }
  ~ScopedEnv() { ::unsetenv(name.c_str()); }
};

TEST(CheckRule, AbsoluteRelativeAndScaleTermsEachAllowTheirShare) {
  const std::vector<double> want{1.0, -100.0, 0.0};
  EXPECT_TRUE(compare_values("x", std::vector<double>{1.01, -100.0, 0.0}, want, {0.011, 0, 0}).ok);
  EXPECT_FALSE(compare_values("x", std::vector<double>{1.02, -100.0, 0.0}, want, {0.011, 0, 0}).ok);
  EXPECT_TRUE(compare_values("x", std::vector<double>{1.0, -101.0, 0.0}, want, {0, 0.011, 0}).ok);
  EXPECT_FALSE(compare_values("x", std::vector<double>{1.0, -100.0, 1e-9}, want, {0, 0.011, 0}).ok);
  // rel_to_max scales with the output's largest |reference| (100 here).
  const CheckResult r = compare_values("x", std::vector<double>{1.5, -100.0, 0.5}, want, {0, 0, 0.006});
  EXPECT_TRUE(r.ok) << r.worst;
  EXPECT_DOUBLE_EQ(r.max_abs_err, 0.5);
  EXPECT_EQ(r.checked_elements, 3);
}

TEST(CheckRule, NanFailsAndMatchingInfinitiesPass) {
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_FALSE(compare_values("x", std::vector<double>{std::nan("")}, std::vector<double>{0.0}, {1, 1, 0}).ok);
  EXPECT_FALSE(compare_values("x", std::vector<double>{inf}, std::vector<double>{0.0}, {1, 1, 0}).ok);
  EXPECT_FALSE(compare_values("x", std::vector<double>{inf}, std::vector<double>{-inf}, {1, 1, 0}).ok);
  EXPECT_TRUE(compare_values("x", std::vector<double>{-inf}, std::vector<double>{-inf}, {0, 0, 0}).ok);
  EXPECT_FALSE(compare_values("x", std::vector<double>{1, 2}, std::vector<double>{1}, {1, 1, 0}).ok);
}

TEST(CheckRule, MergeKeepsTheFailingOutputAsWorst) {
  CheckResult all = compare_values("a", std::vector<double>{1.0}, std::vector<double>{1.0}, {0.1, 0, 0});
  all.merge(compare_values("b", std::vector<double>{5.0}, std::vector<double>{1.0}, {0.1, 0, 0}));
  all.merge(compare_values("c", std::vector<double>{1.05}, std::vector<double>{1.0}, {0.1, 0, 0}));
  EXPECT_FALSE(all.ok);
  EXPECT_EQ(all.worst.rfind("b[0]", 0), 0u) << all.worst;
  EXPECT_DOUBLE_EQ(all.max_abs_err, 4.0);
  EXPECT_EQ(all.checked_elements, 3);
}

TEST(CheckRule, SampleIndicesSpreadEvenlyAndKeepBothEnds) {
  const auto s = sample_indices(1000, 5);
  ASSERT_EQ(s.size(), 5u);
  EXPECT_EQ(s.front(), 0);
  EXPECT_EQ(s.back(), 999);
  for (std::size_t i = 1; i < s.size(); ++i) EXPECT_GT(s[i], s[i - 1]);
  EXPECT_EQ(sample_indices(3, 10).size(), 3u);
  EXPECT_TRUE(sample_indices(0, 4).empty());
  EXPECT_EQ(slices_within_budget(100, kCheckReferenceBudget / 10), 10);
  EXPECT_EQ(slices_within_budget(100, kCheckReferenceBudget * 10), 1);
}

TEST(Check, CpuPointIsCheckedThenTimed) {
  const PointResult r = execute_point(layernorm_point(37, 1000));
  ASSERT_EQ(r.status, PointStatus::kOk) << r.reason;
  ASSERT_TRUE(r.check.has_value());
  EXPECT_TRUE(r.check->ok) << r.check->worst;
  EXPECT_EQ(r.check->checked_elements, 37 * 1000);
  // fp32 math against double: a real, nonzero error well inside the tolerance.
  EXPECT_GT(r.check->max_abs_err, 0);
  EXPECT_LT(r.check->max_abs_err, r.check->tolerance.abs);
  EXPECT_EQ(r.timing, "wall");
  EXPECT_FALSE(r.samples_s.empty());
}

TEST(Check, PlantedWrongOutputFailsAndIsNotTimed) {
  const ScopedEnv plant("SEQSCALE_TEST_PLANT_WRONG_OUTPUT", "1");
  const PointResult r = execute_point(layernorm_point(8, 33));
  EXPECT_EQ(r.status, PointStatus::kFailed);
  EXPECT_EQ(r.reason.rfind("check failed: ", 0), 0u) << r.reason;
  ASSERT_TRUE(r.check.has_value());
  EXPECT_FALSE(r.check->ok);
  EXPECT_GE(r.check->max_abs_err, 0.5);
  EXPECT_TRUE(r.samples_s.empty()) << "a point whose check failed must not be timed";
}

TEST(Check, CheckOnlyChecksAndDoesNotTime) {
  MatrixPoint p = layernorm_point(16, 128);
  p.timing.check_only = true;
  const PointResult r = execute_point(p);
  ASSERT_EQ(r.status, PointStatus::kOk) << r.reason;
  ASSERT_TRUE(r.check.has_value());
  EXPECT_TRUE(r.check->ok);
  EXPECT_TRUE(r.samples_s.empty());
  EXPECT_EQ(r.timing, "");
  // A benchmark without a reference is skipped under --check-only, saying why.
  MatrixPoint selftest;
  selftest.suite = selftest.bench = "selftest";
  selftest.backend = "cpu";
  selftest.params = {{"mode", "ok"}};
  selftest.timing.check_only = true;
  const PointResult s = execute_point(selftest);
  EXPECT_EQ(s.status, PointStatus::kSkipped);
  EXPECT_NE(s.reason.find("check-only"), std::string::npos) << s.reason;
}

TEST(Check, ChecksOffMeansNoCheckedCall) {
  MatrixPoint p = layernorm_point(16, 128);
  p.timing.check = false;
  const ScopedEnv plant("SEQSCALE_TEST_PLANT_WRONG_OUTPUT", "1");  // would fail a check
  const PointResult r = execute_point(p);
  EXPECT_EQ(r.status, PointStatus::kOk) << r.reason;
  EXPECT_FALSE(r.check.has_value());
}

TEST(Check, ResultsRoundTripTheCheckAndRejectABadOne) {
  PointResult r = execute_point(layernorm_point(4, 33));
  ASSERT_TRUE(r.check.has_value());
  r.check->scope = "4 of 4 rows";
  const PointResult back = point_from_json(to_json(r), "test");
  ASSERT_TRUE(back.check.has_value());
  EXPECT_EQ(back.check->ok, r.check->ok);
  EXPECT_DOUBLE_EQ(back.check->max_abs_err, r.check->max_abs_err);
  EXPECT_DOUBLE_EQ(back.check->tolerance.rel, r.check->tolerance.rel);
  EXPECT_EQ(back.check->scope, "4 of 4 rows");
  EXPECT_EQ(back.timing, "wall");
  nlohmann::json bad = to_json(r);
  bad["check"]["ok"] = "yes";
  try {
    point_from_json(bad, "f.json");
    FAIL() << "a non-boolean check.ok must be refused";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("check.ok"), std::string::npos) << e.what();
  }
  bad = to_json(r);
  bad["timing"] = "sundial";
  EXPECT_THROW(point_from_json(bad, "f.json"), ConfigError);
}

TEST(Check, GateFailsACandidateWhoseCheckFailed) {
  ResultsFile base, cand;
  base.run.device = cand.run.device = "cpu:test";
  PointResult ok = execute_point(layernorm_point(8, 128));
  ok.samples_s.assign(20, 1e-3);
  base.points.push_back(ok);
  PointResult wrong = ok;
  wrong.check->ok = false;
  wrong.check->worst = "y[0]: got 2 want 1";
  cand.points.push_back(wrong);
  const GateReport g = gate(base, cand);
  ASSERT_EQ(g.rows.size(), 1u);
  EXPECT_EQ(g.rows[0].outcome, GateOutcome::kFail);
  EXPECT_EQ(g.rows[0].check, "FAILED");
  EXPECT_NE(g.rows[0].note.find("check failed"), std::string::npos);
  EXPECT_EQ(gate(base, base).rows[0].check, "ok");
}

// The "done when": the CPU LayerNorm matrix writes points that each carry a passing
// check; a planted wrong output makes them `failed: check failed`; a check-only run first
// does not stand in for the timed run that follows into the same folder (resume).
TEST(Check, LayernormCpuMatrixEndToEnd) {
  const std::string dir = tmp_dir("matrix");
  ASSERT_EQ(run("bench --matrix layernorm --filter 'cpu/.*rows=256' --out " + dir + "/co --check-only"), 0);
  const ResultsFile co = read_results(dir + "/co/results.json");
  ASSERT_EQ(co.points.size(), 8u);
  for (const auto& p : co.points) {
    EXPECT_EQ(p.status, PointStatus::kOk) << p.id << " " << p.reason;
    EXPECT_TRUE(p.samples_s.empty()) << p.id;
  }
  // Timed run into the same folder: every check-only record is rerun, now timed.
  ASSERT_EQ(run("bench --matrix layernorm --filter 'cpu/.*rows=256' --out " + dir + "/co"), 0);
  const ResultsFile timed = read_results(dir + "/co/results.json");
  ASSERT_EQ(timed.points.size(), 8u);
  for (const auto& p : timed.points) {
    EXPECT_EQ(p.status, PointStatus::kOk) << p.id;
    ASSERT_TRUE(p.check.has_value()) << p.id;
    EXPECT_TRUE(p.check->ok) << p.id << " " << p.check->worst;
    EXPECT_FALSE(p.samples_s.empty()) << p.id;
  }
  const ScopedEnv plant("SEQSCALE_TEST_PLANT_WRONG_OUTPUT", "1");  // inherited by the workers
  EXPECT_EQ(run("bench --matrix layernorm --filter 'cpu/.*rows=256' --out " + dir + "/planted"), 1);
  for (const auto& p : read_results(dir + "/planted/results.json").points) {
    EXPECT_EQ(p.status, PointStatus::kFailed) << p.id;
    EXPECT_EQ(p.reason.rfind("check failed", 0), 0u) << p.reason;
  }
  EXPECT_EQ(run("bench --matrix layernorm --out " + dir + "/x --check-only --no-check"), 2);
}

}  // namespace
}  // namespace seqscale
