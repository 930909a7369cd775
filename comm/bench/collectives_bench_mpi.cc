// Suite "collectives" on the CPU backend: each collective spec as a SEQSCALE_BENCH point
// run over MPI (mpi_world(): the ranks of mpirun, or a singleton world when the harness
// runs it alone). The suite keeps its own time (nccl-tests method: barrier, per-iteration
// max over ranks) and hands the samples to the harness with record_samples.
// Params: bytes (nccl-tests size), dtype, op (reductions; default sum), root, iters.
#include "comm/collectives/bench_point.h"
#include "comm/mpi/mpi_communicator.h"
#include "harness/bench/registry.h"

namespace seqscale::comm {

namespace {
void mpi_point(const std::string& name, BenchState& s) {
  Communicator& c = mpi_world();
  HostMemory mem;
  run_collective_bench_point(name, s, c, &c, mem);
}
}  // namespace

#define SEQSCALE_MPI_COLLECTIVE_BENCH(id)                                                             \
  SEQSCALE_BENCH(id##_mpi, #id, "collectives", ::seqscale::Backend::kCpu,                             \
                 [](::seqscale::BenchState& s) { ::seqscale::comm::mpi_point(#id, s); })

SEQSCALE_MPI_COLLECTIVE_BENCH(all_reduce);
SEQSCALE_MPI_COLLECTIVE_BENCH(all_gather);
SEQSCALE_MPI_COLLECTIVE_BENCH(reduce_scatter);
SEQSCALE_MPI_COLLECTIVE_BENCH(all_to_all);
SEQSCALE_MPI_COLLECTIVE_BENCH(broadcast);
SEQSCALE_MPI_COLLECTIVE_BENCH(send_recv);

}  // namespace seqscale::comm
