// A Hugging Face `config.json` read directly as a seqscale model (`--model path/config.json`),
// so users of llm-analysis and the like bring their own models without writing a model
// file. Families: GPT-NeoX (model_type gpt_neox), Llama (llama, mistral: the same layer)
// and GPT-2 (gpt2). What maps, per family:
//
//   seqscale            gpt_neox                  llama                    gpt2
//   hidden              hidden_size               hidden_size              n_embd
//   heads               num_attention_heads       num_attention_heads      n_head
//   kv_heads            = heads                   num_key_value_heads      = heads
//   ffn_hidden          intermediate_size         intermediate_size        n_inner (null: 4 n_embd)
//   layers              num_hidden_layers         num_hidden_layers        n_layer
//   vocab               vocab_size                vocab_size               vocab_size
//   position            rotary (rotary_pct [0.25]) rotary (1.0)            learned (n_positions)
//   parallel_residual   use_parallel_residual [true]  false                false
//   mlp / norm          gelu / layernorm          swiglu (hidden_act silu) / rmsnorm   gelu / layernorm
//   dtype               torch_dtype (float32, float16, bfloat16) [bf16]
//
// Fields that only name tokens, initialisation, epsilons or the library version change
// neither memory nor FLOPs and are read silently. Every other field (rope_theta,
// tie_word_embeddings, dropouts, rope_scaling, ...) has no seqscale meaning: the model
// loads, ModelSpec::unmapped_fields names them, and one line on stderr says so (once per file).
// A field with a value seqscale cannot honour (hidden_act relu, an unknown model_type)
// is a ConfigError naming it.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "workloads/specs.h"

namespace seqscale {

// A Hugging Face config: an object with "model_type" and no seqscale "family".
bool is_hf_config(const nlohmann::json& doc);
ModelSpec read_hf_config(const nlohmann::json& doc, const std::string& path);

}  // namespace seqscale
