#include "harness/cli/verb.h"

#include <iostream>

namespace seqscale::cli {

std::vector<Verb>& verbs() {
  static std::vector<Verb> all;
  return all;
}

bool register_verb(Verb verb) {
  verbs().push_back(std::move(verb));
  return true;
}

bool parse_args(const std::string& verb, const std::vector<std::string>& args,
                const po::options_description& options, po::variables_map& vm,
                const po::positional_options_description* positional,
                const std::string& usage_line) {
  po::options_description all("seqscale " + verb + " options");
  all.add_options()("help,h", "print this help");
  all.add(options);
  try {
    auto parser = po::command_line_parser(args).options(all);
    if (positional) parser.positional(*positional);
    else parser.positional(po::positional_options_description());
    po::store(parser.run(), vm);
    if (vm.count("help")) {
      std::cout << "usage: seqscale " << verb << " " << usage_line << "\n" << all << "\n";
      return false;
    }
    po::notify(vm);
  } catch (const po::too_many_positional_options_error&) {
    throw UsageError("seqscale " + verb + ": unexpected positional argument");
  } catch (const po::error& e) {
    throw UsageError("seqscale " + verb + ": " + e.what());
  }
  return true;
}

}  // namespace seqscale::cli
