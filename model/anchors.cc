#include "model/anchors.h"

#include <algorithm>
#include <cmath>

#include "model/estimate.h"
#include "model/memory.h"
#include "model/search.h"
#include "workloads/specs.h"

namespace seqscale {

bool AnchorRow::in_grid_cell() const {
  return grid_step > 0 && predicted >= published && predicted < published + grid_step;
}

bool AnchorRow::ok() const {
  if (in_grid_cell()) return true;
  return std::fabs(predicted - published) <= tolerance + 1e-9;
}

namespace {

double round_to(double v, double step) { return std::round(v / step) * step; }

void zero_rows(std::vector<AnchorRow>& rows) {
  // Rajbhandari et al. 2020 (ZeRO), Figure 1 / section 5: Psi = 7.5B, N_d = 64, K = 12.
  const double psi = 7.5e9;
  const struct { int zero; double published; } cases[] = {{0, 120.0}, {1, 31.4}, {2, 16.6}, {3, 1.9}};
  for (const auto& c : cases) {
    const double gb = model_state_bytes(psi, c.zero, 64, Offload::kNone).device() / 1e9;
    rows.push_back({"zero", "7.5B model states per GPU, N_d=64, ZeRO-" + std::to_string(c.zero),
                    "Rajbhandari et al. 2020, Figure 1", "GB", c.published, round_to(gb, 0.1), 0.0, true, ""});
  }
}

void evoformer_rows(std::vector<AnchorRow>& rows) {
  const ModelSpec ft = load_model("evoformer-openfold-finetune");
  const EvoformerSpec& e = ft.evoformer();
  // ANCHORS s1 / DS4Sci: extra-MSA row attention logits at the finetuning crop.
  const double logits = attention_logits_bytes(e.n_extra, e.extra_msa.heads, e.n_res, DType::kBf16) / 1e9;
  rows.push_back({"evoformer", "finetune extra-MSA row attention logits (one copy)", "DS4Sci EvoformerAttention; ANCHORS s1",
                  "GB", 12.08, round_to(logits, 0.01), 0.0, true, ""});
  // DS4Sci / OpenFold blog, Figure 2: "peak memory requirement for training variants of the
  // MSA attention kernels (with bias) with the maximum possible training sample dimension":
  // the finetuning extra-MSA row attention (N_extra 5120, N_res 384, c_e 64, H 8, D 8).
  const double bt = static_cast<double>(e.n_extra), len = static_cast<double>(e.n_res);
  const double c_in = static_cast<double>(e.c_e), h = static_cast<double>(e.extra_msa.heads);
  const double d = static_cast<double>(e.extra_msa.head_dim);
  const double naive = evoformer_attention_module_bytes(bt, len, c_in, h, d, true, AttentionImpl::kMaterialized) / 1e9;
  const double fused = evoformer_attention_module_bytes(bt, len, c_in, h, d, true, AttentionImpl::kFused) / 1e9;
  rows.push_back({"evoformer", "OpenFold extra-MSA attention training peak, naive", "DS4Sci OpenFold showcase, Figure 2",
                  "GB", 95.4, round_to(naive, 0.1), 0.15 * 95.4, true, ""});
  AnchorRow f{"evoformer", "OpenFold extra-MSA attention training peak, DS4Sci fused", "DS4Sci OpenFold showcase, Figure 2",
              "GB", 7.2, round_to(fused, 0.1), 0.15 * 7.2, false, ""};
  f.note = "not claimed: our tensor-by-tensor account of the module (fp32 input and LayerNorm, bf16 projections, "
           "their gradients, fp32 LSE, dQ accumulator and bias gradient) gives " + std::to_string(fused).substr(0, 4) +
           " GB; the published 7.2 GB holds ~2.6 GB we cannot attribute (the published 13x ratio comes out " +
           std::to_string(naive / fused).substr(0, 4) + "x)";
  rows.push_back(f);
}

void figure9_rows(std::vector<AnchorRow>& rows) {
  // DS4Sci (Song et al. 2023) Figure 9: max trainable sequence length (K tokens), DGX A100-40GB.
  struct Point { const char* model; int gpus; double old_k, mlm_k, new_k; };
  const Point points[] = {{"genslm-25b", 16, 36, 26, 192}, {"genslm-25b", 32, 42, 48, 448}, {"genslm-25b", 64, 42, 52, 512},
                          {"genslm-33b", 16, 28, 14, 128}, {"genslm-33b", 32, 32, 46, 384}, {"genslm-33b", 64, 32, 52, 448}};
  const ClusterSpec cluster = load_cluster("dgx-a100-40g");
  for (const Point& pt : points) {
    const ModelSpec model = load_model(pt.model);
    const char* names[] = {"megatron-deepspeed-old", "megatron-lm", "megatron-deepspeed-new"};
    const double pub[] = {pt.old_k, pt.mlm_k, pt.new_k};
    double pred[3];
    for (int i = 0; i < 3; ++i) {
      const MaxSeqResult r = max_sequence(model, cluster, pt.gpus, find_preset(names[i]), 1024);
      pred[i] = static_cast<double>(r.max_seq) / 1024.0;
      AnchorRow row{"figure9", std::string(pt.model) + " " + std::to_string(pt.gpus) + " GPUs " + names[i],
                    "Song et al. 2023 (DeepSpeed4Science) Figure 9", "K tokens", pub[i], pred[i],
                    std::max(0.15 * pub[i], 2.0), true, r.max_seq > 0 ? plan_to_string(r.plan) + "; binds: " + std::string(mem_term_name(r.binding)) : "nothing fits"};
      // Every new-framework value is a multiple of 64K (192, 448, 512, 128, 384, 448): those runs
      // stepped the sequence by 64K, so 128K means "128K ran, 192K did not".
      if (i == 2) row.grid_step = 64;
      if (i == 1 && std::string(pt.model) == "genslm-33b" && pt.gpus == 16) {
        row.claimed = false;
        row.note = "not claimed: with hidden 6144 the model has 36.2B parameters; without ZeRO sharding (dp=1) its "
                   "16 B/param states are 36.2 GB per GPU before any activation, so no Megatron-LM plan fits; the "
                   "published run must have used a smaller variant (ANCHORS s3 mentions hidden 5760)";
      }
      rows.push_back(row);
    }
    rows.push_back({"figure9-order", std::string(pt.model) + " " + std::to_string(pt.gpus) + " GPUs: new > old and new > megatron-lm",
                    "Song et al. 2023 Figure 9", "bool", 1.0, (pred[2] > pred[0] && pred[2] > pred[1]) ? 1.0 : 0.0, 0.0, true, ""});
  }
}

void gpt30b_rows(std::vector<AnchorRow>& rows) {
  // DS4Sci GPT-30B (64L/6144/64h) on 32 A100-40GB: TP=32, Megatron-SP, full recompute, FlashAttention.
  const ModelSpec model = load_model("gpt-30b");
  const ClusterSpec cluster = load_cluster("dgx-a100-40g");
  const Calibration cal = default_calibration();
  const double published[] = {68, 80, 86, 92, 100, 106, 119, 94};
  for (int i = 0; i < 8; ++i) {
    const std::int64_t seq = std::int64_t{2048} << i;
    const Plan plan = parse_plan("tp=32,sp=megatron,zero=1,recompute=full,attn=fused,mask=none,pos=partitioned");
    const Estimate e = estimate(model, cluster, plan, 32, RunShape{seq, 1, 0}, cal);
    AnchorRow row{"gpt30b", "GPT-30B new framework TFLOP/s per GPU at " + std::to_string(seq / 1024) + "K",
                  "Song et al. 2023 (DeepSpeed4Science), GPT-30B table", "TFLOP/s", published[i],
                  std::round(e.tflops_per_gpu * 10) / 10, 0.15 * published[i], true, e.fits ? "" : "predicted OOM"};
    if (seq == 262144) {
      row.claimed = false;
      row.note = "not claimed: the published drop from 119 to 94 at 256K has no mechanism in the model; the plan "
                 "still fits, but at " + std::to_string(e.memory.peak() / 1e9).substr(0, 4) +
                 " GB of 40 GB, where PyTorch's caching allocator starts freeing and retrying (a plausible cause "
                 "the model does not price)";
    }
    rows.push_back(row);
  }
  // The old framework at the same shape (no SP, fp32 mask, replicated table): OOM from 8K.
  for (std::int64_t seq : {std::int64_t{4096}, std::int64_t{8192}}) {
    const Plan plan = parse_plan("tp=32,sp=none,zero=1,recompute=full,attn=materialized,mask=fp32,pos=replicated");
    const Estimate e = estimate(model, cluster, plan, 32, RunShape{seq, 1, 0}, cal);
    AnchorRow row{"gpt30b", "GPT-30B old framework fits at " + std::to_string(seq / 1024) + "K (1 = fits)",
                  "Song et al. 2023, GPT-30B table (old: OOM from 8K)", "bool", seq < 8192 ? 1.0 : 0.0,
                  e.fits ? 1.0 : 0.0, 0.0, true, "peak " + std::to_string(e.memory.peak() / 1e9).substr(0, 5) + " GB"};
    if (seq >= 8192) {
      row.claimed = false;
      row.note += "; not claimed: at TP=32 the old stack's per-GPU memory at 8K is ~26 GB in our model (states "
                  "14.5 GB, unpartitioned checkpoints 6.4 GB, scores and fp32 mask < 1 GB); the published OOM "
                  "needs a term the model lacks (and the same architecture reaches 42K in Figure 9's old column)";
    }
    rows.push_back(row);
  }
}

}  // namespace

std::vector<AnchorRow> validate_anchors() {
  std::vector<AnchorRow> rows;
  zero_rows(rows);
  evoformer_rows(rows);
  figure9_rows(rows);
  gpt30b_rows(rows);
  return rows;
}

}  // namespace seqscale
