// Measured max-sequence bisection: a planted memory budget makes points above a size OOM;
// the search finds the boundary with O(log n) probes, each recorded once.
#include <gtest/gtest.h>

#include "tests/support/binary.h"
#include <sys/wait.h>

#include <filesystem>
#include <fstream>

#include "harness/measured_max_seq.h"
#include "harness/results/results.h"

namespace seqscale {
namespace {

TEST(MeasuredMaxSeq, BisectFindsTheLastFeasibleIndex) {
  for (std::size_t n : {1u, 2u, 7u, 64u, 1000u}) {
    for (std::size_t boundary = 0; boundary <= n; boundary += std::max<std::size_t>(1, n / 7)) {
      int probes = 0;
      const auto got = bisect_largest_feasible(n, [&](std::size_t i) -> std::optional<bool> {
        ++probes;
        return i < boundary;
      });
      if (boundary == 0) {
        EXPECT_FALSE(got.has_value());
      } else {
        ASSERT_TRUE(got.has_value());
        EXPECT_EQ(*got, boundary - 1) << n;
      }
      EXPECT_LE(probes, 2 + static_cast<int>(std::ceil(std::log2(static_cast<double>(n) + 1))));
    }
  }
}

// From a hint (the model's answer): the same index as plain bisection for every boundary and
// every hint, two probes when the hint is the boundary, O(log) probes however wrong it is.
TEST(MeasuredMaxSeq, SearchFromAHintFindsTheSameBoundaryAtAnyHint) {
  for (std::size_t n : {1u, 2u, 7u, 64u, 1000u}) {
    const std::size_t stride = std::max<std::size_t>(1, n / 9);
    for (std::size_t boundary = 0; boundary <= n; boundary += stride) {
      for (std::size_t hint = 0; hint < n; hint += stride) {
        int probes = 0;
        const auto got = search_largest_feasible_from(n, hint, [&](std::size_t i) -> std::optional<bool> {
          ++probes;
          EXPECT_LT(i, n);
          return i < boundary;
        });
        if (boundary == 0) {
          EXPECT_FALSE(got.has_value()) << n << " " << hint;
        } else {
          ASSERT_TRUE(got.has_value()) << n << " " << boundary << " " << hint;
          EXPECT_EQ(*got, boundary - 1) << n << " " << hint;
        }
        if (boundary >= 1 && hint == boundary - 1 && boundary < n) {
          EXPECT_EQ(probes, 2) << n << " " << hint;
        }
        EXPECT_LE(probes, 3 + 2 * static_cast<int>(std::ceil(std::log2(static_cast<double>(n) + 1))));
      }
    }
  }
}

TEST(MeasuredMaxSeq, BenchMaxseqFindsThePlantedMemoryLimit) {
  const auto dir = std::filesystem::temp_directory_path() / ("seqscale_measured_max_seq_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "m.json") << R"({"name":"ms","timing":{"min_samples":2,"max_samples":3,"time_cap_s":0.01,"warmup_s":0},
    "benchmarks":[{"name":"selftest","backend":"cpu","axes":{"mode":["ok"],"n":{"linear":[1000,64000,1000]}}}]})";
  // selftest holds n fp32 values: a 40,000-byte budget fits n <= 10,000.
  const std::string cmd = "SEQSCALE_CPU_MEMORY_BUDGET=40000 " + testing_support::seqscale_binary() + " bench --maxseq n --matrix " +
                          (dir / "m.json").string() + " --out " + (dir / "out").string() + " --cluster h100 >/dev/null 2>&1";
  ASSERT_EQ(WEXITSTATUS(std::system(cmd.c_str())), 0);
  std::ifstream in(dir / "out" / "measured_max_seq.json");
  const auto rows = nlohmann::json::parse(in);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["measured_max"], 10000);
  EXPECT_EQ(rows[0]["predicted_max"], 64000);  // the model knows an 80 GB GPU, not the planted budget
  EXPECT_NE(rows[0]["first_infeasible_reason"].get<std::string>().find("budget"), std::string::npos);
  // The search starts at the (here wrong) prediction and gallops down: at most twice the
  // probes of a plain bisection of the 64-value grid.
  EXPECT_LE(rows[0]["probes"].size(), 14u);
  const ResultsFile r = read_results((dir / "out" / "results.json").string());
  EXPECT_EQ(r.points.size(), rows[0]["probes"].size());
}

}  // namespace
}  // namespace seqscale
