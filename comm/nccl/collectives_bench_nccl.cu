// Suite "collectives" on the CUDA backend: each registered collective spec as a benchmark point
// over NCCL on device buffers. Under mpirun / srun the harness's RankContext broadcasts
// the ncclUniqueId (one GPU per rank); alone, the world is this process's GPU. The
// communicator is created on first use and kept for the process (NCCL init is seconds).
// Its timeout is SEQSCALE_COMM_TIMEOUT_S (`seqscale bench --comm-timeout-s`), read then.
// Memory: the buffers are cudaMalloc'd on the communicator's device, not taken from the
// harness's pool, so these points report peak_bytes 0 and their buffers as
// comm_buffer_bytes (see CountedMemory).
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>

#include "comm/collectives/bench_point.h"
#include "comm/collectives/collective_spec.h"
#include "comm/nccl/nccl_communicator.h"
#include "harness/rank_context.h"

namespace seqscale::comm {
namespace {

Communicator& nccl_world() {
  // Leaked on purpose (review L-9): as a static unique_ptr it would be destroyed during
  // static destruction, running ncclCommDestroy and cudaStreamDestroy after or alongside
  // the CUDA runtime's own teardown, and waiting on peers that may have exited already;
  // the worker could then crash or hang at exit. The process's exit frees the GPU memory
  // and NCCL's threads; nothing of it outlives the process.
  static Communicator* const world = [] {
    NcclBootstrap b;
    int device = -1;  // under a launcher: the local rank modulo the visible devices
    if (RankContext* ranks = rank_context(); ranks && ranks->size() > 1) {
      b.rank = ranks->rank();
      b.size = ranks->size();
      b.broadcast_from_root = [ranks](void* data, std::size_t bytes) {
        const std::string mine(static_cast<const char*>(data), bytes);
        const std::string root = ranks->broadcast_from_root(mine);
        std::memcpy(data, root.data(), bytes);
      };
    } else if (const char* d = std::getenv("SEQSCALE_DEVICE"); d && *d) {
      device = std::atoi(d);  // alone: the device the harness runs the point on
    }
    // options_from_env() explicitly: the run's SEQSCALE_COMM_TIMEOUT_S (throws ConfigError
    // on a bad value, which fails the point with that one line).
    return make_nccl_communicator(b, RankLayout::for_world(b.size, {}), device, options_from_env()).release();
  }();
  return *world;
}

// Counts the bytes the collective's buffers hold at most. They cannot come from the
// harness's pool (s.alloc): under mpirun the harness's device (SEQSCALE_DEVICE, default 0)
// is not the rank's NCCL device, and pool blocks are ordered on the harness's stream, not
// the communicator's. So the pool's peak_bytes stays 0 for these points (review L-8) and
// this peak is reported as metrics.comm_buffer_bytes instead.
class CountedMemory final : public BenchMemory {
 public:
  explicit CountedMemory(BenchMemory& inner) : inner_(inner) {}
  void* alloc(std::size_t bytes) override {
    void* p = inner_.alloc(bytes);
    sizes_[p] = bytes;
    live_ += bytes;
    if (live_ > peak_) peak_ = live_;
    return p;
  }
  void release(void* p) override {
    if (auto it = sizes_.find(p); it != sizes_.end()) {
      live_ -= it->second;
      sizes_.erase(it);
    }
    inner_.release(p);
  }
  void upload(void* dst, const void* host, std::size_t bytes) override { inner_.upload(dst, host, bytes); }
  void download(void* host, const void* src, std::size_t bytes) override { inner_.download(host, src, bytes); }
  std::size_t peak_bytes() const { return peak_; }

 private:
  BenchMemory& inner_;
  std::unordered_map<void*, std::size_t> sizes_;
  std::size_t live_ = 0, peak_ = 0;
};

void nccl_point(const std::string& name, BenchState& s) {
  Communicator& c = nccl_world();
  auto device_memory = make_device_memory(c);
  CountedMemory mem(*device_memory);
  run_collective_bench_point(name, s, c, nullptr, mem);  // the harness takes the max over ranks
  s.set_metric("comm_buffer_bytes", static_cast<double>(mem.peak_bytes()));
}

// One benchmark per registered collective spec, named after it (a new spec file is
// benchmarked without a line here).
void add_nccl_collective_benches() {
  for (const CollectiveSpec& spec : registered_collectives()) {
    const std::string name(spec.name);
    register_bench({name, "collectives", Backend::kCuda, [name](BenchState& s) { nccl_point(name, s); }});
  }
}

}  // namespace

SEQSCALE_BENCH_SOURCE(collectives_nccl, add_nccl_collective_benches);

}  // namespace seqscale::comm
