// Facts about this build and host for results metadata and `seqscale info`.
#pragma once
#include <functional>
#include <string>

namespace seqscale {

void set_mpi_version_provider(std::function<std::string()> provider);
std::string mpi_library_version();   // "" when built without MPI
std::string git_commit();            // from the source tree at run time, else the build's
std::string host_name();
std::string utc_now_iso8601();

}  // namespace seqscale
