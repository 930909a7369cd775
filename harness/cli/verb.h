// The seqscale CLI is one binary with verbs; each verb is one small file that registers
// itself with SEQSCALE_VERB and parses its own flags with Boost.Program_options.
#pragma once
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

namespace seqscale::cli {

// Bad flag, missing value, unknown verb: main prints the message as one line, exits 2.
class UsageError : public std::runtime_error {
 public:
  explicit UsageError(const std::string& what) : std::runtime_error(what) {}
};

using VerbFn = std::function<int(const std::vector<std::string>& args)>;

struct Verb {
  std::string name;
  std::string summary;
  VerbFn run;
};

std::vector<Verb>& verbs();
bool register_verb(Verb verb);

namespace po = boost::program_options;

// Parses args against `options` (plus --help). Positional names fill `positional` in order.
// Returns false when --help was printed (the verb should return 0). Throws UsageError.
bool parse_args(const std::string& verb, const std::vector<std::string>& args,
                const po::options_description& options, po::variables_map& vm,
                const po::positional_options_description* positional = nullptr,
                const std::string& usage_line = "");

}  // namespace seqscale::cli

#define SEQSCALE_VERB(name, summary, fn) \
  static const bool seqscale_verb_registered_##fn = ::seqscale::cli::register_verb({name, summary, fn})
