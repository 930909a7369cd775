// seqscale report RESULTS... --out DIR: renders PNG plots and an index.md with Debian's
// python3 + matplotlib (reports/report.py); reports never write into results/.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "harness/cli/verb.h"
#include "harness/results/results.h"
#include "workloads/specs.h"

namespace seqscale::cli {
namespace {

int run_report(const std::vector<std::string>& args) {
  po::options_description opts;
  std::vector<std::string> inputs;
  std::string out_dir, python;
  opts.add_options()
    ("results", po::value(&inputs)->multitoken(), "results.json files (or folders holding them)")
    ("out", po::value(&out_dir)->required(), "output folder for index.md and PNGs")
    ("python", po::value(&python)->default_value("/usr/bin/python3"), "python with matplotlib");
  po::positional_options_description pos;
  pos.add("results", -1);
  po::variables_map vm;
  if (!parse_args("report", args, opts, vm, &pos, "RESULTS... --out DIR")) return 0;
  if (inputs.empty()) throw UsageError("seqscale report: give at least one results file");
  for (auto& in : inputs) {
    if (std::filesystem::is_directory(in)) in += "/results.json";
    read_results(in);  // validate first: a corrupt file is a one-line error, not a traceback
  }
  const std::string script = source_root() + "/reports/report.py";
  std::vector<std::string> argv_s = {python, script, "--out", out_dir};
  argv_s.insert(argv_s.end(), inputs.begin(), inputs.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    execv(argv[0], argv.data());
    std::cerr << "seqscale report: cannot run " << python << "\n";
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::cerr << "seqscale report: report.py failed\n";
    return 1;
  }
  std::cout << out_dir << "/index.md\n";
  return 0;
}

}  // namespace
SEQSCALE_VERB("report", "render plots and a Markdown index from results", run_report);
}  // namespace seqscale::cli
