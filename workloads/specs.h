// Model and cluster descriptions, loaded from workloads/models/*.json and
// workloads/clusters/*.json. Plain data: the model prices them, the harness runs them.
#pragma once
#include <cstdint>
#include <string>
#include <variant>

#include "workloads/dtype.h"

namespace seqscale {

enum class PositionEmbedding : std::uint8_t { kLearned, kRotary };
enum class MlpKind : std::uint8_t { kGelu, kSwiglu };      // bias + GELU (GPT) | SwiGLU (Llama)
enum class NormKind : std::uint8_t { kLayerNorm, kRmsNorm };

// GPT-NeoX / GenSLM style decoder.
struct TransformerSpec {
  std::int64_t layers = 0;
  std::int64_t hidden = 0;
  std::int64_t heads = 0;
  std::int64_t kv_heads = 0;      // == heads for multi-head attention
  std::int64_t ffn_hidden = 0;    // 4 * hidden for GPT-NeoX
  std::int64_t vocab = 0;
  PositionEmbedding position = PositionEmbedding::kLearned;
  DType dtype = DType::kBf16;
  // Layer structure (layers/transformer_layer/transformer_layer_def.h). The defaults are
  // Megatron GPT's, which every shipped model file meant before these fields existed:
  // bias + GELU MLP, LayerNorm, sequential residual. GPT-NeoX sets parallel_residual
  // (x + attn(ln1(x)) + mlp(ln2(x))) and rotary_pct 0.25; Llama sets swiglu and rmsnorm.
  // rotary_pct, the fraction of each head's dims rotated, applies with rotary positions only.
  MlpKind mlp = MlpKind::kGelu;
  NormKind norm = NormKind::kLayerNorm;
  bool parallel_residual = false;
  double rotary_pct = 1.0;
  // Mixture of experts (GShard, Lepikhin et al. 2020; DeepSpeed-MoE): the MLP of every
  // moe_every-th layer is moe_experts experts of ffn_hidden each, every token routed to
  // its top moe_top_k with capacity factor moe_capacity_factor. JSON: "moe": {"experts",
  // "top_k", "every", "capacity_factor"}.
  std::int64_t moe_experts = 0;  // 0: dense
  std::int64_t moe_top_k = 1;
  std::int64_t moe_every = 1;
  double moe_capacity_factor = 1.25;
  std::int64_t head_dim() const { return hidden / heads; }
  bool is_moe() const { return moe_experts > 0; }
  std::int64_t moe_layers() const { return is_moe() ? layers / moe_every : 0; }
};

// One attention kind of the Evoformer stack: heads and head size.
struct AttentionDims {
  std::int64_t heads = 0;
  std::int64_t head_dim = 0;
};

// AlphaFold2 / OpenFold Evoformer at one crop (ANCHORS.md section 1).
struct EvoformerSpec {
  std::int64_t n_seq = 0;
  std::int64_t n_extra = 0;
  std::int64_t n_res = 0;
  std::int64_t c_m = 0;
  std::int64_t c_z = 0;
  std::int64_t c_e = 0;
  std::int64_t c_hidden_opm = 32;   // outer product mean projection
  std::int64_t c_hidden_tri_mul = 128;
  std::int64_t transition_factor = 4;
  AttentionDims msa;                // row and column attention
  AttentionDims triangle;
  AttentionDims extra_msa;
  AttentionDims templ;
  std::int64_t blocks = 0;          // Evoformer blocks
  std::int64_t extra_blocks = 0;    // extra-MSA stack blocks
  DType dtype = DType::kBf16;
};

struct ModelSpec {
  std::string name;
  std::string source;   // file it came from, for error messages
  std::variant<TransformerSpec, EvoformerSpec> arch;
  // A Hugging Face config.json read directly (workloads/hf_config.h): the fields it could
  // not map, in one line ("" when everything mapped, and for seqscale's own files).
  std::string unmapped_fields;
  bool is_transformer() const { return std::holds_alternative<TransformerSpec>(arch); }
  bool is_evoformer() const { return std::holds_alternative<EvoformerSpec>(arch); }
  const TransformerSpec& transformer() const { return std::get<TransformerSpec>(arch); }
  const EvoformerSpec& evoformer() const { return std::get<EvoformerSpec>(arch); }
};

// A homogeneous GPU cluster. Rates are per GPU and one way; latencies per hop.
struct ClusterSpec {
  std::string name;
  std::string source;
  std::string gpu;                     // "A100-SXM4-40GB", matched against measured devices
  std::int64_t gpus_per_node = 0;
  std::int64_t max_nodes = 0;
  std::int64_t gpu_memory_bytes = 0;
  double peak_bf16_flops = 0;          // dense, per GPU
  double peak_fp32_flops = 0;
  double hbm_bytes_per_s = 0;
  double nvlink_bytes_per_s = 0;       // per GPU, one way
  double nvlink_latency_s = 0;
  double ib_bytes_per_s = 0;           // per GPU, one way
  double ib_latency_s = 0;
  double pcie_bytes_per_s = 0;         // host <-> device per GPU
  std::int64_t host_memory_bytes_per_node = 0;
  double host_adam_params_per_s = 0;   // CPU Adam throughput per GPU's share of cores
  std::int64_t context_bytes = 0;      // CUDA context + cuBLAS/NCCL workspaces per rank
  double allocator_overhead = 0;       // fraction of live bytes lost to fragmentation
};

// Loaders accept a bare name (looked up under workloads/models or workloads/clusters)
// or a path to a .json file. Bad input throws ConfigError naming file and field.
ModelSpec load_model(const std::string& name_or_path);
ClusterSpec load_cluster(const std::string& name_or_path);

// The source tree: $SEQSCALE_ROOT, else the tree the binary was built from if it still
// exists, else the current directory (a copied tree on a GPU machine runs from its root).
std::string source_root();
// Directory holding models/, clusters/ and matrices/: $SEQSCALE_WORKLOADS, else
// source_root()/workloads.
std::string workloads_dir();
std::string resolve_workload_file(const std::string& kind, const std::string& name_or_path);

}  // namespace seqscale
