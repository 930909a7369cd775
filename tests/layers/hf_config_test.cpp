// Model files' layer fields (mlp, norm, parallel_residual, rotary_pct) and Hugging Face
// config.json files read directly (workloads/hf_config.h), with their one-line errors.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "workloads/config_error.h"
#include "workloads/plan.h"
#include "workloads/specs.h"
#include "layers/transformer_layer/transformer_layer_def.h"

namespace seqscale {
namespace {

std::string fixture(const std::string& name) { return std::string(SEQSCALE_SOURCE_DIR) + "/tests/layers/fixtures/" + name; }

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(HfConfig, GptNeoxMapsEveryField) {
  const ModelSpec m = load_model(fixture("gpt_neox_config.json"));
  const TransformerSpec& t = m.transformer();
  EXPECT_EQ(t.hidden, 512);
  EXPECT_EQ(t.heads, 8);
  EXPECT_EQ(t.kv_heads, 8);
  EXPECT_EQ(t.ffn_hidden, 2048);
  EXPECT_EQ(t.layers, 6);
  EXPECT_EQ(t.vocab, 50304);
  EXPECT_EQ(t.position, PositionEmbedding::kRotary);
  EXPECT_DOUBLE_EQ(t.rotary_pct, 0.25);
  EXPECT_TRUE(t.parallel_residual);
  EXPECT_EQ(t.mlp, MlpKind::kGelu);
  EXPECT_EQ(t.norm, NormKind::kLayerNorm);
  EXPECT_EQ(t.dtype, DType::kFp16);
  EXPECT_EQ(m.unmapped_fields, "rotary_emb_base, tie_word_embeddings");
  // GPT-NeoX rotates int(64 * 0.25) = 16 dims of each head.
  EXPECT_EQ(TransformerLayerDims::from(t, Plan{}, 128, 1).rotary_dims, 16);
}

TEST(HfConfig, LlamaIsRmsNormSwigluWithGqa) {
  const ModelSpec m = load_model(fixture("llama_config.json"));
  const TransformerSpec& t = m.transformer();
  EXPECT_EQ(t.kv_heads, 2);
  EXPECT_EQ(t.ffn_hidden, 688);
  EXPECT_EQ(t.mlp, MlpKind::kSwiglu);
  EXPECT_EQ(t.norm, NormKind::kRmsNorm);
  EXPECT_FALSE(t.parallel_residual);
  EXPECT_DOUBLE_EQ(t.rotary_pct, 1.0);
  EXPECT_EQ(t.dtype, DType::kBf16);
  EXPECT_EQ(m.unmapped_fields, "rope_theta");
}

TEST(HfConfig, Gpt2HasLearnedPositionsAndDefaultInner) {
  const ModelSpec m = load_model(fixture("gpt2_config.json"));
  const TransformerSpec& t = m.transformer();
  EXPECT_EQ(t.hidden, 768);
  EXPECT_EQ(t.ffn_hidden, 4 * 768);  // n_inner null
  EXPECT_EQ(t.position, PositionEmbedding::kLearned);
  EXPECT_EQ(m.unmapped_fields, "attn_pdrop, resid_pdrop");
}

TEST(HfConfig, BadFieldsAreOneLineNamingTheField) {
  EXPECT_NE(error_of([] { load_model(fixture("bad_act_config.json")); }).find("hidden_act"), std::string::npos);
  EXPECT_NE(error_of([] { load_model(fixture("bad_type_config.json")); }).find("model_type"), std::string::npos);
}

TEST(ModelFields, ShippedModelsKeepTheirMeaning) {
  // GenSLM (GPT-NeoX): parallel residual; learned positions as the DS4Sci runs trained it.
  for (const char* name : {"genslm-25b", "genslm-33b"}) {
    const TransformerSpec t = load_model(name).transformer();
    EXPECT_TRUE(t.parallel_residual) << name;
    EXPECT_EQ(t.mlp, MlpKind::kGelu) << name;
    EXPECT_EQ(t.norm, NormKind::kLayerNorm) << name;
  }
  const TransformerSpec g = load_model("gpt-30b").transformer();
  EXPECT_FALSE(g.parallel_residual);  // Megatron GPT
  const TransformerSpec n = load_model(fixture("neox_fields.json")).transformer();
  EXPECT_TRUE(n.parallel_residual);
  EXPECT_EQ(n.mlp, MlpKind::kSwiglu);
  EXPECT_EQ(n.norm, NormKind::kRmsNorm);
  EXPECT_DOUBLE_EQ(n.rotary_pct, 0.25);
}

TEST(ModelFields, BadInputNamesTheField) {
  EXPECT_NE(error_of([] { load_model(fixture("bad_rotary_pct.json")); }).find("rotary_pct"), std::string::npos);
  EXPECT_NE(error_of([] { load_model(fixture("rotary_pct_learned.json")); }).find("rotary_pct"), std::string::npos);
  const TransformerSpec t = load_model("tiny-gpt").transformer();  // 4 heads of 16
  Plan p;
  p.tp = 3;
  EXPECT_NE(error_of([&] { TransformerLayerDims::from(t, p, 64, 1); }).find("heads: 4 is not divisible by tp=3"), std::string::npos);
  EXPECT_NE(error_of([&] { TransformerLayerDims::from(t, Plan{}, 64, 1, /*cuda=*/true); }).find("head size 16"), std::string::npos);
  EXPECT_EQ(error_of([&] { TransformerLayerDims::from(t, Plan{}, 64, 1, /*cuda=*/false); }), "");  // the CPU runs any
  Plan sp;
  sp.tp = 2;
  sp.sp = SeqParallel::kMegatron;
  EXPECT_NE(error_of([&] { TransformerLayerDims::from(t, sp, 63, 1); }).find("seq: 63"), std::string::npos);
}

}  // namespace
}  // namespace seqscale
