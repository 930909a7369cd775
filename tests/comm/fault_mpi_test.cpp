// Fault injection for the MPI backend (run by expect_failure.sh, see CMakeLists.txt):
//   hang: rank 1 stops answering mid-run; the others' all_reduce times out after
//         SEQSCALE_COMM_TIMEOUT_S and the job aborts with the collective, group and rank.
//   die:  rank 1 aborts (SIGABRT) mid-run; mpirun tears the job down.
//   hang_tp: as hang, inside the tensor-parallel group of a tp=2 layout: rank 0's report
//         names group tp (rank 1's TP partner); the other TP groups finish that step and
//         wait in the next one (a world all-reduce), as a training step would. (Letting
//         them exit instead trips an Open MPI 4.1 mpirun crash/hang when the remaining
//         ranks abort after others finalised.)
// Either way the job must exit non-zero fast instead of hanging CI.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "comm/mpi/mpi_communicator.h"

int main(int argc, char** argv) {
  using namespace seqscale;
  comm::MpiSession session(&argc, &argv);
  const std::string mode = argc > 1 ? argv[1] : "hang";
  const bool hang = mode != "die";
  const GroupKind g = mode == "hang_tp" ? GroupKind::kTensor : GroupKind::kWorld;
  auto c = mode == "hang_tp"
               ? comm::make_mpi_communicator(comm::RankLayout::for_world(comm::MpiSession::world_size(), {.tp = 2}))
               : comm::make_mpi_world_communicator();
  std::vector<float> x(1024, 1.f), y(1024);
  c->all_reduce(GroupKind::kWorld, x.data(), y.data(), 1024, DType::kFp32);  // healthy step
  if (c->rank() == 1) {
    if (hang) {
      std::fprintf(stderr, "rank 1: simulating a hang\n");
      std::this_thread::sleep_for(std::chrono::seconds(120));
    } else {
      std::fprintf(stderr, "rank 1: simulating a crash\n");
      std::abort();
    }
  }
  c->all_reduce(g, x.data(), y.data(), 1024, DType::kFp32);  // rank 1 never joins
  std::printf("rank %d finished its group's step\n", c->rank());  // ranks outside rank 1's group
  c->all_reduce(GroupKind::kWorld, x.data(), y.data(), 1024, DType::kFp32);  // the next step
  std::printf("unreachable: rank %d finished\n", c->rank());
  return 0;
}
