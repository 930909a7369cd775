// Communicator: one interface, two backends. MPI (comm/mpi/, host buffers, runs anywhere,
// what CI uses) and NCCL (comm/nccl/, device buffers on a CUDA stream). Plain C++: no
// mpi.h, no nccl.h, so strategies and the model-facing code build everywhere.
//
// Conventions
// - Buffers are void* + element count + DType; the backend decides host or device.
// - Every collective has an async form returning a Work handle (the "duality async"
//   pattern of FastFold: one op launches, its partner waits, compute runs in between);
//   the sync form is launch + wait.
// - Every call counts its bytes in the CommStats of its group, in the nccl-tests "size"
//   convention that CommOp::bytes uses (workloads/collective_sizes.h: collective_size_bytes
//   of the call's count; all_to_allv: what this rank sends in total), so a StepProgram's
//   comm_bytes(group) and stats(group).bytes compare exactly.
// - Errors name the collective, the group, the rank and the library's message
//   (CommError); a collective that does not finish before the timeout is reported and the
//   job aborted (or CommTimeout thrown when CommOptions::abort_on_timeout is false).
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "workloads/collective_sizes.h"
#include "workloads/dtype.h"
#include "workloads/step_program.h"

namespace seqscale::comm {

enum class ReduceOp : std::uint8_t { kSum, kProd, kMax, kMin, kAvg };
std::string_view reduce_op_name(ReduceOp op);
bool parse_reduce_op(std::string_view name, ReduceOp* out);

// kNumGroupKinds and kNumCollectives (workloads/step_program.h) size the per-group arrays.
constexpr int group_index(GroupKind g) { return static_cast<int>(g); }

// Exit status of a job aborted because a collective timed out.
constexpr int kTimeoutExitCode = 3;

class CommError : public std::runtime_error {
 public:
  explicit CommError(const std::string& what) : std::runtime_error(what) {}
};
class CommTimeout : public CommError {
 public:
  explicit CommTimeout(const std::string& what) : CommError(what) {}
};

struct CommStats {
  std::int64_t calls = 0;
  std::int64_t bytes = 0;        // nccl-tests "size" summed over calls (CommOp::bytes)
  std::int64_t wire_bytes = 0;   // bytes this rank put on the wire: size x busbw_factor (collective_sizes.h)
  std::array<std::int64_t, kNumCollectives> bytes_by_collective{};  // indexed by Collective
};

struct CommOptions {
  double timeout_s = 300;        // env SEQSCALE_COMM_TIMEOUT_S overrides
  bool abort_on_timeout = true;  // false: throw CommTimeout (the caller cleans up)
};
// CommOptions with SEQSCALE_COMM_TIMEOUT_S (seconds, > 0) applied; every make_*_communicator
// takes this by default, so the variable (set per run by `seqscale bench --comm-timeout-s`)
// reaches each communicator. A value that is not a positive number throws ConfigError
// naming the variable.
CommOptions options_from_env(CommOptions base = {});

// Wait handle of an async collective. Destroying an unfinished handle waits for it.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;   // blocks (up to the timeout); throws CommError
  virtual bool test() = 0;   // true when complete (and completion work is done)
};
using WorkPtr = std::unique_ptr<Work>;
void wait_all(std::vector<WorkPtr>& works);

// Which collective on which group, for messages: "all_reduce on group tensor (world rank
// 3/8, group rank 1/2, 4096 B)".
struct OpContext {
  std::string_view collective;
  GroupKind group = GroupKind::kWorld;
  int world_rank = 0, world_size = 1, group_rank = 0, group_size = 1;
  std::int64_t bytes = 0;
  std::string describe() const;
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual std::string_view backend() const = 0;  // "mpi", "nccl"
  virtual bool device_buffers() const = 0;       // true: buffers are device pointers
  virtual int rank() const = 0;                  // world rank
  virtual int size() const = 0;                  // world size
  virtual int group_rank(GroupKind g) const = 0;
  virtual int group_size(GroupKind g) const = 0;

  // ---- async collectives -----------------------------------------------------------
  // all_reduce: count elements in, count out (in place when send == recv).
  virtual WorkPtr iall_reduce(GroupKind g, const void* send, void* recv, std::int64_t count, DType t,
                              ReduceOp op) = 0;
  // all_gather: send_count in, group_size * send_count out, ordered by group rank.
  virtual WorkPtr iall_gather(GroupKind g, const void* send, void* recv, std::int64_t send_count,
                              DType t) = 0;
  // reduce_scatter: group_size * recv_count in, recv_count out (block of this group rank).
  virtual WorkPtr ireduce_scatter(GroupKind g, const void* send, void* recv, std::int64_t recv_count,
                                  DType t, ReduceOp op) = 0;
  // all_to_all: block j (count_per_peer elements) of send goes to group rank j.
  virtual WorkPtr iall_to_all(GroupKind g, const void* send, void* recv, std::int64_t count_per_peer,
                              DType t) = 0;
  // all_to_allv: counts and displacements in elements, one per group rank.
  virtual WorkPtr iall_to_allv(GroupKind g, const void* send, const std::vector<std::int64_t>& send_counts,
                               const std::vector<std::int64_t>& send_displs, void* recv,
                               const std::vector<std::int64_t>& recv_counts,
                               const std::vector<std::int64_t>& recv_displs, DType t) = 0;
  virtual WorkPtr ibroadcast(GroupKind g, void* buf, std::int64_t count, DType t, int root) = 0;
  // Point to point within a group; peer is a group rank. NCCL matches by order (tag unused).
  virtual WorkPtr isend(GroupKind g, const void* buf, std::int64_t count, DType t, int peer, int tag) = 0;
  virtual WorkPtr irecv(GroupKind g, void* buf, std::int64_t count, DType t, int peer, int tag) = 0;
  virtual void barrier(GroupKind g) = 0;  // not counted
  // Brackets calls that must be issued together (NCCL: ncclGroupStart/End, e.g. the send
  // and recv of a ring step on one stream); no-ops on MPI, whose calls never block.
  virtual void group_start() {}
  virtual void group_end() {}

  // ---- sync forms: launch + wait ---------------------------------------------------
  void all_reduce(GroupKind g, const void* s, void* r, std::int64_t n, DType t, ReduceOp op = ReduceOp::kSum) {
    iall_reduce(g, s, r, n, t, op)->wait();
  }
  void all_gather(GroupKind g, const void* s, void* r, std::int64_t n, DType t) { iall_gather(g, s, r, n, t)->wait(); }
  void reduce_scatter(GroupKind g, const void* s, void* r, std::int64_t n, DType t, ReduceOp op = ReduceOp::kSum) {
    ireduce_scatter(g, s, r, n, t, op)->wait();
  }
  void all_to_all(GroupKind g, const void* s, void* r, std::int64_t n, DType t) { iall_to_all(g, s, r, n, t)->wait(); }
  void all_to_allv(GroupKind g, const void* s, const std::vector<std::int64_t>& sc,
                   const std::vector<std::int64_t>& sd, void* r, const std::vector<std::int64_t>& rc,
                   const std::vector<std::int64_t>& rd, DType t) {
    iall_to_allv(g, s, sc, sd, r, rc, rd, t)->wait();
  }
  void broadcast(GroupKind g, void* b, std::int64_t n, DType t, int root) { ibroadcast(g, b, n, t, root)->wait(); }
  void send(GroupKind g, const void* b, std::int64_t n, DType t, int peer, int tag = 0) {
    isend(g, b, n, t, peer, tag)->wait();
  }
  void recv(GroupKind g, void* b, std::int64_t n, DType t, int peer, int tag = 0) {
    irecv(g, b, n, t, peer, tag)->wait();
  }

  // ---- byte counters ---------------------------------------------------------------
  const CommStats& stats(GroupKind g) const { return stats_[group_index(g)]; }
  std::array<CommStats, kNumGroupKinds> snapshot() const { return stats_; }
  void reset_stats() { stats_ = {}; }

  // ---- recording: executed == emitted (comm/strategies run_checked) ---------------
  // The phase of the step the next calls belong to: a strategy's run() marks its
  // backward and optimizer. While `ops` is set, every launched call on a group of more
  // than one rank appends one CommOp to it, in launch order: collective, group, group
  // size, the bytes counted above and the phase (overlappable and crosses_nodes left
  // false: schedule and placement are not the call's). A call on a one-rank group is a
  // local copy that moves nothing, and the emitters list none (workloads/parallel).
  void set_phase(Phase p) { phase_ = p; }
  void record_into(std::vector<CommOp>* ops) { recorded_ = ops; }

  const CommOptions& options() const { return options_; }
  void set_options(const CommOptions& o) { options_ = o; }

 protected:
  explicit Communicator(CommOptions o) : options_(o) {}
  // Called by backends once per launched call, with the nccl-tests size.
  void count(GroupKind g, Collective c, std::int64_t size_bytes);
  OpContext context(std::string_view collective, GroupKind g, std::int64_t bytes) const;

 private:
  std::array<CommStats, kNumGroupKinds> stats_{};
  CommOptions options_;
  Phase phase_ = Phase::kForward;
  std::vector<CommOp>* recorded_ = nullptr;
};

// Bytes one group sent between two snapshots (the strategy tests' measured side).
std::int64_t bytes_since(const std::array<CommStats, kNumGroupKinds>& before, const Communicator& c, GroupKind g);

}  // namespace seqscale::comm
