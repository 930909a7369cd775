// Cost model tests: plan parsing and validation, published anchors (ZeRO, Korthikanti,
// Evoformer logits, Figure 9), the StepProgram closed-form consistency, calibration files,
// and a speed sanity check.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "model/anchors.h"
#include "model/calibration.h"
#include "model/estimate.h"
#include "model/memory.h"
#include "workloads/plan.h"
#include "model/roofline.h"
#include "model/search.h"
#include "model/evoformer_program.h"
#include "workloads/op_kinds.h"
#include "model/transformer_program.h"
#include "workloads/config_error.h"
#include "workloads/specs.h"

namespace seqscale {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Plan, ParsesEveryKey) {
  const Plan p = parse_plan("tp=8,pp=2,sp=megatron,zero=1,recompute=full,attn=fused,mask=none,offload=optimizer,pos=replicated");
  EXPECT_EQ(p.tp, 8);
  EXPECT_EQ(p.pp, 2);
  EXPECT_EQ(p.sp, SeqParallel::kMegatron);
  EXPECT_EQ(p.zero, 1);
  EXPECT_EQ(p.recompute, Recompute::kFull);
  EXPECT_EQ(p.offload, Offload::kOptimizer);
  EXPECT_EQ(p.pos, PosTable::kReplicated);
  EXPECT_EQ(parse_plan("").tp, 1);
}

TEST(Plan, ErrorsNameTheKey) {
  EXPECT_NE(error_of([] { parse_plan("tp=abc"); }).find("key 'tp'"), std::string::npos);
  EXPECT_NE(error_of([] { parse_plan("tp=8,bogus=1"); }).find("key 'bogus'"), std::string::npos);
  EXPECT_NE(error_of([] { parse_plan("recompute=most"); }).find("selective"), std::string::npos);
  EXPECT_NE(error_of([] { parse_plan("zero=4"); }).find("key 'zero'"), std::string::npos);
  EXPECT_NE(error_of([] { parse_plan("tp=2,tp=4"); }).find("twice"), std::string::npos);
  EXPECT_NE(error_of([] { parse_plan("tp"); }).find("no value"), std::string::npos);
}

TEST(Plan, RejectsInvalidPlansWithTheReason) {
  const ModelSpec m = load_model("genslm-25b");
  Plan heads = parse_plan("tp=3");
  EXPECT_NE(check_plan(heads, m, 12, RunShape{3072}).find("heads"), std::string::npos);
  Plan count = parse_plan("tp=8,pp=2,dp=2");
  EXPECT_NE(check_plan(count, m, 16, RunShape{4096}).find("GPU count"), std::string::npos);
  Plan seq = parse_plan("tp=8,sp=megatron");
  EXPECT_NE(check_plan(seq, m, 8, RunShape{1001}).find("not divisible"), std::string::npos);
  Plan ok = parse_plan("tp=8,pp=2,sp=megatron");
  EXPECT_EQ(check_plan(ok, m, 64, RunShape{8192}), "");
  EXPECT_EQ(ok.dp, 4);
  Plan part = parse_plan("tp=8,sp=megatron,recompute=full,ckpt=partitioned");
  EXPECT_NE(check_plan(part, m, 8, RunShape{8192}).find("ckpt=partitioned"), std::string::npos);
  Plan uly = parse_plan("tp=2,sp=ulysses");
  EXPECT_EQ(check_plan(uly, m, 16, RunShape{8192}), "");
  EXPECT_EQ(uly.sp_degree, 8);
}

// Rajbhandari et al. 2020 (ZeRO), Figure 1: 7.5B parameters, N_d = 64.
TEST(Memory, ZeroPaperExampleExact) {
  auto gb = [](int zero) { return std::round(model_state_bytes(7.5e9, zero, 64, Offload::kNone).device() / 1e8) / 10; };
  EXPECT_DOUBLE_EQ(gb(0), 120.0);
  EXPECT_DOUBLE_EQ(gb(1), 31.4);
  EXPECT_DOUBLE_EQ(gb(2), 16.6);
  EXPECT_DOUBLE_EQ(gb(3), 1.9);
}

// Korthikanti et al. 2022, Table 2: activation bytes per layer.
TEST(Memory, KorthikantiActivations) {
  TransformerSpec t;
  t.layers = 1;
  t.hidden = 1024;
  t.heads = 16;
  t.kv_heads = 16;
  t.ffn_hidden = 4096;
  t.vocab = 1024;
  t.position = PositionEmbedding::kRotary;
  ClusterSpec c;
  const double s = 2048, b = 1, h = 1024, a = 16;
  auto act = [&](const char* plan_text) {
    Plan p = parse_plan(plan_text);
    ModelSpec m;
    m.arch = t;
    EXPECT_EQ(check_plan(p, m, p.tp, RunShape{2048, 1, 0}), "");
    return transformer_memory(t, c, p, RunShape{2048, 1, 0})[MemTerm::kActivations];
  };
  EXPECT_DOUBLE_EQ(act("attn=materialized"), s * b * h * (34 + 5 * a * s / h));
  EXPECT_DOUBLE_EQ(act("tp=8,attn=materialized"), s * b * h * (10 + 24.0 / 8 + 5 * a * s / (h * 8)));
  EXPECT_DOUBLE_EQ(act("tp=8,sp=megatron,attn=materialized"), s * b * h / 8 * (34 + 5 * a * s / h));
  EXPECT_DOUBLE_EQ(act("tp=8,sp=megatron,attn=materialized,recompute=selective"), s * b * h / 8 * 34);
  EXPECT_DOUBLE_EQ(act("tp=8,sp=megatron,recompute=full"), 2 * s * b * h / 8);
  EXPECT_DOUBLE_EQ(act("tp=8,recompute=full"), 2 * s * b * h);
  // DeepSpeed partition_activations: the checkpoint is split over the TP ranks.
  EXPECT_DOUBLE_EQ(act("tp=8,recompute=full,ckpt=partitioned"), 2 * s * b * h / 8);
  // Fused attention: the 5as/h term becomes an fp32 log-sum-exp.
  EXPECT_DOUBLE_EQ(act("attn=fused"), s * b * h * 34 + 4 * a * s * b);
}

TEST(Memory, TransformerParamsFormula) {
  const ModelSpec m = load_model("genslm-25b");
  const TransformerSpec& t = m.transformer();
  const double L = 64, h = 6144, V = 50304, s = 524288;
  EXPECT_NEAR(transformer_params(t, 524288), 12 * L * h * h * (1 + 13 / (12 * h) + (V + s) / (12 * L * h)), 1.0);
}

// ANCHORS s1: 5120 * 8 * 384^2 * 2 B = 12.08 GB.
TEST(Memory, EvoformerExtraMsaLogits) {
  const ModelSpec m = load_model("evoformer-openfold-finetune");
  const EvoformerSpec& e = m.evoformer();
  EXPECT_NEAR(attention_logits_bytes(e.n_extra, e.extra_msa.heads, e.n_res, DType::kBf16) / 1e9, 12.08, 0.005);
}

TEST(Memory, FusedEvoformerAttentionSavesMemory) {
  const ModelSpec m = load_model("evoformer-openfold-finetune");
  const ClusterSpec c = load_cluster("dgx-a100-80g");
  Plan naive = parse_plan("attn=materialized,recompute=full");
  Plan fused = parse_plan("attn=fused,recompute=full");
  const Calibration cal = default_calibration();
  const double n = estimate(m, c, naive, 1, RunShape{}, cal).memory.peak();
  const double f = estimate(m, c, fused, 1, RunShape{}, cal).memory.peak();
  EXPECT_GT(n / f, 5.0);
}

TEST(Memory, OldFrameworkBuildsTheMaskInFp32OnTheGpu) {
  // DS4Sci: the fp32 s x s mask is 7.4 GB at 42K; Megatron builds it as tril(ones) (two fp32
  // copies at once) and keeps the bool.
  const ModelSpec m = load_model("genslm-25b");
  ClusterSpec bare;
  bare.gpu_memory_bytes = 1;
  Plan p = parse_plan("tp=8,pp=2,mask=fp32,recompute=full,zero=1,offload=optimizer");
  validate_plan(p, m, 16, RunShape{43008});
  const double s2 = 43008.0 * 43008.0;
  EXPECT_NEAR(4 * s2 / 1e9, 7.4, 0.01);
  // Short sequence: the step binds and keeps the bool mask.
  EXPECT_DOUBLE_EQ(transformer_memory(m.transformer(), bare, p, RunShape{4096})[MemTerm::kAttentionMask], 4096.0 * 4096.0);
  // Long sequence with small states: the fp32 build binds (8 B per element).
  Plan q = parse_plan("tp=8,mask=fp32,recompute=full,zero=3,offload=all");
  validate_plan(q, m, 64, RunShape{262144});
  const MemoryBreakdown mb = transformer_memory(m.transformer(), bare, q, RunShape{262144});
  EXPECT_EQ(mb.binding(), MemTerm::kAttentionMask);
  EXPECT_DOUBLE_EQ(mb[MemTerm::kAttentionMask], 8.0 * 262144.0 * 262144.0);
  EXPECT_DOUBLE_EQ(mb[MemTerm::kActivations], 0.0);
}

TEST(Search, Figure9OrderingAndTolerance) {
  const std::vector<AnchorRow> rows = validate_anchors();
  int fig9 = 0, fig9_ok = 0;
  for (const AnchorRow& r : rows) {
    if (r.group == "figure9-order") {
      EXPECT_TRUE(r.ok()) << r.name;
    }
    if (r.group == "figure9") {
      ++fig9;
      fig9_ok += r.ok() ? 1 : 0;
    }
    if (r.claimed) {
      EXPECT_TRUE(r.ok()) << r.name << ": published " << r.published << ", predicted " << r.predicted;
    }
    if (r.group == "zero" || r.name.find("logits") != std::string::npos) {
      EXPECT_TRUE(r.ok()) << r.name;
    }
  }
  EXPECT_EQ(fig9, 18);
  EXPECT_GE(fig9_ok, 17);  // all but Megatron-LM 33B at 16 GPUs, which is not claimed
}

TEST(Anchors, GridCellMeansLastPointThatRan) {
  // Published 128 on a 64 grid: 128 ran and 192 did not, so [128, 192) agrees exactly.
  AnchorRow r;
  r.published = 128;
  r.tolerance = 0.15 * 128;
  r.grid_step = 64;
  r.predicted = 189;
  EXPECT_TRUE(r.in_grid_cell());
  EXPECT_TRUE(r.ok());
  r.predicted = 192;  // the next grid point would have run: outside the cell and beyond 15%
  EXPECT_FALSE(r.in_grid_cell());
  EXPECT_FALSE(r.ok());
  r.predicted = 110;  // below the cell but within 15%
  EXPECT_FALSE(r.in_grid_cell());
  EXPECT_TRUE(r.ok());
  r.predicted = 100;
  EXPECT_FALSE(r.ok());
  r.grid_step = 0;  // no grid: the tolerance alone decides
  r.predicted = 189;
  EXPECT_FALSE(r.ok());
}

TEST(Search, PresetsOrderAndBestIsLongest) {
  const ModelSpec m = load_model("genslm-25b");
  const ClusterSpec c = load_cluster("dgx-a100-40g");
  for (std::int64_t g : {16, 32, 64}) {
    const auto oldr = max_sequence(m, c, g, find_preset("megatron-deepspeed-old"));
    const auto newr = max_sequence(m, c, g, find_preset("megatron-deepspeed-new"));
    const auto best = max_sequence(m, c, g, find_preset("seqscale-best"));
    EXPECT_GT(newr.max_seq, oldr.max_seq);
    EXPECT_GE(best.max_seq, newr.max_seq);
    // The reported plan really fits at max_seq and not one step later.
    const Estimate e = estimate(m, c, best.plan, g, RunShape{best.max_seq}, default_calibration());
    EXPECT_TRUE(e.fits);
  }
  EXPECT_NE(error_of([] { find_preset("nope"); }).find("megatron-lm"), std::string::npos);
}

TEST(Search, BestPlanIsFeasibleAndFastest) {
  const ModelSpec m = load_model("genslm-25b");
  const ClusterSpec c = load_cluster("dgx-a100-40g");
  const Preset& p = find_preset("megatron-lm");
  const RunShape shape{16384, 1, 0};
  const Calibration cal = default_calibration();
  const BestPlan best = best_plan(m, c, 32, p, shape, cal);
  ASSERT_TRUE(best.found);
  EXPECT_TRUE(best.estimate.fits);
  for (const Plan& plan : enumerate_plans(p, m, c, 32)) {
    Plan q = plan;
    if (!check_plan(q, m, 32, shape).empty()) continue;
    const Estimate e = estimate(m, c, q, 32, shape, cal);
    if (e.fits) {
      EXPECT_GE(e.time.step, best.estimate.time.step);
    }
  }
}

TEST(Search, BisectionEqualsExhaustiveSweep) {
  const ModelSpec m = load_model("genslm-33b");
  const ClusterSpec c = load_cluster("dgx-a100-40g");
  const Preset& p = find_preset("megatron-lm");
  MaxSeqResult swept;
  exhaustive_sweep(m, c, 32, p, 1024, 1 << 17, &swept);
  EXPECT_EQ(max_sequence(m, c, 32, p, 1024).max_seq, swept.max_seq);
}

// The closed form equals replaying the StepProgram built for the same plan: genslm-25b
// under the main strategies, and tiny-moe under expert parallelism (with LSS too).
TEST(StepProgram, ClosedFormEqualsReplay) {
  const ClusterSpec c = load_cluster("dgx-a100-40g");
  ClusterSpec bare;
  struct Case {
    const char* model;
    std::int64_t gpus, seq;
    const char* plan;
  };
  for (const Case& k : {Case{"genslm-25b", 16, 16384, "tp=8,sp=megatron,recompute=full"},
                        Case{"genslm-25b", 16, 16384, "tp=4,pp=4,recompute=selective,attn=materialized,mask=fp32"},
                        Case{"genslm-25b", 16, 16384, "tp=8,pp=2,sp=megatron,zero=1,offload=optimizer,recompute=full"},
                        Case{"genslm-25b", 16, 16384, "tp=2,sp=ulysses,zero=3,recompute=full"},
                        Case{"genslm-25b", 16, 16384, "sp=lss,sp_degree=8,zero=1,recompute=full"},
                        Case{"tiny-moe", 8, 64, "ep=4,zero=1"}, Case{"tiny-moe", 8, 64, "ep=8,zero=3,recompute=full"},
                        Case{"tiny-moe", 8, 64, "ep=2,tp=2,sp=megatron"}, Case{"tiny-moe", 8, 64, "sp=lss,sp_degree=2,ep=4"}}) {
    const ModelSpec m = load_model(k.model);
    const std::string text = std::string(k.model) + " " + k.plan;
    Plan p = parse_plan(k.plan);
    const RunShape shape{k.seq, 1, 0};
    validate_plan(p, m, k.gpus, shape);
    const MemoryBreakdown closed = transformer_memory(m.transformer(), bare, p, shape);
    const StepProgram prog = build_transformer_program(m.transformer(), p, shape);
    EXPECT_NEAR(static_cast<double>(prog.replay_memory().peak_device_bytes), closed.peak(), 64.0) << text;
    EXPECT_EQ(prog.replay_memory().final_device_bytes,
              static_cast<std::int64_t>(std::llround(closed[MemTerm::kParameters])) +
                  std::llround(closed[MemTerm::kGradients]) + std::llround(closed[MemTerm::kOptimizer]) +
                  std::llround(closed[MemTerm::kPositionTable]) + std::llround(closed[MemTerm::kAttentionMask]) +
                  std::llround(closed[MemTerm::kCommBuffers]) + std::llround(closed[MemTerm::kZero3Gather]) +
                  std::llround(closed[MemTerm::kSpGatherBuffers]))
        << text;
    if (p.pp == 1) {
      // The program's compute is the layer's definition recorded (LSS and MoE: the closed
      // form's ops): its GEMMs are the closed form's (layer_gemm_flops a pass, 3 passes or 4
      // with full recompute, plus the output GEMMs), its attention forward the closed form's
      // s^2 term. (Its backward attention differs: FlashAttention-2's 2.5x the forward, and
      // selective recompute of the core; its norms and elementwise ops add FLOPs the closed
      // form leaves out.) Together they give estimate()'s hardware FLOPs.
      const Estimate e = estimate(m, c, p, k.gpus, shape, default_calibration());
      double gemm = 0, attention_fwd = 0;
      for (const StepOp& op : prog.ops) {
        const auto* c_op = std::get_if<ComputeOp>(&op);
        if (!c_op) continue;
        if (c_op->kernel == op_kind::kGemm) gemm += c_op->cost.flops;
        const bool attention = c_op->kernel.starts_with("causal_attention") || c_op->kernel.starts_with("attention_naive");
        if (attention && c_op->phase == Phase::kForward) attention_fwd += c_op->cost.flops;
      }
      const double passes = p.recompute == Recompute::kFull ? 4.0 : 3.0;
      EXPECT_GT(attention_fwd, 0) << text;
      EXPECT_NEAR((gemm + passes * attention_fwd) / e.hw_flops_per_gpu, 1.0, 1e-9) << text;
    }
  }
}

TEST(StepProgram, EvoformerClosedFormEqualsReplay) {
  const ModelSpec m = load_model("evoformer-openfold-finetune");
  ClusterSpec bare;
  for (const char* text : {"attn=fused,recompute=full", "attn=naive,recompute=full", "dap=4,attn=fused,recompute=full",
                           "attn=fused,recompute=none"}) {
    Plan p = parse_plan(text);
    const RunShape shape{384, 1, 0};
    validate_plan(p, m, p.dap, shape);
    const MemoryBreakdown closed = evoformer_memory(m.evoformer(), bare, p, shape);
    const StepProgram prog = build_evoformer_program(m.evoformer(), p, shape);
    EXPECT_NEAR(static_cast<double>(prog.replay_memory().peak_device_bytes), closed.peak(), 64.0) << text;
    EXPECT_GT(prog.total_flops(), 0.0);
    // The program's compute is the estimate's: every block op priced at its efficiency.
    const ClusterSpec a100 = load_cluster("dgx-a100-80g");
    const Estimate est = estimate(m, a100, p, p.dap, shape, default_calibration());
    double t = 0;
    for (const StepOp& op : prog.ops) {
      if (const auto* c = std::get_if<ComputeOp>(&op)) t += compute_time_s(*c, a100, default_calibration());
    }
    EXPECT_NEAR(t, est.time.compute, 1e-9 * est.time.compute) << text;
    // And its collectives are evoformer_step_comm's (DAP all-to-alls, gathers, reductions).
    if (p.dap > 1) {
      EXPECT_GT(prog.comm_bytes(GroupKind::kSequence), 0) << text;
    }
  }
}

TEST(Roofline, ComputeAndCommunication) {
  const ClusterSpec c = load_cluster("dgx-a100-40g");
  // 312 TFLOP/s at 50%: 1 TFLOP takes 1/156 s; bandwidth-bound when bytes dominate.
  EXPECT_NEAR(compute_time_s(KernelCost{1e12, 0, 0}, DType::kBf16, c, 0.5), 1.0 / 156.0, 1e-9);
  EXPECT_NEAR(compute_time_s(KernelCost{0, 1.555e12, 0}, DType::kBf16, c, 1.0), 1.0, 1e-9);
  EXPECT_NEAR(compute_time_s(KernelCost{19.5e12, 0, 0}, DType::kFp32, c, 1.0), 1.0, 1e-9);
  EXPECT_DOUBLE_EQ(busbw_factor(Collective::kAllReduce, 8), 2.0 * 7 / 8);
  EXPECT_DOUBLE_EQ(busbw_factor(Collective::kAllGather, 8), 7.0 / 8);
  Calibration cal = default_calibration();
  cal.comm.clear();
  cal.default_comm_efficiency = 1.0;
  // Ring all-reduce: 2(n-1) alpha + 2(n-1)/n S / beta.
  const double t = comm_time_s(Collective::kAllReduce, 8, 1e9, false, 8, c, cal);
  EXPECT_NEAR(t, 14 * c.nvlink_latency_s + 1.75e9 / c.nvlink_bytes_per_s, 1e-12);
  // Across nodes, 8 ranks per node drive 8 NICs: min(NVLink, 8 x IB).
  EXPECT_DOUBLE_EQ(link_bytes_per_s(c, true, 8), std::min(c.nvlink_bytes_per_s, 8 * c.ib_bytes_per_s));
  EXPECT_DOUBLE_EQ(link_bytes_per_s(c, true, 1), c.ib_bytes_per_s);
}

TEST(Calibration, SaveLoadRoundTripAndStrictErrors) {
  const std::string dir = ::testing::TempDir();
  const std::string path = dir + "/seqscale_cal_test.json";
  Calibration c = default_calibration();
  c.device = "test-gpu";
  c.compute["gemm"] = 0.77;
  c.comm["ib"]["all_to_all"] = 0.33;
  save_calibration(c, path);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  const Calibration r = load_calibration(path);
  EXPECT_EQ(r.device, "test-gpu");
  EXPECT_DOUBLE_EQ(r.compute_efficiency("gemm"), 0.77);
  EXPECT_DOUBLE_EQ(r.compute_efficiency("attention_fused_bwd"), c.compute.at("attention_fused"));
  EXPECT_THROW(r.compute_efficiency("unknown_kernel"), std::logic_error);  // not an op kind (workloads/op_kinds.h)
  EXPECT_DOUBLE_EQ(r.comm_efficiency(Collective::kAllToAll, LinkTier::kIb), 0.33);

  auto write = [&](const std::string& text) {
    std::ofstream(path) << text;
  };
  write(R"({"schema": "seqscale.calibration/2"})");
  EXPECT_NE(error_of([&] { load_calibration(path); }).find("schema"), std::string::npos);
  write(R"({"schema": "seqscale.calibration/1", "compute_efficiency": {"gemm": 1.5}})");
  EXPECT_NE(error_of([&] { load_calibration(path); }).find("compute_efficiency.gemm"), std::string::npos);
  write(R"({"schema": "seqscale.calibration/1", "comm_efficiency": {"pcie": {}}})");
  EXPECT_NE(error_of([&] { load_calibration(path); }).find("pcie"), std::string::npos);
  write(R"({"schema": "seqscale.calibration/1", "colour": 1})");
  EXPECT_NE(error_of([&] { load_calibration(path); }).find("colour"), std::string::npos);
  std::filesystem::remove(path);
}

TEST(Estimate, BreakdownSumsAndThroughput) {
  const ModelSpec m = load_model("genslm-25b");
  const ClusterSpec c = load_cluster("dgx-a100-40g");
  const Estimate e = estimate(m, c, parse_plan("tp=8,pp=2,sp=megatron,zero=1,recompute=full"), 64,
                              RunShape{32768, 1, 64}, default_calibration());
  const TimeBreakdown& t = e.time;
  EXPECT_NEAR(t.step, t.compute + t.tp_comm + t.seq_comm + t.pp_comm + t.bubble + t.dp_comm + t.zero3_comm + t.optimizer + t.offload, 1e-12);
  EXPECT_GT(t.bubble, 0.0);
  EXPECT_NEAR(e.tokens_per_s, 64.0 * 32768 / t.step, 1e-6);
  EXPECT_GT(e.mfu, 0.05);
  EXPECT_LT(e.mfu, 0.8);
  EXPECT_TRUE(e.fits);
}

// DeepSpeed-Ulysses (ANCHORS s3): all-to-all per-link volume 4Nh/P stays constant when the
// sequence N and the degree P grow together, while Megatron-SP's stays 4Nh and grows with N.
TEST(Estimate, UlyssesCommunicationStaysConstantAsNAndPGrow) {
  const ModelSpec m = load_model("genslm-25b");
  ClusterSpec c = load_cluster("dgx-a100-40g");
  c.gpus_per_node = 64;  // one NVLink domain, so only the algorithm changes with P
  c.gpu_memory_bytes = std::int64_t{1} << 50;
  const Calibration cal = default_calibration();
  auto comm = [&](const char* plan, std::int64_t p) {
    const Estimate e = estimate(m, c, parse_plan(plan), p, RunShape{8192 * p, 1, 0}, cal);
    return e.time.seq_comm + e.time.tp_comm;
  };
  const double u8 = comm("sp=ulysses,recompute=full", 8), u32 = comm("sp=ulysses,recompute=full", 32);
  const double m8 = comm("tp=8,sp=megatron,recompute=full", 8), m32 = comm("tp=32,sp=megatron,recompute=full", 32);
  // Ring factors (P-1)/P (7/8 -> 31/32) and P-1 latency steps move Ulysses a little (1.24x);
  // Megatron-SP grows with N (4x, times the same ring factor).
  EXPECT_LT(u32 / u8, 1.35);
  EXPECT_NEAR(m32 / m8, 4.0 * (31.0 / 32) / (7.0 / 8), 0.1);
}

// The issue's speed target is 1e6 plan evaluations per second (recorded by the Google
// Benchmark in model/bench); here a loose floor that holds on a loaded CI core.
TEST(Speed, MemoryEvaluationIsFast) {
  const ModelSpec m = load_model("genslm-25b");
  const ClusterSpec c = load_cluster("dgx-a100-40g");
  Plan p = parse_plan("tp=8,pp=2,sp=megatron,zero=1,recompute=full");
  validate_plan(p, m, 16, RunShape{8192});
  const auto t0 = std::chrono::steady_clock::now();
  double sink = 0;
  for (int i = 0; i < 200000; ++i) sink += estimate_memory(m, c, p, RunShape{1024 * (1 + i % 256), 1, 0}).peak();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GT(sink, 0.0);
  EXPECT_LT(s, 1.0);  // >= 200k evaluations per second even unoptimised
}

}  // namespace
}  // namespace seqscale
