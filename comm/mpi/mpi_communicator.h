// MPI backend of the Communicator (host buffers). Ranks come from mpirun / srun; each
// process group of the plan is an MPI_Comm_split of the world by comm/groups.h. Async
// calls are MPI_I* requests; Work::wait polls MPI_Testall against a deadline and, when a
// peer is hung or dead, reports the collective, group and rank and aborts the job
// (MPI_Abort, exit status kTimeoutExitCode) instead of waiting forever.
// Plain header: no mpi.h, so tests and drivers include it anywhere.
#pragma once
#include <memory>

#include "comm/communicator.h"
#include "comm/groups.h"

namespace seqscale::comm {

// MPI_Init_thread on construction (unless already initialised), MPI_Finalize on
// destruction when it initialised.
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  static int world_rank();
  static int world_size();
  static bool initialized();

 private:
  bool owns_ = false;
};

// The layout's world size must equal MPI_COMM_WORLD's; throws CommError otherwise.
std::unique_ptr<Communicator> make_mpi_communicator(const RankLayout& layout,
                                                    CommOptions options = options_from_env());
// Every group kind is the whole world (dp = world size); for benchmarks and bootstrap.
std::unique_ptr<Communicator> make_mpi_world_communicator(CommOptions options = options_from_env());

// Initialises MPI on first use (singleton mode when not launched by mpirun) and returns
// a world communicator that lives until exit; MPI is finalised at exit. For benchmarks.
Communicator& mpi_world();

}  // namespace seqscale::comm
