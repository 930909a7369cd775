// Bad transformer input through the CLI: one line naming the field. The cases the GPT
// layer and the model refuse: heads that tp does not divide, a head size the fused CUDA
// kernel lacks (64, 96, 128 only) when the point's backend is CUDA, rotary_pct outside
// [0, 1], a sequence the sequence-parallel degree does not divide. `predict` exits 2; a
// matrix point the model prices (`bench --source model`) is recorded `failed` with the
// reason, one line, as a measured run records it (where a failed point makes `bench` exit
// 1; `--source model` exits 0, since a CPU-only build prices CUDA points with CPU bodies
// that refuse bf16). Each case has a neighbour that is accepted, so a check that refused
// everything would fail here too.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/support/binary.h"

namespace {

const std::string kSeqscale = seqscale::testing_support::seqscale_binary();

struct Out {
  int code;
  std::string text;
};

Out run_cli(const std::string& args) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen((kSeqscale + " " + args + " 2>&1").c_str(), "r"), pclose);
  std::string out;
  std::array<char, 4096> buf{};
  while (fgets(buf.data(), buf.size(), pipe.get())) out += buf.data();
  const int rc = pclose(pipe.release());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

// The lines of `text` that contain `needle`.
int lines_with(const std::string& text, const std::string& needle) {
  int n = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t end = std::min(text.find('\n', start), text.size());
    if (text.substr(start, end - start).find(needle) != std::string::npos) ++n;
    start = end + 1;
  }
  return n;
}

class TransformerInputCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("seqscale_transformer_cli_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }
  // A GPT model file: hidden/heads is the head size.
  std::string model(const std::string& name, int hidden, int heads, const std::string& extra = "") {
    return write(name + ".json", R"({"name": ")" + name + R"(", "family": "transformer", "layers": 2, "hidden": )" +
                                     std::to_string(hidden) + R"(, "heads": )" + std::to_string(heads) +
                                     R"(, "ffn_hidden": )" + std::to_string(4 * hidden) + R"(, "vocab": 512)" + extra +
                                     "}");
  }
  // A matrix of one transformer_layer point on `backend`, priced by the model
  // (`bench --source model` prices CUDA points; a CPU-only build prices them from the CPU
  // body under the CUDA backend, so the CUDA checks apply).
  // The point's status and reason ("ok" and "" when it priced).
  Out price_layer(const std::string& model_path, const std::string& plan, int seq) {
    const std::string matrix = write(
        "m.json", R"({"name": "m", "benchmarks": [{"name": "transformer_layer", "backend": ["cuda"], "axes": {"model": [")" +
                      model_path + R"("], "plan": [")" + plan + R"("], "seq": [)" + std::to_string(seq) + "]}}]}");
    const std::string out = (dir_ / "out").string();
    const Out r = run_cli("bench --matrix " + matrix + " --source model --cluster h100 --out " + out);
    if (r.code != 0) return {-1, r.text};
    std::ifstream in(out + "/results.json");
    const auto doc = nlohmann::json::parse(in);
    if (doc["points"].size() != 1) return {-1, doc.dump()};
    const auto& p = doc["points"][0];
    const std::string status = p["status"].get<std::string>();
    return {status == "ok" ? 0 : 1, p.value("reason", "")};
  }

  std::filesystem::path dir_;
};

TEST_F(TransformerInputCli, HeadsNotDivisibleByTp) {
  Out r = run_cli("predict --model tiny-gpt --cluster h100 --gpus 3 --seq 64 --plan tp=3");  // 4 heads
  EXPECT_EQ(r.code, 2) << r.text;
  EXPECT_EQ(std::count(r.text.begin(), r.text.end(), '\n'), 1) << r.text;
  EXPECT_NE(r.text.find("heads"), std::string::npos) << r.text;
  r = run_cli("predict --model tiny-gpt --cluster h100 --gpus 2 --seq 64 --plan tp=2");
  EXPECT_EQ(r.code, 0) << r.text;
  // The layer bench refuses it as well, priced or run.
  r = price_layer("tiny-gpt", "tp=3,attn=materialized", 64);
  EXPECT_EQ(r.code, 1) << r.text;
  EXPECT_EQ(lines_with(r.text, "heads: 4 is not divisible by tp=3"), 1) << r.text;
}

TEST_F(TransformerInputCli, HeadSizeTheFusedCudaKernelLacks) {
  // tiny-gpt: 64 / 4 = head size 16.
  Out r = price_layer("tiny-gpt", "attn=fused", 64);
  EXPECT_EQ(r.code, 1) << r.text;
  EXPECT_EQ(lines_with(r.text, "heads: head size 16"), 1) << r.text;
  EXPECT_NE(r.text.find("(64, 96, 128)"), std::string::npos) << r.text;
  // The materialized path takes any head size; the fused kernel 64, 96 and 128.
  EXPECT_EQ(price_layer("tiny-gpt", "attn=materialized", 64).code, 0);
  for (const int head : {64, 96, 128}) {
    const Out ok = price_layer(model("head" + std::to_string(head), 2 * head, 2), "attn=fused", 64);
    EXPECT_EQ(ok.code, 0) << head << ": " << ok.text;
  }
  r = price_layer(model("head80", 160, 2), "attn=fused", 64);
  EXPECT_EQ(r.code, 1) << r.text;
  EXPECT_EQ(lines_with(r.text, "heads: head size 80"), 1) << r.text;
}

TEST_F(TransformerInputCli, RotaryPctOutsideZeroToOne) {
  for (const char* pct : {"1.5", "-0.25"}) {
    const std::string path = model("rot", 64, 4, std::string(R"(, "position_embedding": "rotary", "rotary_pct": )") + pct);
    const Out r = run_cli("predict --model " + path + " --cluster h100 --gpus 1 --seq 64");
    EXPECT_EQ(r.code, 2) << pct << ": " << r.text;
    EXPECT_EQ(std::count(r.text.begin(), r.text.end(), '\n'), 1) << r.text;
    EXPECT_NE(r.text.find("rotary_pct"), std::string::npos) << r.text;
  }
  const std::string ok = model("rot_ok", 64, 4, R"(, "position_embedding": "rotary", "rotary_pct": 0.25)");
  EXPECT_EQ(run_cli("predict --model " + ok + " --cluster h100 --gpus 1 --seq 64").code, 0);
}

TEST_F(TransformerInputCli, SequenceNotDivisibleBySequenceParallelDegree) {
  for (const char* plan : {"tp=2,sp=megatron", "sp=ulysses,sp_degree=2"}) {
    Out r = run_cli(std::string("predict --model tiny-gpt --cluster h100 --gpus 2 --seq 63 --plan ") + plan);
    EXPECT_EQ(r.code, 2) << plan << ": " << r.text;
    EXPECT_EQ(std::count(r.text.begin(), r.text.end(), '\n'), 1) << r.text;
    EXPECT_NE(r.text.find("seq"), std::string::npos) << r.text;
    EXPECT_NE(r.text.find("63"), std::string::npos) << r.text;
    EXPECT_EQ(run_cli(std::string("predict --model tiny-gpt --cluster h100 --gpus 2 --seq 64 --plan ") + plan).code, 0)
        << plan;
    // The layer bench names its seq axis.
    r = price_layer("tiny-gpt", std::string(plan) + ",attn=materialized", 63);
    EXPECT_EQ(r.code, 1) << r.text;
    EXPECT_EQ(lines_with(r.text, "seq: 63 is not divisible by the sequence-parallel degree 2"), 1) << r.text;
  }
}

}  // namespace
