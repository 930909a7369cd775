#include "harness/build_info.h"

#include "workloads/specs.h"

#include <unistd.h>

#include <array>
#include <cstdlib>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>

namespace seqscale {
namespace {
std::function<std::string()>& mpi_provider() {
  static std::function<std::string()> p;
  return p;
}
}  // namespace

void set_mpi_version_provider(std::function<std::string()> provider) { mpi_provider() = std::move(provider); }

std::string mpi_library_version() { return mpi_provider() ? mpi_provider()() : ""; }

std::string git_commit() {
  // A copied tree without .git (a GPU machine) passes the commit it was copied from.
  if (const char* env = std::getenv("SEQSCALE_GIT_COMMIT"); env && *env) return env;
  // The tree the binary was built from; "-dirty" marks uncommitted changes so a result
  // is never attributed to a commit that did not produce it.
  const std::string cmd = std::string("git -C '") + source_root() +
                          "' describe --always --dirty --abbrev=40 2>/dev/null";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  if (!pipe) return "unknown";
  std::array<char, 128> buf{};
  std::string out;
  while (fgets(buf.data(), buf.size(), pipe.get())) out += buf.data();
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out.empty() ? "unknown" : out;
}

std::string host_name() {
  char name[256] = {};
  gethostname(name, sizeof(name) - 1);
  return name;
}

std::string utc_now_iso8601() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace seqscale
