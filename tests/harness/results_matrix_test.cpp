#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "harness/matrix/matrix.h"
#include "harness/results/results.h"
#include "tests/support/errors.h"
#include "workloads/config_error.h"

namespace seqscale {
namespace {

std::string tmp_path(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("seqscale_rm_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

using testing_support::error_of;

TEST(Results, RoundTripKeepsEveryField) {
  ResultsFile f;
  f.run = collect_metadata("seqscale bench --matrix x", false);
  PointResult p;
  p.id = point_id("kernels", "layernorm_fwd", "cpu", {{"rows", 4}, {"cols", 8}, {"dtype", "fp32"}});
  p.suite = "kernels";
  p.bench = "layernorm_fwd";
  p.backend = "cpu";
  p.params = {{"rows", 4}, {"cols", 8}, {"dtype", "fp32"}};
  p.samples_s = {3e-6, 1e-6, 2e-6};
  p.declared_bytes = 2e3;
  p.declared_flops = 1e3;
  p.metrics["peak_bytes"] = 4096;
  finalize_point(p);
  PointResult oom = p;
  oom.id += "-oom";
  oom.status = PointStatus::kOom;
  oom.reason = "planted";
  oom.samples_s.clear();
  finalize_point(oom);
  f.points = {p, oom};
  const std::string path = tmp_path("rt.json");
  write_results_atomic(f, path);
  const ResultsFile g = read_results(path);
  EXPECT_EQ(g.run.git_commit, f.run.git_commit);
  EXPECT_EQ(g.run.device, f.run.device);
  ASSERT_EQ(g.points.size(), 2u);
  EXPECT_EQ(g.points[0].id, "kernels/layernorm_fwd/cpu/cols=8,dtype=fp32,rows=4");
  EXPECT_EQ(g.points[0].samples_s, p.samples_s);
  EXPECT_DOUBLE_EQ(g.points[0].stats.median, 2e-6);
  EXPECT_DOUBLE_EQ(g.points[0].metrics.at("GBps"), 2e3 / 2e-6 / 1e9);
  EXPECT_EQ(g.points[1].status, PointStatus::kOom);
  EXPECT_EQ(g.points[1].reason, "planted");
  EXPECT_EQ(to_json(g), to_json(f));
}

TEST(Results, CorruptOrForeignFilesGiveOneLineErrors) {
  const std::string path = tmp_path("bad.json");
  std::ofstream(path) << R"({"schema":"seqscale.results/1","run":{)";
  EXPECT_NE(error_of([&] { read_results(path); }).find("corrupt results file"), std::string::npos);
  std::ofstream(path) << R"({"schema":"other/2","run":{},"points":[]})";
  EXPECT_NE(error_of([&] { read_results(path); }).find("field 'schema'"), std::string::npos);
  std::ofstream(path) << R"({"schema":"seqscale.results/1","run":{"git_commit":"a","host":"h","device":"d",
    "command_line":"c","started_utc":"t"},"points":[{"id":"x","suite":"s","bench":"b","backend":"cpu",
    "params":{},"status":"exploded","source":"measured","samples_s":[]}]})";
  const std::string err = error_of([&] { read_results(path); });
  EXPECT_NE(err.find("field 'points[x].status' is 'exploded'"), std::string::npos) << err;
  EXPECT_EQ(err.find('\n'), std::string::npos);
}

TEST(Results, AtomicWriteLeavesNoTemporaryFile) {
  const std::string path = tmp_path("atomic/r.json");
  write_text_atomic("{}", path);
  write_text_atomic("{\"a\":1}", path);
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(path).parent_path())) {
    ++files;
    (void)e;
  }
  EXPECT_EQ(files, 1);
}

nlohmann::json matrix_doc(const nlohmann::json& bench) {
  return {{"name", "t"}, {"benchmarks", nlohmann::json::array({bench})}};
}

TEST(Matrix, ExpandsListsRangesAndExcludes) {
  const Matrix m = expand_matrix(
      matrix_doc({{"name", "selftest"},
                  {"backend", {"cpu"}},
                  {"axes", {{"n", {{"pow2", {8, 64}}}}, {"mode", {"ok"}}, {"k", {{"linear", {1, 5, 2}}}}}},
                  {"exclude", {{{"n", 16}, {"k", 3}}}}}),
      "t.json");
  EXPECT_EQ(m.points.size(), 4u * 3u - 1u);
  for (const auto& p : m.points) {
    EXPECT_EQ(p.suite, "selftest");
    EXPECT_FALSE(p.params["n"] == 16 && p.params["k"] == 3);
  }
  const Matrix g = expand_matrix(
      matrix_doc({{"name", "selftest"}, {"backend", "cpu"}, {"axes", {{"n", {{"geometric", {1, 1000, 10}}}}}}}), "t.json");
  ASSERT_EQ(g.points.size(), 4u);
  EXPECT_EQ(g.points[3].params["n"], 1000);
}

TEST(Matrix, IdsAreUniqueAndStable) {
  const Matrix a = load_matrix("layernorm");
  const Matrix b = load_matrix("layernorm");
  std::set<std::string> ids;
  for (size_t i = 0; i < a.points.size(); ++i) {
    EXPECT_TRUE(ids.insert(a.points[i].id).second) << a.points[i].id;
    EXPECT_EQ(a.points[i].id, b.points[i].id);
  }
}

TEST(Matrix, BadInputNamesTheField) {
  auto err = error_of([] { expand_matrix(matrix_doc({{"name", "nope"}, {"backend", "cpu"}}), "m.json"); });
  EXPECT_NE(err.find("m.json: field 'benchmarks[0].name'"), std::string::npos) << err;
  err = error_of([] {
    expand_matrix(matrix_doc({{"name", "selftest"}, {"backend", "cpu"}, {"axes", {{"n", {{"pow2", {3, 8}}}}}}}), "m.json");
  });
  EXPECT_NE(err.find("benchmarks[0].axes.n"), std::string::npos) << err;
  err = error_of([] {
    expand_matrix(matrix_doc({{"name", "selftest"}, {"backend", "cpu"}, {"axes", {{"mode", {"ok", "ok"}}}}}), "m.json");
  });
  EXPECT_NE(err.find("appears twice"), std::string::npos) << err;
  err = error_of([] { expand_matrix(matrix_doc({{"name", "selftest"}, {"backend", "tpu"}}), "m.json"); });
  EXPECT_NE(err.find("'benchmarks[0].backend'"), std::string::npos) << err;
  err = error_of([] { expand_matrix(matrix_doc({{"name", "selftest"}, {"backend", "cpu"}, {"axis", 1}}), "m.json"); });
  EXPECT_NE(err.find("'benchmarks[0].axis' is not a known field"), std::string::npos) << err;
}

}  // namespace
}  // namespace seqscale
