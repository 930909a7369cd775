// One exception type for bad input: its message is the one line the CLI prints.
#pragma once
#include <stdexcept>
#include <string>

namespace seqscale {

class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace seqscale
