// The one-line ConfigError message a call throws ("" when it does not throw), so tests
// can assert that bad input names its file and field.
#pragma once
#include <functional>
#include <string>

#include "workloads/config_error.h"

namespace seqscale::testing_support {

inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace seqscale::testing_support
