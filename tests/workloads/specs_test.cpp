#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/support/errors.h"
#include "workloads/config_error.h"
#include "workloads/specs.h"

namespace seqscale {
namespace {

std::string write_tmp(const std::string& name, const std::string& text) {
  const auto dir = std::filesystem::temp_directory_path() / ("seqscale_specs_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto path = (dir / name).string();
  std::ofstream(path) << text;
  return path;
}

using testing_support::error_of;

// Every file in workloads/models/ and workloads/clusters/ (not a hand list, which goes
// stale as files land), loaded by its name, and the well-known ones among them.
TEST(Specs, EveryShippedModelAndClusterLoads) {
  auto stems = [](const std::string& kind) {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(workloads_dir() + "/" + kind)) {
      if (e.path().extension() == ".json") out.push_back(e.path().stem().string());
    }
    return out;
  };
  const std::vector<std::string> models = stems("models"), clusters = stems("clusters");
  for (const std::string& m : models) EXPECT_EQ(load_model(m).name, m);
  for (const std::string& c : clusters) EXPECT_EQ(load_cluster(c).name, c);
  auto has = [](const std::vector<std::string>& v, const char* n) { return std::find(v.begin(), v.end(), n) != v.end(); };
  for (const char* m : {"genslm-25b", "gpt-30b", "evoformer-openfold-finetune", "tiny-gpt"}) EXPECT_TRUE(has(models, m)) << m;
  for (const char* c : {"dgx-a100-80g", "dgx-h100", "h100"}) EXPECT_TRUE(has(clusters, c)) << c;
}

TEST(Specs, GenSlm25bMatchesPublishedShape) {
  // DS4Sci / GenSLM: 64 layers, hidden 6144, 64 heads (ANCHORS.md section 3).
  const auto m = load_model("genslm-25b");
  ASSERT_TRUE(m.is_transformer());
  EXPECT_EQ(m.transformer().layers, 64);
  EXPECT_EQ(m.transformer().hidden, 6144);
  EXPECT_EQ(m.transformer().heads, 64);
  EXPECT_EQ(m.transformer().head_dim(), 96);
  const auto e = load_model("evoformer-openfold-finetune").evoformer();
  EXPECT_EQ(e.n_res, 384);
  EXPECT_EQ(e.n_extra, 5120);
  EXPECT_EQ(e.extra_msa.heads, 8);
  EXPECT_EQ(load_cluster("dgx-a100-40g").gpu_memory_bytes, 40'000'000'000);
}

TEST(Specs, UnknownModelNameListsKnownOnes) {
  const std::string err = error_of([] { load_model("gpt-9000"); });
  EXPECT_NE(err.find("unknown model 'gpt-9000'"), std::string::npos) << err;
  EXPECT_NE(err.find("genslm-25b"), std::string::npos) << err;
}

TEST(Specs, RejectsUnknownMissingAndImpossibleFields) {
  const std::string base =
      R"({"name":"t","family":"transformer","layers":2,"hidden":64,"heads":4,"vocab":100)";
  EXPECT_EQ(error_of([&] { load_model(write_tmp("ok.json", base + "}")); }), "");

  std::string err = error_of([&] { load_model(write_tmp("u.json", base + R"(,"hiden":3})")); });
  EXPECT_NE(err.find("field 'hiden' is not a known field"), std::string::npos) << err;
  EXPECT_NE(err.find("u.json"), std::string::npos) << err;

  err = error_of([&] { load_model(write_tmp("m.json", R"({"name":"t","family":"transformer","layers":2})")); });
  EXPECT_NE(err.find("field 'hidden' is missing"), std::string::npos) << err;

  err = error_of([&] { load_model(write_tmp("n.json", base + R"(,"kv_heads":3})")); });
  EXPECT_NE(err.find("kv_heads"), std::string::npos) << err;

  err = error_of([&] {
    load_model(write_tmp("h.json", R"({"name":"t","family":"transformer","layers":2,"hidden":65,"heads":4,"vocab":100})"));
  });
  EXPECT_NE(err.find("field 'heads' must divide hidden"), std::string::npos) << err;

  err = error_of([&] { load_model(write_tmp("l.json", base + R"(,"layers":0})")); });
  EXPECT_NE(err.find("field 'layers' is 0"), std::string::npos) << err;

  err = error_of([&] { load_model(write_tmp("d.json", base + R"(,"dtype":"fp8"})")); });
  EXPECT_NE(err.find("field 'dtype' is 'fp8'"), std::string::npos) << err;

  err = error_of([&] { load_model(write_tmp("j.json", "{not json")); });
  EXPECT_NE(err.find("not valid JSON"), std::string::npos) << err;
}

TEST(Specs, EvoformerNestedFieldErrorsNameThePath) {
  const std::string err = error_of([&] {
    load_model(write_tmp("e.json", R"({"name":"e","family":"evoformer","n_seq":1,"n_extra":0,"n_res":8,
      "c_m":8,"c_z":8,"c_e":8,"msa_attention":{"heads":2,"head_dim":4,"extra":1},
      "triangle_attention":{"heads":2,"head_dim":4},"extra_msa_attention":{"heads":2,"head_dim":4},
      "template_attention":{"heads":2,"head_dim":4},"blocks":1,"extra_blocks":0})"));
  });
  EXPECT_NE(err.find("field 'msa_attention.extra' is not a known field"), std::string::npos) << err;
}

TEST(Specs, MoeBlockErrorsNameTheField) {
  const std::string base = R"({"name":"t","family":"transformer","layers":4,"hidden":64,"heads":4,"vocab":100,"moe":)";
  EXPECT_EQ(error_of([&] { load_model(write_tmp("moe.json", base + R"({"experts":8,"top_k":2,"every":2}})")); }), "");
  std::string err = error_of([&] { load_model(write_tmp("moe1.json", base + R"({"experts":8,"every":3}})")); });
  EXPECT_NE(err.find("field 'moe.every' must divide layers (4)"), std::string::npos) << err;
  err = error_of([&] { load_model(write_tmp("moe2.json", base + R"({"experts":8,"topk":2}})")); });
  EXPECT_NE(err.find("field 'moe.topk' is not a known field"), std::string::npos) << err;
  err = error_of([&] { load_model(write_tmp("moe3.json", base + R"({"experts":4,"top_k":5}})")); });
  EXPECT_NE(err.find("moe.top_k"), std::string::npos) << err;
  err = error_of([&] { load_model(write_tmp("moe4.json", base + R"({"top_k":1}})")); });
  EXPECT_NE(err.find("field 'moe.experts' is missing"), std::string::npos) << err;
}

TEST(Specs, ClusterRejectsNegativeBandwidth) {
  std::string text = R"({"name":"c","gpu":"x","gpus_per_node":8,"max_nodes":1,"gpu_memory_GB":40,
    "peak_bf16_TFLOPs":312,"peak_fp32_TFLOPs":19.5,"hbm_GBps":1555,"nvlink_GBps":-1,
    "nvlink_latency_us":3,"ib_GBps":25,"ib_latency_us":6,"pcie_GBps":25,"host_memory_GB":1000,
    "host_adam_Gparams_per_s":1,"context_GB":1,"allocator_overhead":0.05})";
  const std::string err = error_of([&] { load_cluster(write_tmp("c.json", text)); });
  EXPECT_NE(err.find("field 'nvlink_GBps'"), std::string::npos) << err;
}

}  // namespace
}  // namespace seqscale
