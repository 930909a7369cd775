// Fault injection for the MPI backend (run by expect_failure.sh, see CMakeLists.txt):
//   hang: rank 1 stops answering mid-run; the others' all_reduce times out after
//         SEQSCALE_COMM_TIMEOUT_S and the job aborts with the collective, group and rank.
//   die:  rank 1 aborts (SIGABRT) mid-run; mpirun tears the job down.
// Either way the job must exit non-zero fast instead of hanging CI.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "comm/mpi/mpi_communicator.h"

int main(int argc, char** argv) {
  using namespace seqscale;
  comm::MpiSession session(&argc, &argv);
  const bool hang = argc > 1 && std::strcmp(argv[1], "hang") == 0;
  auto c = comm::make_mpi_world_communicator();
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
  c->all_reduce(GroupKind::kWorld, x.data(), y.data(), 1024, DType::kFp32);  // rank 1 never joins
  std::printf("unreachable: rank %d finished\n", c->rank());
  return 0;
}
