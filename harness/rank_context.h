// The harness's view of a multi-rank launch (mpirun / srun): rank, size and the few
// collectives it needs to agree on the points, merge results on rank 0 and record every
// rank's host and device. seqscale_mpi installs the MPI implementation; without it, or
// when not launched by a launcher, the run is one rank.
#pragma once
#include <string>
#include <vector>

namespace seqscale {

class RankContext {
 public:
  virtual ~RankContext() = default;
  virtual int rank() = 0;
  virtual int size() = 0;
  virtual void barrier() = 0;
  virtual std::string broadcast_from_root(const std::string& value) = 0;
  virtual std::vector<std::string> gather_to_root(const std::string& value) = 0;  // empty off root
};

void install_rank_context_factory(RankContext* (*factory)());
// True when the environment says a launcher started several ranks (OMPI_COMM_WORLD_SIZE,
// PMI_SIZE, PMIX_RANK with a size, SLURM_NTASKS > 1 under srun).
bool launched_multi_rank();
// The context for this process: MPI when launched multi-rank and built with MPI, else null.
RankContext* rank_context();

}  // namespace seqscale
