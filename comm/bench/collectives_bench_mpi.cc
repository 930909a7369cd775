// Suite "collectives" on the CPU backend: each registered collective spec as a benchmark
// run over MPI (mpi_world(): the ranks of mpirun, or a singleton world when the harness
// runs it alone). The suite keeps its own time (nccl-tests method: barrier, per-iteration
// max over ranks) and hands the samples to the harness with record_samples.
// Params: bytes (nccl-tests size), dtype, op (reductions; default sum), root, iters.
#include "comm/collectives/bench_point.h"
#include "comm/collectives/collective_spec.h"
#include "comm/mpi/mpi_communicator.h"
#include "harness/bench/registry.h"

namespace seqscale::comm {

namespace {
void mpi_point(const std::string& name, BenchState& s) {
  Communicator& c = mpi_world();
  HostMemory mem;
  run_collective_bench_point(name, s, c, &c, mem);
}

// One benchmark per registered collective spec, named after it (a new spec file is
// benchmarked without a line here).
void add_mpi_collective_benches() {
  for (const CollectiveSpec& spec : registered_collectives()) {
    const std::string name(spec.name);
    register_bench({name, "collectives", Backend::kCpu, [name](BenchState& s) { mpi_point(name, s); }});
  }
}
}  // namespace

SEQSCALE_BENCH_SOURCE(collectives_mpi, add_mpi_collective_benches);

}  // namespace seqscale::comm
