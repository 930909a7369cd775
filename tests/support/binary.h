// Path of the seqscale binary for tests that run the CLI: $SEQSCALE_BIN (a staged binary
// on a GPU machine), else the build tree's.
#pragma once
#include <cstdlib>
#include <string>

namespace seqscale::testing_support {

inline std::string seqscale_binary() {
  if (const char* env = std::getenv("SEQSCALE_BIN"); env && *env) return env;
  return SEQSCALE_BINARY_DIR "/harness/cli/seqscale";
}

}  // namespace seqscale::testing_support
