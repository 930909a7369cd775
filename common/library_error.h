// The one exception every library check throws (common/check_<library>.h), and the macro
// that builds it: file, line, the call as text and the library's own message.
#pragma once
#include <stdexcept>
#include <string>

namespace seqscale {

// Thrown by every *_CHECK; the harness turns it into a `failed` point with this text.
class LibraryError : public std::runtime_error {
 public:
  LibraryError(const char* library, const char* call, const char* file, int line, const std::string& msg)
      : std::runtime_error(std::string(file) + ":" + std::to_string(line) + ": " + library + " " +
                           call + " failed: " + msg) {}
};

}  // namespace seqscale

#define SEQSCALE_LIB_FAIL(lib, call, msg) throw ::seqscale::LibraryError(lib, #call, __FILE__, __LINE__, msg)
