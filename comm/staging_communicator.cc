// Host-staged calls over any Communicator (see staging_communicator.h).
#include "comm/staging_communicator.h"

#include <algorithm>
#include <cstdio>
#include <tuple>

namespace seqscale::comm {
namespace {

class StagedWork final : public Work {
 public:
  explicit StagedWork(BenchMemory& mem) : mem_(mem) {}
  ~StagedWork() override {
    if (!done_) {
      try {
        wait();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "seqscale comm: %s\n", e.what());
      }
    }
    for (void* p : owned_) mem_.release(p);
  }
  void* alloc(std::size_t bytes) {
    owned_.push_back(mem_.alloc(bytes));
    return owned_.back();
  }
  void* stage_in(const void* host, std::size_t bytes) {
    void* d = alloc(bytes);
    if (bytes) mem_.upload(d, host, bytes);
    return d;
  }
  void stage_out(void* host, const void* dev, std::size_t bytes) { outs_.emplace_back(host, dev, bytes); }
  WorkPtr inner;

  void wait() override {
    if (done_) return;
    inner->wait();
    finish();
  }
  bool test() override {
    if (done_) return true;
    if (!inner->test()) return false;
    finish();
    return true;
  }

 private:
  void finish() {
    done_ = true;
    for (auto& [host, dev, bytes] : outs_)
      if (bytes) mem_.download(host, dev, bytes);
  }
  BenchMemory& mem_;
  std::vector<void*> owned_;
  std::vector<std::tuple<void*, const void*, std::size_t>> outs_;
  bool done_ = false;
};

std::size_t nbytes(std::int64_t count, DType t) { return static_cast<std::size_t>(count * dtype_bytes(t)); }

std::int64_t extent(const std::vector<std::int64_t>& counts, const std::vector<std::int64_t>& displs) {
  std::int64_t e = 0;
  for (std::size_t i = 0; i < counts.size() && i < displs.size(); ++i) e = std::max(e, displs[i] + counts[i]);
  return e;
}

}  // namespace

StagingCommunicator::StagingCommunicator(Communicator& inner, BenchMemory& mem)
    : Communicator(inner.options()), inner_(inner), mem_(mem), name_("staged:" + std::string(inner.backend())) {}

WorkPtr StagingCommunicator::iall_reduce(GroupKind g, const void* s, void* r, std::int64_t n, DType t, ReduceOp op) {
  auto w = std::make_unique<StagedWork>(mem_);
  void* ds = w->stage_in(s, nbytes(n, t));
  void* dr = s == r ? ds : w->alloc(nbytes(n, t));
  w->inner = inner_.iall_reduce(g, ds, dr, n, t, op);
  w->stage_out(r, dr, nbytes(n, t));
  count(g, Collective::kAllReduce, collective_size_bytes(Collective::kAllReduce, n, t, group_size(g)));
  return w;
}

WorkPtr StagingCommunicator::iall_gather(GroupKind g, const void* s, void* r, std::int64_t n, DType t) {
  auto w = std::make_unique<StagedWork>(mem_);
  const std::int64_t out = n * group_size(g);
  void* ds = w->stage_in(s, nbytes(n, t));
  void* dr = w->alloc(nbytes(out, t));
  w->inner = inner_.iall_gather(g, ds, dr, n, t);
  w->stage_out(r, dr, nbytes(out, t));
  count(g, Collective::kAllGather, collective_size_bytes(Collective::kAllGather, n, t, group_size(g)));
  return w;
}

WorkPtr StagingCommunicator::ireduce_scatter(GroupKind g, const void* s, void* r, std::int64_t n, DType t,
                                             ReduceOp op) {
  auto w = std::make_unique<StagedWork>(mem_);
  const std::int64_t in = n * group_size(g);
  void* ds = w->stage_in(s, nbytes(in, t));
  void* dr = w->alloc(nbytes(n, t));
  w->inner = inner_.ireduce_scatter(g, ds, dr, n, t, op);
  w->stage_out(r, dr, nbytes(n, t));
  count(g, Collective::kReduceScatter, collective_size_bytes(Collective::kReduceScatter, n, t, group_size(g)));
  return w;
}

WorkPtr StagingCommunicator::iall_to_all(GroupKind g, const void* s, void* r, std::int64_t n, DType t) {
  auto w = std::make_unique<StagedWork>(mem_);
  const std::int64_t total = n * group_size(g);
  void* ds = w->stage_in(s, nbytes(total, t));
  void* dr = w->alloc(nbytes(total, t));
  w->inner = inner_.iall_to_all(g, ds, dr, n, t);
  w->stage_out(r, dr, nbytes(total, t));
  count(g, Collective::kAllToAll, collective_size_bytes(Collective::kAllToAll, n, t, group_size(g)));
  return w;
}

WorkPtr StagingCommunicator::iall_to_allv(GroupKind g, const void* s, const std::vector<std::int64_t>& sc,
                                          const std::vector<std::int64_t>& sd, void* r,
                                          const std::vector<std::int64_t>& rc, const std::vector<std::int64_t>& rd,
                                          DType t) {
  auto w = std::make_unique<StagedWork>(mem_);
  const std::int64_t in = extent(sc, sd), out = extent(rc, rd);
  void* ds = w->stage_in(s, nbytes(in, t));
  void* dr = w->alloc(nbytes(out, t));
  w->inner = inner_.iall_to_allv(g, ds, sc, sd, dr, rc, rd, t);
  w->stage_out(r, dr, nbytes(out, t));
  std::int64_t sent = 0;
  for (auto c : sc) sent += c;
  count(g, Collective::kAllToAll, sent * dtype_bytes(t));
  return w;
}

WorkPtr StagingCommunicator::ibroadcast(GroupKind g, void* buf, std::int64_t n, DType t, int root) {
  auto w = std::make_unique<StagedWork>(mem_);
  void* d = w->stage_in(buf, nbytes(n, t));
  w->inner = inner_.ibroadcast(g, d, n, t, root);
  w->stage_out(buf, d, nbytes(n, t));
  count(g, Collective::kBroadcast, collective_size_bytes(Collective::kBroadcast, n, t, group_size(g)));
  return w;
}

WorkPtr StagingCommunicator::isend(GroupKind g, const void* buf, std::int64_t n, DType t, int peer, int tag) {
  auto w = std::make_unique<StagedWork>(mem_);
  void* d = w->stage_in(buf, nbytes(n, t));
  w->inner = inner_.isend(g, d, n, t, peer, tag);
  count(g, Collective::kSendRecv, collective_size_bytes(Collective::kSendRecv, n, t, group_size(g)));
  return w;
}

WorkPtr StagingCommunicator::irecv(GroupKind g, void* buf, std::int64_t n, DType t, int peer, int tag) {
  auto w = std::make_unique<StagedWork>(mem_);
  void* d = w->alloc(nbytes(n, t));
  w->inner = inner_.irecv(g, d, n, t, peer, tag);
  w->stage_out(buf, d, nbytes(n, t));
  count(g, Collective::kSendRecv, collective_size_bytes(Collective::kSendRecv, n, t, group_size(g)));
  return w;
}

}  // namespace seqscale::comm
