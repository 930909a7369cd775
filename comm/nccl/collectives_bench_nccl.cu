// Suite "collectives" on the CUDA backend: each collective spec as a SEQSCALE_BENCH point
// over NCCL on device buffers. Under mpirun / srun the harness's RankContext broadcasts
// the ncclUniqueId (one GPU per rank); alone, the world is this process's GPU. The
// communicator is created on first use and kept for the process (NCCL init is seconds).
#include <cstring>
#include <string>

#include "comm/collectives/bench_point.h"
#include "comm/nccl/nccl_communicator.h"
#include "harness/rank_context.h"

namespace seqscale::comm {
namespace {

Communicator& nccl_world() {
  static std::unique_ptr<Communicator> world = [] {
    NcclBootstrap b;
    if (RankContext* ranks = rank_context(); ranks && ranks->size() > 1) {
      b.rank = ranks->rank();
      b.size = ranks->size();
      b.broadcast_from_root = [ranks](void* data, std::size_t bytes) {
        const std::string mine(static_cast<const char*>(data), bytes);
        const std::string root = ranks->broadcast_from_root(mine);
        std::memcpy(data, root.data(), bytes);
      };
    }
    return make_nccl_communicator(b, RankLayout::for_world(b.size, {}), -1);
  }();
  return *world;
}

void nccl_point(const std::string& name, BenchState& s) {
  Communicator& c = nccl_world();
  auto mem = make_device_memory(c);
  run_collective_bench_point(name, s, c, nullptr, *mem);  // the harness takes the max over ranks
}

}  // namespace

#define SEQSCALE_NCCL_COLLECTIVE_BENCH(id)                                                            \
  SEQSCALE_BENCH(id##_nccl, #id, "collectives", ::seqscale::Backend::kCuda,                           \
                 [](::seqscale::BenchState& s) { ::seqscale::comm::nccl_point(#id, s); })

SEQSCALE_NCCL_COLLECTIVE_BENCH(all_reduce);
SEQSCALE_NCCL_COLLECTIVE_BENCH(all_gather);
SEQSCALE_NCCL_COLLECTIVE_BENCH(reduce_scatter);
SEQSCALE_NCCL_COLLECTIVE_BENCH(all_to_all);
SEQSCALE_NCCL_COLLECTIVE_BENCH(broadcast);
SEQSCALE_NCCL_COLLECTIVE_BENCH(send_recv);

}  // namespace seqscale::comm
