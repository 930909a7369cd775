#include "workloads/specs.h"

#include <array>
#include <cstdlib>
#include <filesystem>
#include <fstream>


#include <nlohmann/json.hpp>

#include "workloads/config_error.h"
#include "workloads/hf_config.h"
#include "workloads/json_fields.h"

namespace seqscale {
namespace {


std::string_view kDTypeNames[] = {"fp32", "fp16", "bf16", "bool", "int32", "int64"};

DType read_dtype(JsonFields& f, const std::string& key, DType fallback) {
  if (!f.has(key)) {
    f.optional(key);
    return fallback;
  }
  DType t;
  const std::string name = f.str(key);
  if (!parse_dtype(name, &t)) f.fail(key, "is '" + name + "', must be one of fp32, fp16, bf16");
  return t;
}

AttentionDims read_attention(JsonFields& parent, const std::string& key, const std::string& where) {
  JsonFields f(parent.raw(key), where, parent.field_path(key));
  AttentionDims d;
  d.heads = f.integer("heads", 1, 1024);
  d.head_dim = f.integer("head_dim", 1, 1024);
  f.reject_unknown();
  return d;
}

TransformerSpec read_transformer(JsonFields& f, const std::string& where) {
  TransformerSpec t;
  t.layers = f.integer("layers", 1, 100000);
  t.hidden = f.integer("hidden", 1, 1 << 20);
  t.heads = f.integer("heads", 1, 1 << 16);
  t.kv_heads = f.integer_or("kv_heads", t.heads, 1, t.heads);
  t.ffn_hidden = f.integer_or("ffn_hidden", 4 * t.hidden, 1, 1 << 24);
  t.vocab = f.integer("vocab", 1, 1 << 26);
  const std::string pos = f.str_or("position_embedding", "learned");
  if (pos == "learned") t.position = PositionEmbedding::kLearned;
  else if (pos == "rotary") t.position = PositionEmbedding::kRotary;
  else f.fail("position_embedding", "is '" + pos + "', must be 'learned' or 'rotary'");
  t.dtype = read_dtype(f, "dtype", DType::kBf16);
  const std::string mlp = f.str_or("mlp", "gelu");
  if (mlp == "gelu") t.mlp = MlpKind::kGelu;
  else if (mlp == "swiglu") t.mlp = MlpKind::kSwiglu;
  else f.fail("mlp", "is '" + mlp + "', must be 'gelu' or 'swiglu'");
  const std::string norm = f.str_or("norm", "layernorm");
  if (norm == "layernorm") t.norm = NormKind::kLayerNorm;
  else if (norm == "rmsnorm") t.norm = NormKind::kRmsNorm;
  else f.fail("norm", "is '" + norm + "', must be 'layernorm' or 'rmsnorm'");
  t.parallel_residual = f.boolean_or("parallel_residual", false);
  if (f.has("rotary_pct") && t.position != PositionEmbedding::kRotary) {
    f.fail("rotary_pct", "applies only with position_embedding 'rotary'");
  }
  t.rotary_pct = f.number_or("rotary_pct", 1.0, 0.0, 1.0);
  if (f.has("moe")) {
    JsonFields m(f.raw("moe"), where, f.field_path("moe"));
    t.moe_experts = m.integer("experts", 1, 1 << 16);
    t.moe_top_k = m.integer_or("top_k", 1, 1, t.moe_experts);
    t.moe_every = m.integer_or("every", 1, 1, t.layers);
    t.moe_capacity_factor = m.number_or("capacity_factor", 1.25, 0.01, 1024.0);
    if (t.layers % t.moe_every != 0) m.fail("every", "must divide layers (" + std::to_string(t.layers) + ")");
    m.reject_unknown();
  }
  if (t.hidden % t.heads != 0) f.fail("heads", "must divide hidden (" + std::to_string(t.hidden) + ")");
  if (t.heads % t.kv_heads != 0) f.fail("kv_heads", "must divide heads");
  return t;
}

EvoformerSpec read_evoformer(JsonFields& f, const std::string& where) {
  EvoformerSpec e;
  e.n_seq = f.integer("n_seq", 1, 1 << 20);
  e.n_extra = f.integer("n_extra", 0, 1 << 20);
  e.n_res = f.integer("n_res", 1, 1 << 20);
  e.c_m = f.integer("c_m", 1, 1 << 16);
  e.c_z = f.integer("c_z", 1, 1 << 16);
  e.c_e = f.integer("c_e", 1, 1 << 16);
  e.c_hidden_opm = f.integer_or("c_hidden_opm", 32, 1, 1 << 12);
  e.c_hidden_tri_mul = f.integer_or("c_hidden_tri_mul", 128, 1, 1 << 14);
  e.transition_factor = f.integer_or("transition_factor", 4, 1, 64);
  e.msa = read_attention(f, "msa_attention", where);
  e.triangle = read_attention(f, "triangle_attention", where);
  e.extra_msa = read_attention(f, "extra_msa_attention", where);
  e.templ = read_attention(f, "template_attention", where);
  e.blocks = f.integer("blocks", 1, 1024);
  e.extra_blocks = f.integer("extra_blocks", 0, 1024);
  e.dtype = read_dtype(f, "dtype", DType::kBf16);
  return e;
}

}  // namespace

std::string_view dtype_name(DType t) { return kDTypeNames[static_cast<int>(t)]; }

bool parse_dtype(std::string_view name, DType* out) {
  for (int i = 0; i < static_cast<int>(std::size(kDTypeNames)); ++i) {
    if (kDTypeNames[i] == name) {
      *out = static_cast<DType>(i);
      return true;
    }
  }
  return false;
}

std::string source_root() {
  if (const char* env = std::getenv("SEQSCALE_ROOT"); env && *env) return env;
  if (std::filesystem::is_directory(std::string(SEQSCALE_SOURCE_DIR) + "/workloads")) return SEQSCALE_SOURCE_DIR;
  return std::filesystem::current_path().string();
}

std::string workloads_dir() {
  if (const char* env = std::getenv("SEQSCALE_WORKLOADS"); env && *env) return env;
  return source_root() + "/workloads";
}

std::string resolve_workload_file(const std::string& kind, const std::string& name_or_path) {
  namespace fs = std::filesystem;
  if (name_or_path.find('/') != std::string::npos || name_or_path.ends_with(".json")) {
    if (!fs::exists(name_or_path)) throw ConfigError(name_or_path + ": no such file");
    return name_or_path;
  }
  const std::string path = workloads_dir() + "/" + kind + "/" + name_or_path + ".json";
  if (!fs::exists(path)) {
    std::string known;
    if (fs::is_directory(workloads_dir() + "/" + kind)) {
      for (const auto& e : fs::directory_iterator(workloads_dir() + "/" + kind)) {
        if (e.path().extension() == ".json") known += (known.empty() ? "" : ", ") + e.path().stem().string();
      }
    }
    const std::string noun = kind == "matrices" ? "matrix" : kind.substr(0, kind.size() - 1);
    throw ConfigError("unknown " + noun + " '" + name_or_path +
                      "' (known: " + known + ")");
  }
  return path;
}

ModelSpec load_model(const std::string& name_or_path) {
  const std::string path = resolve_workload_file("models", name_or_path);
  const nlohmann::json doc = read_json_file(path);
  if (is_hf_config(doc)) return read_hf_config(doc, path);  // a Hugging Face config.json
  JsonFields f(doc, path);
  ModelSpec m;
  m.source = path;
  m.name = f.str("name");
  f.str_or("description", "");
  f.optional("references");
  const std::string family = f.str("family");
  if (family == "transformer") m.arch = read_transformer(f, path);
  else if (family == "evoformer") m.arch = read_evoformer(f, path);
  else f.fail("family", "is '" + family + "', must be 'transformer' or 'evoformer'");
  f.reject_unknown();
  return m;
}

ClusterSpec load_cluster(const std::string& name_or_path) {
  const std::string path = resolve_workload_file("clusters", name_or_path);
  const nlohmann::json doc = read_json_file(path);
  JsonFields f(doc, path);
  ClusterSpec c;
  c.source = path;
  c.name = f.str("name");
  f.str_or("description", "");
  f.optional("references");
  c.gpu = f.str("gpu");
  c.gpus_per_node = f.integer("gpus_per_node", 1, 64);
  c.max_nodes = f.integer("max_nodes", 1, 1 << 20);
  // Down to 1 MB: a CPU "cluster" whose device memory is SEQSCALE_CPU_MEMORY_BUDGET
  // (workloads/clusters/cpu-256mb.json) prices the CPU executor's points.
  c.gpu_memory_bytes = static_cast<std::int64_t>(f.number("gpu_memory_GB", 1e-3, 1e5) * 1e9);
  c.peak_bf16_flops = f.number("peak_bf16_TFLOPs", 1, 1e6) * 1e12;
  c.peak_fp32_flops = f.number("peak_fp32_TFLOPs", 1, 1e6) * 1e12;
  c.hbm_bytes_per_s = f.number("hbm_GBps", 1, 1e6) * 1e9;
  c.nvlink_bytes_per_s = f.number("nvlink_GBps", 0.1, 1e6) * 1e9;
  c.nvlink_latency_s = f.number("nvlink_latency_us", 0, 1e4) * 1e-6;
  c.ib_bytes_per_s = f.number("ib_GBps", 0.1, 1e6) * 1e9;
  c.ib_latency_s = f.number("ib_latency_us", 0, 1e4) * 1e-6;
  c.pcie_bytes_per_s = f.number("pcie_GBps", 0.1, 1e6) * 1e9;
  c.host_memory_bytes_per_node = static_cast<std::int64_t>(f.number("host_memory_GB", 1, 1e6) * 1e9);
  c.host_adam_params_per_s = f.number("host_adam_Gparams_per_s", 0.001, 1e4) * 1e9;
  c.context_bytes = static_cast<std::int64_t>(f.number("context_GB", 0, 1e3) * 1e9);
  c.allocator_overhead = f.number("allocator_overhead", 0, 1);
  f.reject_unknown();
  return c;
}

}  // namespace seqscale
