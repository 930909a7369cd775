#include "workloads/hf_config.h"

#include <iostream>
#include <mutex>
#include <set>

#include "workloads/config_error.h"

namespace seqscale {
namespace {

// Read without a seqscale meaning and without an effect on memory or FLOPs.
const std::set<std::string> kHarmless = {
    "architectures", "transformers_version", "_name_or_path", "bos_token_id", "eos_token_id", "pad_token_id",
    "initializer_range", "layer_norm_eps", "layer_norm_epsilon", "rms_norm_eps", "use_cache", "model_type",
    "torch_dtype"};

class HfFields {
 public:
  HfFields(const nlohmann::json& doc, std::string path) : doc_(doc), path_(std::move(path)) {}

  [[noreturn]] void fail(const std::string& key, const std::string& msg) const {
    throw ConfigError(path_ + ": " + key + " " + msg);
  }
  bool has(const std::string& key) const { return doc_.contains(key) && !doc_[key].is_null(); }
  std::int64_t integer(const std::string& key) {
    used_.insert(key);
    if (!has(key)) fail(key, "is missing (needed to size the model)");
    if (!doc_[key].is_number_integer() || doc_[key].get<std::int64_t>() < 1) fail(key, "must be a positive integer");
    return doc_[key].get<std::int64_t>();
  }
  std::int64_t integer_or(const std::string& key, std::int64_t fallback) {
    return has(key) ? integer(key) : (used_.insert(key), fallback);
  }
  double number_or(const std::string& key, double fallback, double lo, double hi) {
    used_.insert(key);
    if (!has(key)) return fallback;
    if (!doc_[key].is_number()) fail(key, "must be a number");
    const double v = doc_[key].get<double>();
    if (v < lo || v > hi) fail(key, "is " + doc_[key].dump() + ", must be in [" + nlohmann::json(lo).dump() + ", " + nlohmann::json(hi).dump() + "]");
    return v;
  }
  bool boolean_or(const std::string& key, bool fallback) {
    used_.insert(key);
    if (!has(key)) return fallback;
    if (!doc_[key].is_boolean()) fail(key, "must be true or false");
    return doc_[key].get<bool>();
  }
  std::string str_or(const std::string& key, const std::string& fallback) {
    used_.insert(key);
    if (!has(key)) return fallback;
    if (!doc_[key].is_string()) fail(key, "must be a string");
    return doc_[key].get<std::string>();
  }
  // The fields present that nothing above read and kHarmless does not list, comma-separated.
  std::string unmapped() const {
    std::string out;
    for (const auto& [key, value] : doc_.items()) {
      if (used_.count(key) || kHarmless.count(key)) continue;
      out += (out.empty() ? "" : ", ") + key;
    }
    return out;
  }

 private:
  const nlohmann::json& doc_;
  std::string path_;
  std::set<std::string> used_;
};

DType hf_dtype(HfFields& f) {
  const std::string t = f.str_or("torch_dtype", "bfloat16");
  if (t == "float32") return DType::kFp32;
  if (t == "float16") return DType::kFp16;
  if (t == "bfloat16") return DType::kBf16;
  f.fail("torch_dtype", "is '" + t + "', must be float32, float16 or bfloat16");
}

// GELU variants all count as GELU (same memory, same FLOPs to within a few per element).
void require_gelu(HfFields& f, const std::string& key, const std::string& fallback) {
  const std::string act = f.str_or(key, fallback);
  if (act.rfind("gelu", 0) != 0) f.fail(key, "is '" + act + "': a GPT-NeoX or GPT-2 MLP must use a GELU");
}

}  // namespace

bool is_hf_config(const nlohmann::json& doc) {
  return doc.is_object() && doc.contains("model_type") && !doc.contains("family");
}

ModelSpec read_hf_config(const nlohmann::json& doc, const std::string& path) {
  HfFields f(doc, path);
  const std::string type = f.str_or("model_type", "");
  TransformerSpec t;
  if (type == "gpt_neox") {
    t.hidden = f.integer("hidden_size");
    t.heads = f.integer("num_attention_heads");
    t.kv_heads = t.heads;
    t.ffn_hidden = f.integer_or("intermediate_size", 4 * t.hidden);
    t.layers = f.integer("num_hidden_layers");
    t.position = PositionEmbedding::kRotary;
    t.rotary_pct = f.number_or("rotary_pct", 0.25, 0.0, 1.0);  // HF GPTNeoXConfig's default
    t.parallel_residual = f.boolean_or("use_parallel_residual", true);
    require_gelu(f, "hidden_act", "gelu");
    f.integer_or("max_position_embeddings", 2048);  // a rotary model's limit, not a table
  } else if (type == "llama" || type == "mistral") {
    t.hidden = f.integer("hidden_size");
    t.heads = f.integer("num_attention_heads");
    t.kv_heads = f.integer_or("num_key_value_heads", t.heads);
    t.ffn_hidden = f.integer("intermediate_size");
    t.layers = f.integer("num_hidden_layers");
    t.position = PositionEmbedding::kRotary;
    t.mlp = MlpKind::kSwiglu;
    t.norm = NormKind::kRmsNorm;
    const std::string act = f.str_or("hidden_act", "silu");
    if (act != "silu") f.fail("hidden_act", "is '" + act + "': a Llama MLP is SwiGLU (silu)");
    f.integer_or("max_position_embeddings", 4096);
  } else if (type == "gpt2") {
    t.hidden = f.integer("n_embd");
    t.heads = f.integer("n_head");
    t.kv_heads = t.heads;
    t.ffn_hidden = f.integer_or("n_inner", 4 * t.hidden);
    t.layers = f.integer("n_layer");
    t.position = PositionEmbedding::kLearned;
    require_gelu(f, "activation_function", "gelu_new");
    f.integer_or("n_positions", 1024);  // the learned table is sized by the run's sequence
  } else {
    f.fail("model_type", "is '" + type + "', must be gpt_neox, llama, mistral or gpt2 (or use a seqscale model file)");
  }
  t.vocab = f.integer("vocab_size");
  t.dtype = hf_dtype(f);
  if (t.hidden % t.heads != 0) f.fail(type == "gpt2" ? "n_head" : "num_attention_heads", "must divide the hidden size (" + std::to_string(t.hidden) + ")");
  if (t.heads % t.kv_heads != 0) f.fail("num_key_value_heads", "must divide num_attention_heads");
  ModelSpec m;
  m.source = path;
  m.name = f.str_or("_name_or_path", "");
  if (m.name.empty()) m.name = type + "-" + std::to_string(t.layers) + "x" + std::to_string(t.hidden);
  m.arch = t;
  m.unmapped_fields = f.unmapped();
  // Said once per file and process (a bench loads the model once per point).
  static std::mutex mu;
  static std::set<std::string> told;
  const std::lock_guard<std::mutex> lock(mu);
  if (!m.unmapped_fields.empty() && told.insert(path).second) {
    std::cerr << path << ": fields with no seqscale meaning, ignored: " << m.unmapped_fields << "\n";
  }
  return m;
}

}  // namespace seqscale
