// The pipelines users copy parse, and say what the gate needs: ci/perf-gate.yml (GitHub
// Actions, parsed with Debian's python3-yaml; skipped, not passed, without it) and
// ci/perf-gate.sbatch (bash -n), plus the scripts around the gate.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "workloads/specs.h"

namespace seqscale {
namespace {

int sh(const std::string& cmd) {
  const int rc = std::system((cmd + " >/tmp/seqscale_ci_syntax.log 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::string last_log() {
  std::ifstream in("/tmp/seqscale_ci_syntax.log");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string text_of(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(CiPipelines, GithubWorkflowParsesAndGates) {
  const std::string yml = source_root() + "/ci/perf-gate.yml";
  if (sh("python3 -c 'import yaml'") != 0) GTEST_SKIP() << "python3-yaml is not installed: the workflow was not parsed";
  // YAML 1.1 reads the key `on` as true; GitHub reads it as "on". Accept either.
  const std::string script = "/tmp/seqscale_ci_syntax_check.py";
  std::ofstream(script) << R"(import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
on = d.get("on", d.get(True))
assert on is not None and "pull_request" in on, "no trigger"
job = d["jobs"]["gate"]
assert "self-hosted" in job["runs-on"] and "gpu" in job["runs-on"], job["runs-on"]
steps = job["steps"]
text = "\n".join(str(s.get("run", "")) + str(s.get("uses", "")) for s in steps)
for need in ["actions/checkout", "scripts/build", "bench --matrix", "--repeat", "gate --baseline-dir results/baselines",
             "--markdown", "GITHUB_STEP_SUMMARY", "actions/upload-artifact"]:
    assert need in text, "missing " + need
for s in steps:
    assert "name" in s and ("run" in s or "uses" in s), s
)";
  const std::string check = "python3 " + script + " " + yml;
  EXPECT_EQ(sh(check), 0) << last_log();
}

TEST(CiPipelines, ShellScriptsParse) {
  for (const char* f : {"ci/perf-gate.sbatch", "scripts/update_model_baseline", ".ci/run"}) {
    EXPECT_EQ(sh("bash -n " + source_root() + "/" + f), 0) << f << ": " << last_log();
  }
  if (sh("command -v python3") == 0) {
    EXPECT_EQ(sh("python3 -c 'import ast, sys; ast.parse(open(sys.argv[1]).read())' " + source_root() + "/scripts/aa_study"), 0)
        << last_log();
  }
  const std::string sbatch = text_of(source_root() + "/ci/perf-gate.sbatch");
  for (const char* need : {"#SBATCH --gpus=1", "bench --matrix", "--repeat", "gate --baseline-dir results/baselines",
                           "--markdown", "exit \"$rc\""}) {
    EXPECT_NE(sbatch.find(need), std::string::npos) << need;
  }
  // CI keeps the test command first, then gates the model's predictions.
  const std::string ci = text_of(source_root() + "/.ci/run");
  const auto test = ci.find("\nscripts/test\n"), snapshot = ci.find("model-snapshot --out"),
             gate = ci.find("gate results/baselines/model.json");
  ASSERT_NE(test, std::string::npos);
  ASSERT_NE(snapshot, std::string::npos);
  ASSERT_NE(gate, std::string::npos);
  EXPECT_LT(test, snapshot);
}

}  // namespace
}  // namespace seqscale
