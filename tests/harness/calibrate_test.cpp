// Calibration recovers known efficiencies from synthetic results, and the model's pricing
// of a matrix point uses the same declaration the measured run reports.
#include <gtest/gtest.h>

#include <random>

#include "harness/bench/pricing.h"
#include "harness/calibrate.h"
#include "kernels/evoformer_block/evoformer_block_def.h"
#include "model/evoformer_block_program.h"
#include "model/roofline.h"
#include "tests/support/seed.h"
#include "workloads/config_error.h"

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

TEST(Pricing, ModelPricesTheDeclaredCostOfAMatrixPoint) {
  const ClusterSpec h100 = load_cluster("h100");
  MatrixPoint p;
  p.id = "kernels/layernorm_fwd/cuda/cols=6144,dtype=bf16,rows=16384";
  p.bench = "layernorm_fwd";
  p.backend = "cuda";
  p.params = {{"rows", 16384}, {"cols", 6144}, {"dtype", "bf16"}};
  Calibration cal = default_calibration();
  cal.compute["layernorm_fwd"] = 0.5;
  const PointResult r = price_point(p, h100, cal);
  ASSERT_EQ(r.status, PointStatus::kOk) << r.reason;
  EXPECT_EQ(r.source, "model");
  const double bytes = 2.0 * 16384 * 6144 * 2 + 2.0 * 6144 * 2 + 8.0 * 16384;
  EXPECT_DOUBLE_EQ(r.declared_bytes, bytes);
  EXPECT_NEAR(r.stats.median, bytes / (h100.hbm_bytes_per_s * 0.5), 1e-12);
  // The body's allocations are the model's memory. CUDA body: x, y in bf16, weight and bias
  // in bf16, fp32 mean and rstd. (A build without CUDA prices the CPU body instead.)
  if (find_bench("layernorm_fwd", Backend::kCuda)) {
    EXPECT_DOUBLE_EQ(r.metrics.at("peak_bytes"), 2.0 * 16384 * 6144 * 2 + 2 * 6144 * 2 + 2 * 16384 * 4);
  } else {
    EXPECT_DOUBLE_EQ(r.metrics.at("peak_bytes"), 16384.0 * 6144 * 4 + 2 * 6144 * 4 + 16384.0 * 6144 * 8 + 2 * 16384 * 8);
  }
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
