// Reports the MPI library in `seqscale info` and in results metadata; installed at
// static-init time so the plain core never includes mpi.h.
#include <mpi.h>

#include <string>

#include "harness/build_info.h"

namespace seqscale {
namespace {

const bool installed = [] {
  set_mpi_version_provider([] {
    char version[MPI_MAX_LIBRARY_VERSION_STRING] = {};
    int len = 0;
    MPI_Get_library_version(version, &len);
    std::string s(version, static_cast<size_t>(len));
    if (auto nl = s.find_first_of("\n,"); nl != std::string::npos) s.resize(nl);
    return s;
  });
  return true;
}();

}  // namespace
}  // namespace seqscale
