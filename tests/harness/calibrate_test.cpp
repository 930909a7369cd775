// Calibration recovers known efficiencies from synthetic results under the op-kind names
// the model prices with, every op kind makes the round trip from a measured point through
// `seqscale calibrate` into estimate(), and the model's pricing of a matrix point uses the
// same declaration the measured run reports.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

#include "harness/bench/pricing.h"
#include "harness/calibrate.h"
#include "layers/evoformer_block/evoformer_block_def.h"
#include "model/estimate.h"
#include "layers/evoformer_block/evoformer_block_program.h"
#include "model/roofline.h"
#include "tests/support/seed.h"
#include "workloads/config_error.h"
#include "workloads/op_kinds.h"
#include "workloads/plan.h"

namespace seqscale {
namespace {

PointResult timed(const std::string& bench, double flops, double bytes, double seconds, const std::string& dtype,
                  std::mt19937_64& rng) {
  PointResult p;
  p.bench = bench;
  p.id = bench + "/" + std::to_string(flops) + "/" + std::to_string(bytes);
  p.params = {{"dtype", dtype}};
  p.declared_flops = flops;
  p.declared_bytes = bytes;
  std::exponential_distribution<double> noise(100.0);
  p.samples_s.push_back(seconds);  // 10 samples below, 10 above: the median is exactly `seconds`
  for (int i = 0; i < 10; ++i) {
    p.samples_s.push_back(seconds * (1 - 0.5 * noise(rng) - 1e-6));
    p.samples_s.push_back(seconds * (1 + noise(rng) + 1e-6));
  }
  finalize_point(p);
  return p;
}

TEST(Calibrate, RecoversPlantedEfficiencies) {
  const ClusterSpec h100 = load_cluster("h100");
  std::mt19937_64 rng(testing_support::test_seed());  // printed: SEQSCALE_TEST_SEED replays
  ResultsFile f;
  f.run.device = h100.gpu;
  // Bandwidth-bound kernel at 80% of HBM, compute-bound GEMM at 60% of the bf16 peak,
  // over several sizes each.
  for (double bytes : {1e8, 3e8, 1e9}) {
    f.points.push_back(timed("layernorm_fwd", bytes / 4, bytes, bytes / (h100.hbm_bytes_per_s * 0.8), "bf16", rng));
  }
  for (double flops : {1e12, 4e12}) {
    f.points.push_back(timed("gemm", flops, flops / 1000, flops / (h100.peak_bf16_flops * 0.6), "bf16", rng));
  }
  PointResult coll = timed("all_reduce", 0, 0, 1e-3, "fp32", rng);
  coll.metrics["busbw_GBps"] = 0.7 * link_bytes_per_s(h100, false, 1) / 1e9;
  f.points.push_back(coll);
  const CalibrationFit fit = fit_calibration({f}, h100);
  EXPECT_NEAR(fit.calibration.compute.at("layernorm_fwd"), 0.8, 1e-9);
  EXPECT_NEAR(fit.calibration.compute.at("layernorm"), 0.8, 1e-9);  // the pass's family, which layernorm_bwd falls back to
  EXPECT_NEAR(fit.calibration.compute.at("gemm"), 0.6, 1e-9);
  EXPECT_NEAR(fit.calibration.comm.at("nvlink").at("all_reduce"), 0.7, 1e-9);
  // Per size class too: each layernorm size got its own key, and a lookup at a nearby
  // size finds it.
  const int cls = Calibration::size_class(1e9 / 4);  // work = declared FLOPs when there are any
  EXPECT_NEAR(fit.calibration.compute.at("layernorm_fwd@" + std::to_string(cls)), 0.8, 1e-9);
  EXPECT_NEAR(fit.calibration.compute_efficiency("layernorm_fwd", 3e8), 0.8, 1e-9);
  EXPECT_NEAR(fit.calibration.compute_efficiency("gemm", 1e6), 0.6, 1e-9);  // no class near: name-only
  EXPECT_EQ(fit.calibration.device, h100.gpu);
}

// The attention benchmarks are named evoformer_attn_*: calibrate files them under the op
// kinds they measure, which the Evoformer block programs price; whole-block and copy
// points are left out with the reason.
TEST(Calibrate, FitsTheOpKindABenchmarkMeasuresNotItsName) {
  const ClusterSpec h100 = load_cluster("h100");
  std::mt19937_64 rng(testing_support::test_seed());
  ResultsFile f;
  f.run.device = h100.gpu;
  const double flops = 1e12, at_peak_s = flops / h100.peak_bf16_flops;
  f.points.push_back(timed("evoformer_attn_fused_fwd", flops, 0, at_peak_s / 0.6, "bf16", rng));
  f.points.push_back(timed("evoformer_attn_fused_fwdbwd", flops, 0, at_peak_s / 0.4, "bf16", rng));
  f.points.push_back(timed("evoformer_block", flops, 0, at_peak_s / 0.3, "bf16", rng));
  f.points.push_back(timed("copy", 0, 1e9, 1e-3, "bf16", rng));
  const CalibrationFit fit = fit_calibration({f}, h100);
  const Calibration& cal = fit.calibration;
  EXPECT_NEAR(cal.compute.at(op_kind::kAttentionFusedFwd), 0.6, 1e-9);
  EXPECT_NEAR(cal.compute.at(op_kind::kAttentionFused), 0.5, 1e-9);  // the family: median of 0.6 and 0.4
  for (const char* bench : {"evoformer_attn_fused_fwd", "evoformer_attn_fused_fwdbwd", "evoformer_block", "copy"}) {
    EXPECT_EQ(cal.compute.count(bench), 0u) << bench;
  }
  // What the Evoformer block program prices: the forward measured, the backward from its family.
  EXPECT_NEAR(cal.compute_efficiency(op_kind::kAttentionFusedFwd, 1e12), 0.6, 1e-9);
  EXPECT_NEAR(cal.compute_efficiency(op_kind::kAttentionFusedBwd, 3e12), 0.5, 1e-9);
  for (const char* left_out : {"not fitted: copy (1 points)", "not fitted: evoformer_block (1 points)"}) {
    EXPECT_TRUE(std::ranges::any_of(fit.notes, [&](const std::string& n) { return n.starts_with(left_out); }))
        << left_out;
  }
}

// A new benchmark must say what it measures, or calibrate cannot use its points.
TEST(Calibrate, EveryRegisteredBenchmarkMeasuresAnOpKindACollectiveOrSaysWhyNot) {
  ASSERT_FALSE(registered_benches().empty());
  for (const BenchDef& b : registered_benches()) {
    const int classes = static_cast<int>(bench_op_kind(b.name).has_value()) +
                        static_cast<int>(bench_collective(b.name).has_value()) +
                        static_cast<int>(bench_without_op_kind(b.name).has_value());
    EXPECT_EQ(classes, 1) << b.name << " (" << backend_name(b.backend)
                          << "): map it to an op kind or list it without one in workloads/op_kinds.cc";
  }
}

TEST(Calibrate, SizeClassesSeparateSmallAndLargeKernels) {
  Calibration cal = default_calibration();
  cal.compute["gemm@20"] = 0.2;  // ~1 MFLOP GEMMs: launch-bound
  cal.compute["gemm@40"] = 0.8;  // ~1 TFLOP GEMMs
  EXPECT_DOUBLE_EQ(cal.compute_efficiency("gemm", 1.5e6), 0.2);
  EXPECT_DOUBLE_EQ(cal.compute_efficiency("gemm", 2e12), 0.8);
  EXPECT_DOUBLE_EQ(cal.compute_efficiency("gemm", 1e9), cal.compute.at("gemm"));  // class 29: none within 4
}

TEST(Calibrate, RefusesCpuOrForeignResults) {
  const ClusterSpec h100 = load_cluster("h100");
  ResultsFile cpu;
  cpu.run.device = "cpu:AMD EPYC";
  EXPECT_THROW(fit_calibration({cpu}, h100), ConfigError);
  ResultsFile other;
  other.run.device = "NVIDIA H200";
  EXPECT_THROW(fit_calibration({other}, h100), ConfigError);
  EXPECT_EQ(cluster_for_device("NVIDIA H200"), "h200");
}

// ---- The round trip: measured -> seqscale calibrate -> estimate() ---------------------
// For every op kind: one point of a benchmark that measures it, timed at half the op kind's
// default efficiency, goes through fit_calibration and a saved-and-loaded file. estimate()
// must then price every op it prices from that op kind at twice its default time and
// nothing else differently: the step grows by exactly those ops' default time. That time
// is read from estimate() itself, as what the step loses when the op kind is made free (an
// efficiency of 1e12, possible in memory only). One-GPU plans (and for a collective, a
// plan that puts it on the critical path) keep a step linear in the op's time.
constexpr double kFree = 1e12;

struct Scenario {
  const char* model;
  const char* cluster;
  const char* plan;
  std::int64_t gpus;
  std::int64_t seq;  // 0: the Evoformer's crop
};

std::string describe(const Scenario& s) {
  return std::string(s.model) + " on " + s.cluster + " with " + s.plan + " at " + std::to_string(s.gpus) + " GPUs";
}

double step_s(const Scenario& s, const Calibration& cal) {
  return estimate(load_model(s.model), load_cluster(s.cluster), parse_plan(s.plan), s.gpus, RunShape{s.seq, 1, 0}, cal)
      .time.step;
}

// What `seqscale calibrate` writes for these results, read back from its file.
Calibration calibrate_through_file(const ResultsFile& results, const ClusterSpec& cluster) {
  // One file per test: ctest runs the round-trip tests in parallel processes.
  const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string path = ::testing::TempDir() + "/seqscale_round_trip_" + test->name() + ".json";
  save_calibration(fit_calibration({results}, cluster).calibration, path);
  return load_calibration(path);
}

// Checks the round trip in every scenario that prices what `freed` frees; returns how many do.
int expect_doubled(const std::vector<Scenario>& scenarios, const Calibration& fitted, const Calibration& freed,
                   const std::string& what) {
  int priced = 0;
  for (const Scenario& s : scenarios) {
    const double base = step_s(s, default_calibration());
    const double op_time = base - step_s(s, freed);  // the op's time at its default efficiency
    if (op_time <= 1e-9 * base) continue;          // this scenario does not price it
    ++priced;
    EXPECT_NEAR(step_s(s, fitted) - base, op_time, 1e-9 * base) << what << ", " << describe(s);
  }
  return priced;
}

TEST(CalibrationRoundTrip, EveryOpKindMeasuredAtHalfItsDefaultEfficiencyDoublesItsTime) {
  const ClusterSpec h100 = load_cluster("h100");
  std::mt19937_64 rng(testing_support::test_seed());
  // Between them these price every op kind: the transformer's closed form (gemm, causal or
  // naive attention, softmax, elementwise, cross_entropy, optimizer) and the Evoformer's
  // block programs (gemm, attention and layernorm passes, elementwise, permute, optimizer).
  const std::vector<Scenario> scenarios = {{"tiny-gpt", "h100", "attn=fused", 1, 1024},
                                           {"tiny-gpt", "h100", "attn=materialized", 1, 1024},
                                           {"tiny-evoformer", "h100", "attn=fused", 1, 0},
                                           {"tiny-evoformer", "h100", "attn=materialized", 1, 0}};
  for (const OpKind& kind : op_kinds()) {
    const double half = default_calibration().compute_efficiency(kind.name) / 2;
    const std::string bench(benches_measuring(kind.name).front());
    ResultsFile results;
    results.run.device = h100.gpu;
    const double flops = 1e12;
    results.points.push_back(timed(bench, flops, 0, flops / (h100.peak_bf16_flops * half), "bf16", rng));
    const Calibration fitted = calibrate_through_file(results, h100);
    // calibrate fitted the op kind and its family: free both.
    Calibration freed = default_calibration();
    freed.compute[std::string(kind.name)] = freed.compute[std::string(kind.family)] = kFree;
    const std::string what = std::string(kind.name) + " measured by " + bench;
    EXPECT_GT(expect_doubled(scenarios, fitted, freed, what), 0) << what << ": no scenario prices it";
  }
}

TEST(CalibrationRoundTrip, EveryCollectiveMeasuredAtHalfItsDefaultEfficiencyDoublesItsBandwidthTime) {
  std::mt19937_64 rng(testing_support::test_seed());
  // A two-GPU plan per collective, in which it sits on the critical path (tiny-gpt, dp = 1:
  // no gradient reduction overlapping the backward). The model prices no broadcast.
  const std::map<Collective, const char*> plans = {{Collective::kAllReduce, "tp=2"},
                                                   {Collective::kAllGather, "tp=2,sp=megatron"},
                                                   {Collective::kReduceScatter, "tp=2,sp=megatron"},
                                                   {Collective::kAllToAll, "sp=ulysses,sp_degree=2"},
                                                   {Collective::kSendRecv, "pp=2"}};
  // NVLink inside a DGX H100 node (8 GPUs), InfiniBand between the one-GPU nodes of h100.
  for (const LinkTier tier : {LinkTier::kNvlink, LinkTier::kIb}) {
    const bool ib = tier == LinkTier::kIb;
    const char* cluster_name = ib ? "h100" : "dgx-h100";
    const ClusterSpec cluster = load_cluster(cluster_name);
    for (int i = 0; i <= static_cast<int>(Collective::kSendRecv); ++i) {
      const auto c = static_cast<Collective>(i);
      const std::string name(collective_name(c));
      const std::string what = name + " on " + std::string(tier_name(tier));
      const double half = default_calibration().comm_efficiency(c, tier) / 2;
      ResultsFile results;
      results.run.device = cluster.gpu;
      PointResult p = timed(name, 0, 0, 1e-3, "bf16", rng);
      p.metrics["busbw_GBps"] = half * link_bytes_per_s(cluster, ib, 1) / 1e9;
      p.metrics["crosses_nodes"] = ib ? 1 : 0;
      results.points.push_back(p);
      const Calibration fitted = calibrate_through_file(results, cluster);
      Calibration freed = default_calibration();
      freed.comm[std::string(tier_name(tier))][name] = kFree;
      // The priced op: its bandwidth term doubles, its latency stays.
      const double bytes = 1 << 28;
      const double latency = comm_time_s(c, 8, bytes, ib, 1, cluster, freed);
      EXPECT_NEAR(comm_time_s(c, 8, bytes, ib, 1, cluster, fitted) - latency,
                  2 * (comm_time_s(c, 8, bytes, ib, 1, cluster, default_calibration()) - latency), 1e-12)
          << what;
      // The step estimate() prices.
      if (const auto plan = plans.find(c); plan != plans.end()) {
        EXPECT_EQ(expect_doubled({{"tiny-gpt", cluster_name, plan->second, 2, 1024}}, fitted, freed, what), 1)
            << what << ": the scenario does not price it";
      }
    }
  }
}

TEST(Pricing, ModelPricesTheDeclaredCostOfAMatrixPoint) {
  const ClusterSpec h100 = load_cluster("h100");
  // The CUDA body in bf16 where the build has one, else the CPU body (fp32 only).
  const bool cuda = find_bench("layernorm_fwd", Backend::kCuda) != nullptr;
  const std::int64_t rows = 16384, cols = 6144;
  const std::string dtype = cuda ? "bf16" : "fp32";
  MatrixPoint p;
  p.bench = "layernorm_fwd";
  p.backend = cuda ? "cuda" : "cpu";
  p.id = "kernels/layernorm_fwd/" + p.backend + "/cols=6144,dtype=" + dtype + ",rows=16384";
  p.params = {{"rows", rows}, {"cols", cols}, {"dtype", dtype}};
  Calibration cal = default_calibration();
  cal.compute["layernorm_fwd"] = 0.5;
  const PointResult r = price_point(p, h100, cal);
  ASSERT_EQ(r.status, PointStatus::kOk) << r.reason;
  EXPECT_EQ(r.source, "model");
  // x read and y written, weight and bias read once, fp32 mean and rstd written per row.
  const double es = cuda ? 2.0 : 4.0, n = static_cast<double>(rows * cols);
  const double bytes = 2.0 * n * es + 2.0 * cols * es + 8.0 * rows;
  EXPECT_DOUBLE_EQ(r.declared_bytes, bytes);
  EXPECT_NEAR(r.stats.median, bytes / (h100.hbm_bytes_per_s * 0.5), 1e-12);
  // The body's allocations are the model's memory: the same tensors, each allocated once.
  EXPECT_DOUBLE_EQ(r.metrics.at("peak_bytes"), bytes);
}

// `bench --source model` prices a point at the efficiency calibrate fits from that
// benchmark's measured points: its op kind's, whatever the benchmark is called.
TEST(Pricing, ABenchmarkIsPricedAtTheEfficiencyOfTheOpKindItMeasures) {
  if (!find_bench("evoformer_attn_fused_fwd", Backend::kCuda)) GTEST_SKIP() << "built without CUDA: no fused attention bench";
  const ClusterSpec h100 = load_cluster("h100");
  MatrixPoint p;
  p.id = "kernels/evoformer_attn_fused_fwd/cuda/B=1,D=32,H=4,L=256,N=256,dtype=fp16,pair_bias=1";
  p.bench = "evoformer_attn_fused_fwd";
  p.backend = "cuda";
  p.params = {{"B", 1}, {"N", 256}, {"L", 256}, {"H", 4}, {"D", 32}, {"dtype", "fp16"}, {"pair_bias", 1}};
  Calibration cal = default_calibration();
  cal.compute[op_kind::kAttentionFusedFwd] = 0.125;
  const PointResult r = price_point(p, h100, cal);
  ASSERT_EQ(r.status, PointStatus::kOk) << r.reason;
  EXPECT_DOUBLE_EQ(r.metrics.at("efficiency"), 0.125);
  const double t = compute_time_s(KernelCost{r.declared_flops, r.declared_bytes, 0}, DType::kFp16, h100, 0.125);
  EXPECT_NEAR(r.stats.median, t, 1e-12 * t);
}

TEST(Pricing, EvoformerBlockPointIsPricedFromItsStepProgram) {
  if (!find_bench("evoformer_block", Backend::kCuda)) GTEST_SKIP() << "built without CUDA: no evoformer_block bench";
  const ClusterSpec h200 = load_cluster("h200");
  for (const char* attn : {"naive", "fused"}) {
    MatrixPoint p;
    p.id = std::string("steps/evoformer_block/cuda/attn=") + attn + ",model=evoformer-openfold-initial,stack=extra_msa";
    p.bench = "evoformer_block";
    p.backend = "cuda";
    p.params = {{"model", "evoformer-openfold-initial"}, {"attn", attn}, {"stack", "extra_msa"}};
    const PointResult r = price_point(p, h200, default_calibration());
    ASSERT_EQ(r.status, PointStatus::kOk) << r.reason;
    const EvoformerBlockDims d =
        EvoformerBlockDims::extra_msa_from_spec(load_model("evoformer-openfold-initial").evoformer());
    const StepProgram prog = build_evoformer_block_program(d, DType::kFp32, std::string(attn) == "fused");
    // The priced peak is the program's (every weight, input, saved tensor and workspace),
    // not just what the body allocates before exec.
    EXPECT_DOUBLE_EQ(r.metrics.at("peak_bytes"), static_cast<double>(prog.replay_memory().peak_device_bytes)) << attn;
    EXPECT_GT(r.declared_flops, 0.0);
    // Its time is the sum of every op priced at its own kernel's efficiency.
    double t = 0;
    for (const StepOp& op : prog.ops) {
      if (const auto* c = std::get_if<ComputeOp>(&op)) t += compute_time_s(*c, h200, default_calibration());
    }
    EXPECT_NEAR(r.stats.median, t, 1e-12 * t) << attn;
  }
}

}  // namespace
}  // namespace seqscale
