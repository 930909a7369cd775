// MPI backend (see mpi_communicator.h). Half types (fp16, bf16) reduce through
// user-defined MPI ops that widen to fp32; ReduceOp::kAvg is a sum scaled on completion,
// as MPI has no average.
#include "comm/mpi/mpi_communicator.h"

#include <mpi.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <thread>

#include "comm/dtype_convert.h"
#include "comm/str_cat.h"
#include "common/check_mpi.h"

// MPI_CHECK with the collective, group and rank in front of the library's message.
#define COMM_MPI_CHECK(ctx, call)                                                        \
  do {                                                                                   \
    try {                                                                                \
      MPI_CHECK(call);                                                                   \
    } catch (const ::seqscale::LibraryError& e) {                                        \
      throw ::seqscale::comm::CommError(::seqscale::comm::str_cat({"seqscale comm: ", (ctx).describe(), ": ", e.what()})); \
    }                                                                                    \
  } while (0)

namespace seqscale::comm {
namespace {

// ---- datatypes and reduction ops --------------------------------------------------
template <bool kBf16>
float half_load(std::uint16_t h) { return kBf16 ? bf16_to_float(h) : fp16_to_float(h); }
template <bool kBf16>
std::uint16_t half_store(float f) { return kBf16 ? float_to_bf16(f) : float_to_fp16(f); }

template <bool kBf16, int kOp>
void half_reduce(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const std::uint16_t*>(in);
  auto* b = static_cast<std::uint16_t*>(inout);
  for (int i = 0; i < *len; ++i) {
    const float x = half_load<kBf16>(a[i]), y = half_load<kBf16>(b[i]);
    float r = 0;
    if constexpr (kOp == 0) r = x + y;
    if constexpr (kOp == 1) r = x * y;
    if constexpr (kOp == 2) r = x > y ? x : y;
    if constexpr (kOp == 3) r = x < y ? x : y;
    b[i] = half_store<kBf16>(r);
  }
}

struct HalfTypes {
  MPI_Datatype fp16 = MPI_DATATYPE_NULL, bf16 = MPI_DATATYPE_NULL;
  MPI_Op ops[2][4] = {};  // [bf16][sum, prod, max, min]
  HalfTypes() {
    MPI_CHECK(MPI_Type_contiguous(2, MPI_BYTE, &fp16));
    MPI_CHECK(MPI_Type_commit(&fp16));
    MPI_CHECK(MPI_Type_contiguous(2, MPI_BYTE, &bf16));
    MPI_CHECK(MPI_Type_commit(&bf16));
    MPI_CHECK(MPI_Op_create(&half_reduce<false, 0>, 1, &ops[0][0]));
    MPI_CHECK(MPI_Op_create(&half_reduce<false, 1>, 1, &ops[0][1]));
    MPI_CHECK(MPI_Op_create(&half_reduce<false, 2>, 1, &ops[0][2]));
    MPI_CHECK(MPI_Op_create(&half_reduce<false, 3>, 1, &ops[0][3]));
    MPI_CHECK(MPI_Op_create(&half_reduce<true, 0>, 1, &ops[1][0]));
    MPI_CHECK(MPI_Op_create(&half_reduce<true, 1>, 1, &ops[1][1]));
    MPI_CHECK(MPI_Op_create(&half_reduce<true, 2>, 1, &ops[1][2]));
    MPI_CHECK(MPI_Op_create(&half_reduce<true, 3>, 1, &ops[1][3]));
  }
};
const HalfTypes& half_types() {
  static const HalfTypes t;  // created after MPI_Init, released by MPI_Finalize
  return t;
}

MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::kFp32: return MPI_FLOAT;
    case DType::kFp16: return half_types().fp16;
    case DType::kBf16: return half_types().bf16;
    case DType::kBool: return MPI_UINT8_T;
    case DType::kInt32: return MPI_INT32_T;
    case DType::kInt64: return MPI_INT64_T;
  }
  return MPI_BYTE;
}

MPI_Op mpi_op(DType t, ReduceOp op) {
  const int k = op == ReduceOp::kAvg ? 0 : static_cast<int>(op);
  if (t == DType::kFp16 || t == DType::kBf16) return half_types().ops[t == DType::kBf16][k];
  static const MPI_Op builtin[4] = {MPI_SUM, MPI_PROD, MPI_MAX, MPI_MIN};
  return builtin[k];
}

void scale_in_place(void* p, std::int64_t n, DType t, int divisor) {
  if (t == DType::kFp32) {
    auto* f = static_cast<float*>(p);
    for (std::int64_t i = 0; i < n; ++i) f[i] /= static_cast<float>(divisor);
    return;
  }
  for (std::int64_t i = 0; i < n; ++i) store_from_double(p, i, t, load_as_double(p, i, t) / divisor);
}

// ---- wait handle ------------------------------------------------------------------
class MpiWork final : public Work {
 public:
  MpiWork(OpContext ctx, CommOptions opts, bool cancellable)
      : ctx_(ctx), opts_(opts), cancellable_(cancellable) {}
  ~MpiWork() override {
    if (!done_) {
      try {
        wait();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "seqscale comm: %s\n", e.what());
      }
    }
  }

  std::vector<MPI_Request> reqs;
  std::function<void()> on_complete;

  bool test() override {
    if (done_) return true;
    int flag = 0;
    COMM_MPI_CHECK(ctx_, MPI_Testall(static_cast<int>(reqs.size()), reqs.data(), &flag, MPI_STATUSES_IGNORE));
    if (flag) finish();
    return done_;
  }

  void wait() override {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    const auto deadline = start + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(opts_.timeout_s));
    while (!test()) {
      const auto now = clock::now();
      if (now > deadline) timed_out();
      // Spin for latency, then yield: ranks may outnumber cores (mpirun --oversubscribe).
      const auto waited = now - start;
      if (waited > std::chrono::milliseconds(100)) {
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      } else if (waited > std::chrono::milliseconds(1)) {
        std::this_thread::yield();
      }
    }
  }

 private:
  void finish() {
    done_ = true;
    if (on_complete) on_complete();
  }

  [[noreturn]] void timed_out() {
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.1f", opts_.timeout_s);
    const std::string msg = str_cat({"seqscale comm: ", ctx_.describe(), " timed out after ", secs,
                                     " s (SEQSCALE_COMM_TIMEOUT_S): a peer rank is hung or dead"});
    if (opts_.abort_on_timeout) {
      std::fprintf(stderr, "%s; aborting the job with exit status %d\n", msg.c_str(), kTimeoutExitCode);
      std::fflush(stderr);
      MPI_Abort(MPI_COMM_WORLD, kTimeoutExitCode);
      std::_Exit(kTimeoutExitCode);
    }
    // Point-to-point requests can be cancelled; a started collective cannot, so it is
    // abandoned (the communicator is unusable for that group afterwards).
    if (cancellable_) {
      for (auto& r : reqs) {
        if (r != MPI_REQUEST_NULL) {
          MPI_Cancel(&r);
          MPI_Request_free(&r);
        }
      }
    }
    done_ = true;
    throw CommTimeout(msg);
  }

  OpContext ctx_;
  CommOptions opts_;
  bool cancellable_;
  bool done_ = false;
};

int checked_int(std::int64_t n, const OpContext& ctx) {
  if (n < 0 || n > INT_MAX)
    throw CommError(str_cat({"seqscale comm: ", ctx.describe(), ": element count ", std::to_string(n),
                             " is outside MPI's int range"}));
  return static_cast<int>(n);
}

// ---- the communicator -------------------------------------------------------------
class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(const RankLayout& layout, CommOptions opts) : Communicator(opts), layout_(layout) {
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
    if (layout.world_size() != size_)
      throw CommError(str_cat({"seqscale comm: plan ", layout.describe(), " needs ",
                               std::to_string(layout.world_size()), " ranks but MPI started ", std::to_string(size_)}));
    (void)half_types();
    for (int k = 0; k < kNumGroupKinds; ++k) {
      const auto g = static_cast<GroupKind>(k);
      MPI_CHECK(MPI_Comm_split(MPI_COMM_WORLD, layout.group_color(g, rank_), layout.group_rank(g, rank_), &comms_[k]));
      MPI_CHECK(MPI_Comm_set_errhandler(comms_[k], MPI_ERRORS_RETURN));
      MPI_CHECK(MPI_Comm_rank(comms_[k], &group_rank_[k]));
      MPI_CHECK(MPI_Comm_size(comms_[k], &group_size_[k]));
    }
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    for (auto& c : comms_) MPI_Comm_free(&c);
  }

  std::string_view backend() const override { return "mpi"; }
  bool device_buffers() const override { return false; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int group_rank(GroupKind g) const override { return group_rank_[group_index(g)]; }
  int group_size(GroupKind g) const override { return group_size_[group_index(g)]; }

  WorkPtr iall_reduce(GroupKind g, const void* send, void* recv, std::int64_t count, DType t, ReduceOp op) override {
    const std::int64_t bytes = collective_size_bytes(Collective::kAllReduce, count, t, group_size(g));
    auto [w, ctx] = start("all_reduce", g, bytes, false);
    const void* s = send == recv ? MPI_IN_PLACE : send;
    COMM_MPI_CHECK(ctx, MPI_Iallreduce(s, recv, checked_int(count, ctx), mpi_type(t), mpi_op(t, op), comm(g),
                                       &w->reqs[0]));
    if (op == ReduceOp::kAvg) w->on_complete = [recv, count, t, n = group_size(g)] { scale_in_place(recv, count, t, n); };
    count_call(g, Collective::kAllReduce, bytes);
    return w;
  }

  WorkPtr iall_gather(GroupKind g, const void* send, void* recv, std::int64_t send_count, DType t) override {
    const std::int64_t bytes = collective_size_bytes(Collective::kAllGather, send_count, t, group_size(g));
    auto [w, ctx] = start("all_gather", g, bytes, false);
    const int n = checked_int(send_count, ctx);
    COMM_MPI_CHECK(ctx, MPI_Iallgather(send, n, mpi_type(t), recv, n, mpi_type(t), comm(g), &w->reqs[0]));
    count_call(g, Collective::kAllGather, bytes);
    return w;
  }

  WorkPtr ireduce_scatter(GroupKind g, const void* send, void* recv, std::int64_t recv_count, DType t,
                          ReduceOp op) override {
    const std::int64_t bytes = collective_size_bytes(Collective::kReduceScatter, recv_count, t, group_size(g));
    auto [w, ctx] = start("reduce_scatter", g, bytes, false);
    COMM_MPI_CHECK(ctx, MPI_Ireduce_scatter_block(send, recv, checked_int(recv_count, ctx), mpi_type(t),
                                                  mpi_op(t, op), comm(g), &w->reqs[0]));
    if (op == ReduceOp::kAvg)
      w->on_complete = [recv, recv_count, t, n = group_size(g)] { scale_in_place(recv, recv_count, t, n); };
    count_call(g, Collective::kReduceScatter, bytes);
    return w;
  }

  WorkPtr iall_to_all(GroupKind g, const void* send, void* recv, std::int64_t count_per_peer, DType t) override {
    const std::int64_t bytes = collective_size_bytes(Collective::kAllToAll, count_per_peer, t, group_size(g));
    auto [w, ctx] = start("all_to_all", g, bytes, false);
    const int n = checked_int(count_per_peer, ctx);
    COMM_MPI_CHECK(ctx, MPI_Ialltoall(send, n, mpi_type(t), recv, n, mpi_type(t), comm(g), &w->reqs[0]));
    count_call(g, Collective::kAllToAll, bytes);
    return w;
  }

  WorkPtr iall_to_allv(GroupKind g, const void* send, const std::vector<std::int64_t>& send_counts,
                       const std::vector<std::int64_t>& send_displs, void* recv,
                       const std::vector<std::int64_t>& recv_counts, const std::vector<std::int64_t>& recv_displs,
                       DType t) override {
    std::int64_t sent = 0;
    for (auto c : send_counts) sent += c;
    const std::int64_t bytes = sent * dtype_bytes(t);
    auto [w, ctx] = start("all_to_allv", g, bytes, false);
    const auto n = static_cast<std::size_t>(group_size(g));
    if (send_counts.size() != n || send_displs.size() != n || recv_counts.size() != n || recv_displs.size() != n)
      throw CommError(str_cat({"seqscale comm: ", ctx.describe(),
                               ": counts and displacements need one entry per group rank (", std::to_string(n), ")"}));
    auto ints = std::make_shared<std::vector<int>>(4 * n);
    for (std::size_t i = 0; i < n; ++i) {
      (*ints)[i] = checked_int(send_counts[i], ctx);
      (*ints)[n + i] = checked_int(send_displs[i], ctx);
      (*ints)[2 * n + i] = checked_int(recv_counts[i], ctx);
      (*ints)[3 * n + i] = checked_int(recv_displs[i], ctx);
    }
    int* v = ints->data();
    COMM_MPI_CHECK(ctx, MPI_Ialltoallv(send, v, v + n, mpi_type(t), recv, v + 2 * n, v + 3 * n, mpi_type(t), comm(g),
                                       &w->reqs[0]));
    w->on_complete = [ints] {};  // the int arrays live until the request completes
    count_call(g, Collective::kAllToAll, bytes);
    return w;
  }

  WorkPtr ibroadcast(GroupKind g, void* buf, std::int64_t count, DType t, int root) override {
    const std::int64_t bytes = collective_size_bytes(Collective::kBroadcast, count, t, group_size(g));
    auto [w, ctx] = start("broadcast", g, bytes, false);
    COMM_MPI_CHECK(ctx, MPI_Ibcast(buf, checked_int(count, ctx), mpi_type(t), root, comm(g), &w->reqs[0]));
    count_call(g, Collective::kBroadcast, bytes);
    return w;
  }

  WorkPtr isend(GroupKind g, const void* buf, std::int64_t count, DType t, int peer, int tag) override {
    const std::int64_t bytes = collective_size_bytes(Collective::kSendRecv, count, t, group_size(g));
    auto [w, ctx] = start("send", g, bytes, true);
    COMM_MPI_CHECK(ctx, MPI_Isend(buf, checked_int(count, ctx), mpi_type(t), peer, tag, comm(g), &w->reqs[0]));
    count_call(g, Collective::kSendRecv, bytes);
    return w;
  }

  WorkPtr irecv(GroupKind g, void* buf, std::int64_t count, DType t, int peer, int tag) override {
    const std::int64_t bytes = collective_size_bytes(Collective::kSendRecv, count, t, group_size(g));
    auto [w, ctx] = start("recv", g, bytes, true);
    COMM_MPI_CHECK(ctx, MPI_Irecv(buf, checked_int(count, ctx), mpi_type(t), peer, tag, comm(g), &w->reqs[0]));
    count_call(g, Collective::kSendRecv, bytes);
    return w;
  }

  void barrier(GroupKind g) override {
    auto [w, ctx] = start("barrier", g, 0, false);
    COMM_MPI_CHECK(ctx, MPI_Ibarrier(comm(g), &w->reqs[0]));
    w->wait();
  }

 private:
  MPI_Comm comm(GroupKind g) const { return comms_[group_index(g)]; }
  std::pair<std::unique_ptr<MpiWork>, OpContext> start(std::string_view name, GroupKind g, std::int64_t bytes,
                                                       bool p2p) {
    OpContext ctx = context(name, g, bytes);
    auto w = std::make_unique<MpiWork>(ctx, options(), p2p);
    w->reqs.assign(1, MPI_REQUEST_NULL);
    return {std::move(w), ctx};
  }
  void count_call(GroupKind g, Collective c, std::int64_t bytes) { count(g, c, bytes); }

  RankLayout layout_;
  int rank_ = 0, size_ = 1;
  MPI_Comm comms_[kNumGroupKinds] = {};
  int group_rank_[kNumGroupKinds] = {};
  int group_size_[kNumGroupKinds] = {};
};

}  // namespace

MpiSession::MpiSession(int* argc, char*** argv) {
  int inited = 0;
  MPI_CHECK(MPI_Initialized(&inited));
  if (!inited) {
    int provided = 0;
    MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
    owns_ = true;
  }
}
MpiSession::~MpiSession() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (owns_ && !finalized) MPI_Finalize();
}
int MpiSession::world_rank() {
  int r = 0;
  MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &r));
  return r;
}
int MpiSession::world_size() {
  int n = 1;
  MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &n));
  return n;
}
bool MpiSession::initialized() {
  int inited = 0;
  MPI_Initialized(&inited);
  return inited != 0;
}

std::unique_ptr<Communicator> make_mpi_communicator(const RankLayout& layout, CommOptions options) {
  if (!MpiSession::initialized()) throw CommError("seqscale comm: MPI is not initialised (create an MpiSession first)");
  return std::make_unique<MpiCommunicator>(layout, options);
}

std::unique_ptr<Communicator> make_mpi_world_communicator(CommOptions options) {
  if (!MpiSession::initialized()) throw CommError("seqscale comm: MPI is not initialised (create an MpiSession first)");
  return make_mpi_communicator(RankLayout::for_world(MpiSession::world_size(), {}), options);
}

Communicator& mpi_world() {
  static MpiSession* session = [] {
    int argc = 0;
    char** argv = nullptr;
    return new MpiSession(&argc, &argv);
  }();
  static std::unique_ptr<Communicator> world = make_mpi_world_communicator();
  static const bool finalize_registered = [] {
    std::atexit([] {
      world.reset();
      delete session;
    });
    return true;
  }();
  (void)finalize_registered;
  return *world;
}

}  // namespace seqscale::comm
