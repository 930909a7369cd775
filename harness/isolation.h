// Point isolation: a point runs in a worker process (a re-exec of this binary speaking
// one JSON line per point on stdin/stdout) that is replaced after a crash, a timeout or a
// failed CUDA point (whose sticky error could poison the next one); or in a fresh process
// per point; or in this process. A crash or hang becomes a `failed` record with the reason.
#pragma once
#include <atomic>
#include <memory>
#include <optional>
#include <string>

#include "harness/matrix/matrix.h"
#include "harness/results/results.h"

namespace seqscale {

enum class Isolation { kNone, kWorker, kProcess };

class Worker;

class IsolatedExecutor {
 public:
  IsolatedExecutor(Isolation isolation, std::string self_exe);
  ~IsolatedExecutor();
  // nullopt when interrupted (SIGINT/SIGTERM seen): the caller stops, nothing is recorded.
  std::optional<PointResult> run(const MatrixPoint& point);

 private:
  Isolation isolation_;
  std::string exe_;
  std::unique_ptr<Worker> worker_;
};

// Set by SIGINT/SIGTERM while install_stop_handlers() is in effect.
std::atomic<bool>& stop_requested();
void install_stop_handlers();
void restore_default_handlers();

// Worker side: reads one point per line (JSON) on stdin, writes one result per line on
// stdout, exits on EOF or after a failure that may have poisoned the process.
int worker_main();

std::string self_executable_path();

}  // namespace seqscale
