// seqscale: one CLI, one verb per file (harness/cli/*.cc). Exit codes: 0 ok, 1 the verb's
// own negative outcome (a FAILed gate, an anchor out of tolerance, a run error),
// 2 bad usage or bad input (the message names the flag or field).
#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "harness/cli/verb.h"
#include "workloads/config_error.h"

namespace {

void print_usage() {
  auto all = seqscale::cli::verbs();
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  std::cout << "usage: seqscale <verb> [options]   (seqscale <verb> --help for each)\n\nverbs:\n";
  for (const auto& v : all)
    if (!v.name.starts_with("_")) std::cout << "  " << v.name << std::string(12 - std::min<size_t>(11, v.name.size()), ' ') << v.summary << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    print_usage();
    return args.empty() ? 2 : 0;
  }
  const std::string verb_name = args[0];
  args.erase(args.begin());
  for (const auto& verb : seqscale::cli::verbs()) {
    if (verb.name != verb_name) continue;
    try {
      return verb.run(args);
    } catch (const seqscale::cli::UsageError& e) {
      std::cerr << e.what() << "\n";
      return 2;
    } catch (const seqscale::ConfigError& e) {
      std::cerr << "seqscale " << verb_name << ": " << e.what() << "\n";
      return 2;
    } catch (const std::exception& e) {
      std::cerr << "seqscale " << verb_name << ": error: " << e.what() << "\n";
      return 1;
    }
  }
  std::cerr << "seqscale: unknown verb '" << verb_name << "' (seqscale --help lists them)\n";
  return 2;
}
