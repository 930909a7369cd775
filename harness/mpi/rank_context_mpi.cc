// MPI implementation of RankContext. Initialises MPI only when first asked (a multi-rank
// launch), and finalises at exit only if it was the one that initialised it, so it
// coexists with comm/'s MPI communicator.
#include <mpi.h>

#include <cstdlib>

#include "harness/rank_context.h"
#include "common/check_mpi.h"

namespace seqscale {
namespace {

class MpiRankContext final : public RankContext {
 public:
  MpiRankContext() {
    int inited = 0;
    MPI_CHECK(MPI_Initialized(&inited));
    if (!inited) {
      int provided = 0;
      MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided));
      std::atexit([] {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized) MPI_Finalize();
      });
    }
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
  }
  int rank() override { return rank_; }
  int size() override { return size_; }
  void barrier() override { MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD)); }

  std::string broadcast_from_root(const std::string& value) override {
    long long n = rank_ == 0 ? static_cast<long long>(value.size()) : 0;
    MPI_CHECK(MPI_Bcast(&n, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD));
    std::string out = rank_ == 0 ? value : std::string(static_cast<size_t>(n), '\0');
    MPI_CHECK(MPI_Bcast(out.data(), static_cast<int>(n), MPI_CHAR, 0, MPI_COMM_WORLD));
    return out;
  }

  std::vector<std::string> gather_to_root(const std::string& value) override {
    int n = static_cast<int>(value.size());
    std::vector<int> sizes(static_cast<size_t>(size_)), offsets(static_cast<size_t>(size_));
    MPI_CHECK(MPI_Gather(&n, 1, MPI_INT, sizes.data(), 1, MPI_INT, 0, MPI_COMM_WORLD));
    int total = 0;
    for (int r = 0; r < size_; ++r) {
      offsets[static_cast<size_t>(r)] = total;
      total += sizes[static_cast<size_t>(r)];
    }
    std::string all(rank_ == 0 ? static_cast<size_t>(total) : 0, '\0');
    MPI_CHECK(MPI_Gatherv(value.data(), n, MPI_CHAR, all.data(), sizes.data(), offsets.data(), MPI_CHAR, 0,
                          MPI_COMM_WORLD));
    std::vector<std::string> out;
    if (rank_ == 0) {
      for (int r = 0; r < size_; ++r) {
        out.push_back(all.substr(static_cast<size_t>(offsets[static_cast<size_t>(r)]),
                                 static_cast<size_t>(sizes[static_cast<size_t>(r)])));
      }
    }
    return out;
  }

 private:
  int rank_ = 0, size_ = 1;
};

const bool installed = [] {
  install_rank_context_factory([]() -> RankContext* {
    static MpiRankContext ctx;
    return &ctx;
  });
  return true;
}();

}  // namespace
}  // namespace seqscale
