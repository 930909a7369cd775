// NCCL backend (see nccl_communicator.h). Compiled into seqscale_cuda when NCCL is found.
#include "comm/nccl/nccl_communicator.h"

#include <cuda_runtime.h>
#include <dlfcn.h>
#include <nccl.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <type_traits>

#include "comm/nccl/nccl_types.h"
#include "comm/str_cat.h"
#include "common/check_cuda.h"
#include "common/check_nccl.h"
#include "harness/bench/registry.h"
#include "workloads/config_error.h"

// *_CHECK with the collective, group and rank in front of the library's message.
#define COMM_WRAP(ctx, check)                                                                   \
  do {                                                                                          \
    try {                                                                                       \
      check;                                                                                    \
    } catch (const ::seqscale::LibraryError& e) {                                               \
      throw ::seqscale::comm::CommError(::seqscale::comm::str_cat({"seqscale comm: ", (ctx).describe(), ": ", e.what()})); \
    }                                                                                           \
  } while (0)
#define COMM_NCCL_CHECK(ctx, call) COMM_WRAP(ctx, NCCL_CHECK(call))
#define COMM_CUDA_CHECK(ctx, call) COMM_WRAP(ctx, CUDA_CHECK(call))

namespace seqscale::comm {

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::kFp32: return ncclFloat32;
    case DType::kFp16: return ncclFloat16;
    case DType::kBf16: return ncclBfloat16;
    case DType::kBool: return ncclUint8;
    case DType::kInt32: return ncclInt32;
    case DType::kInt64: return ncclInt64;
  }
  return ncclUint8;
}
ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return ncclSum;
    case ReduceOp::kProd: return ncclProd;
    case ReduceOp::kMax: return ncclMax;
    case ReduceOp::kMin: return ncclMin;
    case ReduceOp::kAvg: return ncclAvg;
  }
  return ncclSum;
}

namespace {

// ---- all-to-all: ncclAlltoAll when the loaded libnccl has it, grouped send/recv if not ----
// The header is NCCL 2.28, which added ncclAlltoAll, but the libnccl.so.2 found at run time
// may be older (the GPU machine's comes from PyTorch's wheel). A direct call would make the
// first all_to_all die with "symbol lookup error" (every binary at start-up under BIND_NOW),
// so the symbol is looked up by name and never referenced: `nm -u` on this object lists no
// ncclAlltoAll. Both conditions must hold: the version says the library has the 2.28 API,
// dlsym that this build of it exports the entry point.
using AllToAllFn = ncclResult_t (*)(const void*, void*, size_t, ncclDataType_t, ncclComm_t, cudaStream_t);
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 28, 0)
// decltype does not odr-use the function: no reference to the symbol is emitted.
static_assert(std::is_same_v<AllToAllFn, decltype(&ncclAlltoAll)>, "ncclAlltoAll's signature changed");
#endif
constexpr int kAllToAllMinVersion = 22800;  // NCCL_VERSION(2, 28, 0)

struct NativeAllToAll {
  int version = 0;            // ncclGetVersion of the loaded library
  AllToAllFn fn = nullptr;    // nullptr: not available
};
const NativeAllToAll& native_all_to_all() {
  static const NativeAllToAll found = [] {
    NativeAllToAll f;
    NCCL_CHECK(ncclGetVersion(&f.version));
    if (f.version >= kAllToAllMinVersion)
      f.fn = reinterpret_cast<AllToAllFn>(dlsym(RTLD_DEFAULT, "ncclAlltoAll"));
    return f;
  }();
  return found;
}

std::string version_string(int code) {
  // NCCL_VERSION: X*1000+Y*100+Z up to 2.8, X*10000+Y*100+Z from 2.9 on.
  const int major = code < 10000 ? code / 1000 : code / 10000;
  const int minor = code < 10000 ? code % 1000 / 100 : code % 10000 / 100;
  return str_cat({std::to_string(major), ".", std::to_string(minor), ".", std::to_string(code % 100)});
}

// SEQSCALE_NCCL_ALLTOALL, read when a communicator is made (so a test can make one of each):
// auto (default): ncclAlltoAll when available; native: ncclAlltoAll or an error;
// sendrecv: always the grouped send/recv (the fallback, forced to compare both paths).
// Returns nullptr for send/recv.
AllToAllFn choose_all_to_all() {
  const char* env = std::getenv("SEQSCALE_NCCL_ALLTOALL");
  const std::string mode = env && *env ? env : "auto";
  if (mode == "sendrecv") return nullptr;
  if (mode != "auto" && mode != "native")
    throw ConfigError("SEQSCALE_NCCL_ALLTOALL is '" + mode + "', must be auto, native or sendrecv");
  const NativeAllToAll& native = native_all_to_all();
  if (mode == "native" && !native.fn)
    throw ConfigError("SEQSCALE_NCCL_ALLTOALL is 'native', but the loaded libnccl " + version_string(native.version) +
                      " has no ncclAlltoAll (needs 2.28 or later)");
  return native.fn;
}

int local_rank_from_env() {
  for (const char* v : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID", "LOCAL_RANK"})
    if (const char* s = std::getenv(v)) return std::atoi(s);
  return 0;
}

class NcclCommunicator;

// Completion of enqueued work: an event recorded after it (at group_end inside a group).
struct NcclEvent {
  cudaEvent_t event = nullptr;
  bool recorded = false;
};

// ncclGroupStart/End nest per thread, across communicators (one thread may drive every
// GPU of the node): events of work launched inside a group are recorded, each on its
// communicator's device and stream, when the outermost group ends, that is once NCCL has
// enqueued the work.
struct PendingEvent {
  int device;
  cudaStream_t stream;
  std::shared_ptr<NcclEvent> event;
};
thread_local int t_group_depth = 0;
thread_local std::vector<PendingEvent> t_pending;

void record_event(int device, cudaStream_t stream, NcclEvent& ev) {
  CUDA_CHECK(cudaSetDevice(device));
  CUDA_CHECK(cudaEventRecord(ev.event, stream));
  ev.recorded = true;
}

class NcclWork final : public Work {
 public:
  NcclWork(NcclCommunicator* owner, OpContext ctx, std::shared_ptr<NcclEvent> ev)
      : owner_(owner), ctx_(ctx), ev_(std::move(ev)) {}
  ~NcclWork() override;
  void wait() override;
  bool test() override;

 private:
  NcclCommunicator* owner_;
  OpContext ctx_;
  std::shared_ptr<NcclEvent> ev_;
  bool done_ = false;
};

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(int rank, int size, int device, ncclComm_t world, std::array<ncclComm_t, kNumGroupKinds> groups,
                   CommOptions opts, AllToAllFn all_to_all)
      : Communicator(opts), rank_(rank), size_(size), device_(device), world_(world), comms_(groups),
        all_to_all_(all_to_all) {
    CUDA_CHECK(cudaSetDevice(device_));
    CUDA_CHECK(cudaStreamCreateWithFlags(&own_stream_, cudaStreamNonBlocking));
    stream_ = own_stream_;
    for (int k = 0; k < kNumGroupKinds; ++k) {
      NCCL_CHECK(ncclCommUserRank(comms_[k], &group_rank_[k]));
      NCCL_CHECK(ncclCommCount(comms_[k], &group_size_[k]));
    }
  }
  ~NcclCommunicator() override {
    cudaSetDevice(device_);
    if (!aborted_) {
      for (int k = 0; k < kNumGroupKinds; ++k)
        if (comms_[k] != world_) ncclCommDestroy(comms_[k]);
      ncclCommDestroy(world_);
    }
    if (barrier_buf_) cudaFree(barrier_buf_);
    cudaStreamDestroy(own_stream_);
  }

  std::string_view backend() const override { return "nccl"; }
  bool device_buffers() const override { return true; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int group_rank(GroupKind g) const override { return group_rank_[group_index(g)]; }
  int group_size(GroupKind g) const override { return group_size_[group_index(g)]; }

  WorkPtr iall_reduce(GroupKind g, const void* s, void* r, std::int64_t n, DType t, ReduceOp op) override {
    const auto ctx = begin("all_reduce", g, collective_size_bytes(Collective::kAllReduce, n, t, group_size(g)));
    COMM_NCCL_CHECK(ctx, ncclAllReduce(s, r, static_cast<size_t>(n), nccl_type(t), nccl_op(op), comm(g), stream_));
    count(g, Collective::kAllReduce, ctx.bytes);
    return finish(ctx);
  }
  WorkPtr iall_gather(GroupKind g, const void* s, void* r, std::int64_t n, DType t) override {
    const auto ctx = begin("all_gather", g, collective_size_bytes(Collective::kAllGather, n, t, group_size(g)));
    COMM_NCCL_CHECK(ctx, ncclAllGather(s, r, static_cast<size_t>(n), nccl_type(t), comm(g), stream_));
    count(g, Collective::kAllGather, ctx.bytes);
    return finish(ctx);
  }
  WorkPtr ireduce_scatter(GroupKind g, const void* s, void* r, std::int64_t n, DType t, ReduceOp op) override {
    const auto ctx = begin("reduce_scatter", g, collective_size_bytes(Collective::kReduceScatter, n, t, group_size(g)));
    COMM_NCCL_CHECK(ctx, ncclReduceScatter(s, r, static_cast<size_t>(n), nccl_type(t), nccl_op(op), comm(g), stream_));
    count(g, Collective::kReduceScatter, ctx.bytes);
    return finish(ctx);
  }
  WorkPtr iall_to_all(GroupKind g, const void* s, void* r, std::int64_t n, DType t) override {
    const auto ctx = begin("all_to_all", g, collective_size_bytes(Collective::kAllToAll, n, t, group_size(g)));
    if (all_to_all_) {
      COMM_NCCL_CHECK(ctx, all_to_all_(s, r, static_cast<size_t>(n), nccl_type(t), comm(g), stream_));
    } else {  // block j to and from group rank j, in one group so the pairs cannot deadlock
      const std::int64_t b = n * dtype_bytes(t);
      COMM_NCCL_CHECK(ctx, ncclGroupStart());
      for (int j = 0; j < group_size(g); ++j) {
        COMM_NCCL_CHECK(ctx, ncclSend(static_cast<const char*>(s) + j * b, static_cast<size_t>(n), nccl_type(t), j,
                                      comm(g), stream_));
        COMM_NCCL_CHECK(ctx, ncclRecv(static_cast<char*>(r) + j * b, static_cast<size_t>(n), nccl_type(t), j, comm(g),
                                      stream_));
      }
      COMM_NCCL_CHECK(ctx, ncclGroupEnd());
    }
    count(g, Collective::kAllToAll, ctx.bytes);
    return finish(ctx);
  }
  WorkPtr iall_to_allv(GroupKind g, const void* s, const std::vector<std::int64_t>& sc,
                       const std::vector<std::int64_t>& sd, void* r, const std::vector<std::int64_t>& rc,
                       const std::vector<std::int64_t>& rd, DType t) override {
    std::int64_t sent = 0;
    for (auto c : sc) sent += c;
    const auto ctx = begin("all_to_allv", g, sent * dtype_bytes(t));
    const auto n = static_cast<std::size_t>(group_size(g));
    if (sc.size() != n || sd.size() != n || rc.size() != n || rd.size() != n)
      throw CommError(str_cat({"seqscale comm: ", ctx.describe(), ": counts and displacements need one entry per group rank"}));
    const std::int64_t tb = dtype_bytes(t);
    COMM_NCCL_CHECK(ctx, ncclGroupStart());
    for (std::size_t j = 0; j < n; ++j) {
      const int peer = static_cast<int>(j);
      if (sc[j]) COMM_NCCL_CHECK(ctx, ncclSend(static_cast<const char*>(s) + sd[j] * tb, sc[j], nccl_type(t), peer, comm(g), stream_));
      if (rc[j]) COMM_NCCL_CHECK(ctx, ncclRecv(static_cast<char*>(r) + rd[j] * tb, rc[j], nccl_type(t), peer, comm(g), stream_));
    }
    COMM_NCCL_CHECK(ctx, ncclGroupEnd());
    count(g, Collective::kAllToAll, ctx.bytes);
    return finish(ctx);
  }
  WorkPtr ibroadcast(GroupKind g, void* buf, std::int64_t n, DType t, int root) override {
    const auto ctx = begin("broadcast", g, collective_size_bytes(Collective::kBroadcast, n, t, group_size(g)));
    COMM_NCCL_CHECK(ctx, ncclBroadcast(buf, buf, static_cast<size_t>(n), nccl_type(t), root, comm(g), stream_));
    count(g, Collective::kBroadcast, ctx.bytes);
    return finish(ctx);
  }
  WorkPtr isend(GroupKind g, const void* buf, std::int64_t n, DType t, int peer, int) override {
    const auto ctx = begin("send", g, collective_size_bytes(Collective::kSendRecv, n, t, group_size(g)));
    COMM_NCCL_CHECK(ctx, ncclSend(buf, static_cast<size_t>(n), nccl_type(t), peer, comm(g), stream_));
    count(g, Collective::kSendRecv, ctx.bytes);
    return finish(ctx);
  }
  WorkPtr irecv(GroupKind g, void* buf, std::int64_t n, DType t, int peer, int) override {
    const auto ctx = begin("recv", g, collective_size_bytes(Collective::kSendRecv, n, t, group_size(g)));
    COMM_NCCL_CHECK(ctx, ncclRecv(buf, static_cast<size_t>(n), nccl_type(t), peer, comm(g), stream_));
    count(g, Collective::kSendRecv, ctx.bytes);
    return finish(ctx);
  }
  void barrier(GroupKind g) override {
    // A one-element all-reduce, waited on: NCCL has no barrier.
    const auto ctx = begin("barrier", g, 0);
    if (!barrier_buf_) COMM_CUDA_CHECK(ctx, cudaMalloc(&barrier_buf_, sizeof(float)));
    COMM_NCCL_CHECK(ctx, ncclAllReduce(barrier_buf_, barrier_buf_, 1, ncclFloat32, ncclSum, comm(g), stream_));
    finish(ctx)->wait();
  }
  void group_start() override {
    NCCL_CHECK(ncclGroupStart());
    ++t_group_depth;
  }
  void group_end() override {
    --t_group_depth;
    NCCL_CHECK(ncclGroupEnd());
    if (t_group_depth == 0) {
      auto pending = std::move(t_pending);
      t_pending.clear();
      for (auto& p : pending) record_event(p.device, p.stream, *p.event);
    }
  }

  // ---- used by NcclWork and the free functions ----
  void abort_all() {
    if (aborted_) return;
    aborted_ = true;
    for (int k = 0; k < kNumGroupKinds; ++k)
      if (comms_[k] != world_) ncclCommAbort(comms_[k]);
    ncclCommAbort(world_);
  }
  ncclComm_t comm(GroupKind g) const { return comms_[group_index(g)]; }
  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }
  void set_stream(cudaStream_t s) { stream_ = s ? s : own_stream_; }
  bool uses_native_all_to_all() const { return all_to_all_ != nullptr; }

 private:
  OpContext begin(std::string_view name, GroupKind g, std::int64_t bytes) {
    const auto ctx = context(name, g, bytes);
    if (aborted_) throw CommError(str_cat({"seqscale comm: ", ctx.describe(), ": the communicator was aborted"}));
    COMM_CUDA_CHECK(ctx, cudaSetDevice(device_));
    return ctx;
  }
  WorkPtr finish(const OpContext& ctx) {
    auto ev = std::make_shared<NcclEvent>();
    COMM_CUDA_CHECK(ctx, cudaEventCreateWithFlags(&ev->event, cudaEventDisableTiming));
    if (t_group_depth > 0) t_pending.push_back({device_, stream_, ev});
    else COMM_WRAP(ctx, record_event(device_, stream_, *ev));
    return std::make_unique<NcclWork>(this, ctx, ev);
  }

  int rank_, size_, device_;
  ncclComm_t world_;
  std::array<ncclComm_t, kNumGroupKinds> comms_;
  std::array<int, kNumGroupKinds> group_rank_{}, group_size_{};
  cudaStream_t own_stream_ = nullptr, stream_ = nullptr;
  void* barrier_buf_ = nullptr;
  bool aborted_ = false;
  AllToAllFn all_to_all_ = nullptr;  // ncclAlltoAll, or nullptr: grouped send/recv
};

NcclWork::~NcclWork() {
  if (!done_) {
    try {
      wait();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "seqscale comm: %s\n", e.what());
    }
  }
  if (ev_->event) cudaEventDestroy(ev_->event);
}

bool NcclWork::test() {
  if (done_) return true;
  if (!ev_->recorded) return false;  // still inside group_start/group_end
  const cudaError_t e = cudaEventQuery(ev_->event);
  if (e == cudaErrorNotReady) return false;
  COMM_CUDA_CHECK(ctx_, e);
  done_ = true;
  return true;
}

void NcclWork::wait() {
  using clock = std::chrono::steady_clock;
  const auto& opts = owner_->options();
  if (!ev_->recorded)
    throw CommError(str_cat({"seqscale comm: ", ctx_.describe(), ": wait() before group_end()"}));
  const auto start = clock::now();
  const auto deadline = start + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(opts.timeout_s));
  while (!test()) {
    ncclResult_t async = ncclSuccess;
    COMM_NCCL_CHECK(ctx_, ncclCommGetAsyncError(owner_->comm(ctx_.group), &async));
    std::string failure;
    if (async != ncclSuccess && async != ncclInProgress) {
      failure = str_cat({"seqscale comm: ", ctx_.describe(), ": NCCL asynchronous error: ", ncclGetErrorString(async)});
    } else if (clock::now() > deadline) {
      char secs[32];
      std::snprintf(secs, sizeof secs, "%.1f", opts.timeout_s);
      failure = str_cat({"seqscale comm: ", ctx_.describe(), " timed out after ", secs,
                         " s (SEQSCALE_COMM_TIMEOUT_S): a peer rank is hung or dead"});
    }
    if (!failure.empty()) {
      owner_->abort_all();  // ncclCommAbort: frees the stream of the hung kernel
      done_ = true;
      if (opts.abort_on_timeout) {
        std::fprintf(stderr, "%s; communicators aborted, exiting with status %d\n", failure.c_str(), kTimeoutExitCode);
        std::fflush(stderr);
        std::_Exit(kTimeoutExitCode);
      }
      if (async != ncclSuccess && async != ncclInProgress) throw CommError(failure);
      throw CommTimeout(failure);
    }
    if (clock::now() - start > std::chrono::milliseconds(1)) std::this_thread::yield();
  }
}

class DeviceMemory final : public BenchMemory {
 public:
  explicit DeviceMemory(int device) : device_(device) {}
  void* alloc(std::size_t bytes) override {
    void* p = nullptr;
    CUDA_CHECK(cudaSetDevice(device_));
    const cudaError_t err = cudaMalloc(&p, bytes ? bytes : 1);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // not sticky: clear it, and the harness records the point as oom
      throw OutOfMemory(
          str_cat({"cudaMalloc of ", std::to_string(bytes), " B for a collective: out of device memory"}));
    }
    CUDA_CHECK(err);
    return p;
  }
  void release(void* p) override {
    cudaSetDevice(device_);
    cudaFree(p);
  }
  void upload(void* dst, const void* host, std::size_t bytes) override {
    CUDA_CHECK(cudaMemcpy(dst, host, bytes, cudaMemcpyHostToDevice));
  }
  void download(void* host, const void* src, std::size_t bytes) override {
    CUDA_CHECK(cudaMemcpy(host, src, bytes, cudaMemcpyDeviceToHost));
  }

 private:
  int device_;
};

NcclCommunicator& as_nccl(Communicator& c) {
  auto* n = dynamic_cast<NcclCommunicator*>(&c);
  if (!n) throw CommError(str_cat({"seqscale comm: expected an NCCL communicator, got ", c.backend()}));
  return *n;
}

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap, const RankLayout& layout, int device,
                                                     CommOptions options) {
  NcclBootstrap b{bootstrap.rank(), bootstrap.size(), [&bootstrap](void* data, std::size_t bytes) {
                    bootstrap.broadcast(GroupKind::kWorld, data, static_cast<std::int64_t>(bytes), DType::kBool, 0);
                  }};
  return make_nccl_communicator(b, layout, device, options);
}

std::unique_ptr<Communicator> make_nccl_communicator(const NcclBootstrap& bootstrap, const RankLayout& layout,
                                                     int device, CommOptions options) {
  const int rank = bootstrap.rank, size = bootstrap.size;
  if (layout.world_size() != size)
    throw CommError(str_cat({"seqscale comm: plan ", layout.describe(), " does not match the ", std::to_string(size),
                             " bootstrap ranks"}));
  // Before any NCCL init, so a bad SEQSCALE_NCCL_ALLTOALL leaks no communicator. Every rank
  // decides alone: they load the same libnccl with the same environment (mpirun exports it).
  const AllToAllFn all_to_all = choose_all_to_all();
  int ndev = 0;
  CUDA_CHECK(cudaGetDeviceCount(&ndev));
  if (device < 0) device = ndev > 0 ? local_rank_from_env() % ndev : 0;
  CUDA_CHECK(cudaSetDevice(device));
  ncclUniqueId id{};
  if (rank == 0) NCCL_CHECK(ncclGetUniqueId(&id));
  if (size > 1) bootstrap.broadcast_from_root(&id, sizeof id);  // as nccl-tests does
  ncclComm_t world = nullptr;
  NCCL_CHECK(ncclCommInitRank(&world, size, id, rank));
  std::array<ncclComm_t, kNumGroupKinds> groups{};
  for (int k = 0; k < kNumGroupKinds; ++k) {
    const auto g = static_cast<GroupKind>(k);
    if (g == GroupKind::kWorld) {
      groups[k] = world;
    } else {
      NCCL_CHECK(ncclCommSplit(world, layout.group_color(g, rank), layout.group_rank(g, rank), &groups[k], nullptr));
    }
  }
  return std::make_unique<NcclCommunicator>(rank, size, device, world, groups, options, all_to_all);
}

std::vector<std::unique_ptr<Communicator>> make_nccl_communicators_single_process(const RankLayout& layout,
                                                                                  CommOptions options) {
  const int n = layout.world_size();
  const AllToAllFn all_to_all = choose_all_to_all();
  int ndev = 0;
  CUDA_CHECK(cudaGetDeviceCount(&ndev));
  if (ndev < n)
    throw CommError(str_cat({"seqscale comm: plan ", layout.describe(), " needs ", std::to_string(n),
                             " GPUs in this process, ", std::to_string(ndev), " visible"}));
  std::vector<ncclComm_t> world(n);
  std::vector<int> devs(n);
  for (int i = 0; i < n; ++i) devs[i] = i;
  NCCL_CHECK(ncclCommInitAll(world.data(), n, devs.data()));
  std::vector<std::array<ncclComm_t, kNumGroupKinds>> groups(n);
  for (int k = 0; k < kNumGroupKinds; ++k) {
    const auto g = static_cast<GroupKind>(k);
    if (g == GroupKind::kWorld) {
      for (int r = 0; r < n; ++r) groups[r][k] = world[r];
      continue;
    }
    NCCL_CHECK(ncclGroupStart());  // one thread drives every device: split them together
    for (int r = 0; r < n; ++r) {
      CUDA_CHECK(cudaSetDevice(r));
      NCCL_CHECK(ncclCommSplit(world[r], layout.group_color(g, r), layout.group_rank(g, r), &groups[r][k], nullptr));
    }
    NCCL_CHECK(ncclGroupEnd());
  }
  std::vector<std::unique_ptr<Communicator>> out;
  for (int r = 0; r < n; ++r)
    out.push_back(std::make_unique<NcclCommunicator>(r, n, r, world[r], groups[r], options, all_to_all));
  return out;
}

void nccl_set_stream(Communicator& c, void* s) { as_nccl(c).set_stream(static_cast<cudaStream_t>(s)); }
void* nccl_stream(Communicator& c) { return as_nccl(c).stream(); }

std::unique_ptr<BenchMemory> make_device_memory(Communicator& c) {
  return std::make_unique<DeviceMemory>(as_nccl(c).device());
}

std::string_view nccl_all_to_all_path(Communicator& c) {
  return as_nccl(c).uses_native_all_to_all() ? "ncclAlltoAll" : "send/recv";
}

int nccl_runtime_version() { return native_all_to_all().version; }

}  // namespace seqscale::comm
