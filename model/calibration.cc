#include "model/calibration.h"

#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "workloads/config_error.h"
#include "workloads/json_fields.h"

namespace seqscale {

std::string_view tier_name(LinkTier t) { return t == LinkTier::kNvlink ? "nvlink" : "ib"; }

namespace {

using EfficiencyMap = std::map<std::string, double, std::less<>>;

constexpr int kSizeClassReach = 4;  // how many classes away a measured size class still applies

// What `compute` holds for one name (an op kind or a family): with a size class, the
// nearest class key within reach (exact first, then smaller before larger); then the
// name's size-independent key.
std::optional<double> stored_efficiency(const EfficiencyMap& compute, std::string_view name, std::optional<int> cls) {
  for (int d = 0; cls && d <= kSizeClassReach; ++d) {
    for (int c : {*cls - d, *cls + d}) {
      if (auto it = compute.find(Calibration::size_class_key(name, c)); it != compute.end()) return it->second;
    }
  }
  if (auto it = compute.find(name); it != compute.end()) return it->second;
  return std::nullopt;
}

// The op kind's own efficiency, else its family's, else the default.
double efficiency_of(const Calibration& cal, std::string_view op_kind, std::optional<int> cls) {
  const OpKind& kind = op_kind_named(op_kind);
  if (auto e = stored_efficiency(cal.compute, kind.name, cls)) return *e;
  if (kind.family != kind.name) {
    if (auto e = stored_efficiency(cal.compute, kind.family, cls)) return *e;
  }
  return cal.default_compute_efficiency;
}

}  // namespace

int Calibration::size_class(double work) { return work >= 1 ? static_cast<int>(std::floor(std::log2(work))) : 0; }

std::string Calibration::size_class_key(std::string_view op_kind, int size_class) {
  return std::string(op_kind) + "@" + std::to_string(size_class);
}

double Calibration::compute_efficiency(std::string_view op_kind) const {
  return efficiency_of(*this, op_kind, std::nullopt);
}

double Calibration::compute_efficiency(std::string_view op_kind, double work) const {
  return efficiency_of(*this, op_kind, size_class(work));
}

double Calibration::comm_efficiency(Collective c, LinkTier tier) const {
  if (auto t = comm.find(tier_name(tier)); t != comm.end()) {
    if (auto it = t->second.find(collective_name(c)); it != t->second.end()) return it->second;
  }
  return default_comm_efficiency;
}

// Defaults, used when no measured calibration is given. Each is a fraction of peak:
//  gemm 0.80            ANCHORS.md s5: H100 bf16 GEMM measured 798 of 989 TFLOP/s (0.81);
//                       A100 cuBLAS large bf16 GEMMs reach ~250 of 312 (0.80).
//  causal_attention 0.25 of peak on the FLOPs the kernel executes (half of s^2: masked
//                       tiles skipped). This is the one constant fitted to a published
//                       table: the DS4Sci GPT-30B runs (A100, Megatron-DeepSpeed
//                       --use-flash-attn-triton, the legacy Triton FlashAttention, head dim
//                       96 padded to 128) give
//                       TFLOP/s from 2K to 128K whose *shape* fixes it (0.20-0.25 fit 7 of
//                       7 points, 0.30 only 5). FlashAttention-2 on A100/H100 measures ~2x
//                       higher: run `seqscale calibrate` for today's kernels.
//  attention_fused 0.25 the Evoformer's gated, pair-biased fused kernel (DS4Sci
//                       EvoformerAttention): not fitted, the causal kernel's value until
//                       `seqscale calibrate` measures it.
//  attention_naive 0.45 materialized QK^T / PV batched GEMMs are smaller and the softmax in
//                       between is bandwidth-bound (bytes are priced separately).
//  softmax, layernorm, elementwise 0.70 of HBM bandwidth: one-pass kernels (FastFold
//                       fused softmax / Apex layernorm reach 70-85% of copy bandwidth).
//  optimizer 0.60       fused Adam streams 16 B/param in + 16 out, ~60% of copy bandwidth.
//  cross_entropy 0.60   as the optimizer: a fused kernel streaming the logits (not measured).
//  permute              no key: default_compute_efficiency (0.5) of HBM bandwidth (not measured).
//  The passes (attention_fused_fwd, layernorm_bwd, ...) fall back to these families.
//  Collectives: NCCL busbw / link bandwidth. nccl-tests on DGX A100: all_reduce ~230 of
//  300 GB/s NVLink (0.77); across nodes ~ 0.80 of the per-GPU HDR rate; all_to_all is the
//  worst pattern (0.60 NVLink, 0.55 IB).
Calibration default_calibration() {
  Calibration c;
  c.source = "default";
  c.default_compute_efficiency = 0.5;
  using namespace op_kind;
  c.compute = {{kGemm, 0.80},         {kCausalAttention, 0.25}, {kAttentionFused, 0.25},
               {kAttentionNaive, 0.45}, {kSoftmax, 0.70},       {kLayernorm, 0.70},
               {kElementwise, 0.70},  {kCrossEntropy, 0.60},    {kOptimizer, 0.60}};
  c.default_comm_efficiency = 0.70;
  c.comm["nvlink"] = {{"all_reduce", 0.77}, {"all_gather", 0.77}, {"reduce_scatter", 0.77},
                      {"all_to_all", 0.60}, {"broadcast", 0.75}, {"send_recv", 0.75}};
  c.comm["ib"] = {{"all_reduce", 0.80}, {"all_gather", 0.80}, {"reduce_scatter", 0.80},
                  {"all_to_all", 0.55}, {"broadcast", 0.80}, {"send_recv", 0.80}};
  return c;
}

namespace {

double read_efficiency(JsonFields& f, const std::string& key) { return f.number(key, 1e-6, 1.0); }

// An op kind, or one of its size classes: "gemm", "gemm@40".
bool is_compute_key(std::string_view key) {
  const std::size_t at = key.find('@');
  if (at == std::string_view::npos) return find_op_kind(key) != nullptr;
  const std::string_view cls = key.substr(at + 1);
  int value = 0;
  const auto [end, err] = std::from_chars(cls.data(), cls.data() + cls.size(), value);
  return find_op_kind(key.substr(0, at)) != nullptr && !cls.empty() && err == std::errc() &&
         end == cls.data() + cls.size();
}

}  // namespace

Calibration load_calibration(const std::string& path) {
  const nlohmann::json doc = read_json_file(path, "calibration file");
  JsonFields f(doc, path);
  const std::string schema = f.str("schema");
  if (schema != kCalibrationSchema) {
    f.fail("schema", "is '" + schema + "', must be '" + std::string(kCalibrationSchema) + "'");
  }
  // Start from the defaults: a file may calibrate only some op kinds or collectives.
  Calibration c = default_calibration();
  c.device = f.str_or("device", "");
  c.source = f.str_or("source", path);
  c.default_compute_efficiency = f.number_or("default_compute_efficiency", c.default_compute_efficiency, 1e-6, 1.0);
  c.default_comm_efficiency = f.number_or("default_comm_efficiency", c.default_comm_efficiency, 1e-6, 1.0);
  if (f.has("compute_efficiency")) {
    JsonFields ce(f.raw("compute_efficiency"), path, "compute_efficiency");
    for (const auto& [key, value] : f.raw("compute_efficiency").items()) {
      if (!is_compute_key(key)) {
        ce.fail(key, "is not an op kind or an op kind's size class like gemm@40 (op kinds, workloads/op_kinds.h: " +
                         op_kind_list() + ")");
      }
      c.compute[key] = read_efficiency(ce, key);
    }
    ce.reject_unknown();
  }
  if (f.has("comm_efficiency")) {
    const auto& tiers = f.raw("comm_efficiency");
    JsonFields tf(tiers, path, "comm_efficiency");
    for (const auto& [tier, colls] : tiers.items()) {
      if (tier != "nvlink" && tier != "ib") tf.fail(tier, "is not a link tier (nvlink, ib)");
      JsonFields cf(tf.raw(tier), path, "comm_efficiency." + tier);
      for (const auto& [coll, value] : colls.items()) {
        if (!collective_named(coll)) cf.fail(coll, "is not a collective (all_reduce, all_gather, reduce_scatter, all_to_all, broadcast, send_recv)");
        c.comm[tier][coll] = read_efficiency(cf, coll);
      }
      cf.reject_unknown();
    }
    tf.reject_unknown();
  }
  f.reject_unknown();
  return c;
}

void save_calibration(const Calibration& cal, const std::string& path) {
  nlohmann::json j;
  j["schema"] = kCalibrationSchema;
  j["device"] = cal.device;
  j["source"] = cal.source;
  j["default_compute_efficiency"] = cal.default_compute_efficiency;
  j["compute_efficiency"] = nlohmann::json::object();
  for (const auto& [k, v] : cal.compute) j["compute_efficiency"][k] = v;
  j["default_comm_efficiency"] = cal.default_comm_efficiency;
  j["comm_efficiency"] = nlohmann::json::object();
  for (const auto& [tier, colls] : cal.comm) {
    for (const auto& [k, v] : colls) j["comm_efficiency"][tier][k] = v;
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) throw ConfigError(path + ": cannot write calibration file");
    out << j.dump(2) << "\n";
    out.flush();
    if (!out) throw ConfigError(path + ": write failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw ConfigError(path + ": cannot rename " + tmp + " (" + ec.message() + ")");
}

}  // namespace seqscale
