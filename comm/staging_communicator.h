// StagingCommunicator: host buffers in, any backend underneath. Each call copies its
// inputs into buffers of `mem` (device memory for NCCL), launches the wrapped
// communicator's call, and copies the outputs back when the Work is waited on. It lets the
// strategies (comm/strategies, host fp32 buffers) run unchanged over NCCL on GPUs; its own
// counters use the same byte convention, so declared == measured still holds.
// Over the MPI backend with HostMemory it is a pure pass-through with copies (tested).
#pragma once
#include <string>

#include "comm/collectives/collective_bench.h"
#include "comm/communicator.h"

namespace seqscale::comm {

class StagingCommunicator final : public Communicator {
 public:
  StagingCommunicator(Communicator& inner, BenchMemory& mem);

  std::string_view backend() const override { return name_; }
  bool device_buffers() const override { return false; }
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  int group_rank(GroupKind g) const override { return inner_.group_rank(g); }
  int group_size(GroupKind g) const override { return inner_.group_size(g); }

  WorkPtr iall_reduce(GroupKind g, const void* send, void* recv, std::int64_t count, DType t, ReduceOp op) override;
  WorkPtr iall_gather(GroupKind g, const void* send, void* recv, std::int64_t send_count, DType t) override;
  WorkPtr ireduce_scatter(GroupKind g, const void* send, void* recv, std::int64_t recv_count, DType t,
                          ReduceOp op) override;
  WorkPtr iall_to_all(GroupKind g, const void* send, void* recv, std::int64_t count_per_peer, DType t) override;
  WorkPtr iall_to_allv(GroupKind g, const void* send, const std::vector<std::int64_t>& send_counts,
                       const std::vector<std::int64_t>& send_displs, void* recv,
                       const std::vector<std::int64_t>& recv_counts, const std::vector<std::int64_t>& recv_displs,
                       DType t) override;
  WorkPtr ibroadcast(GroupKind g, void* buf, std::int64_t count, DType t, int root) override;
  WorkPtr isend(GroupKind g, const void* buf, std::int64_t count, DType t, int peer, int tag) override;
  WorkPtr irecv(GroupKind g, void* buf, std::int64_t count, DType t, int peer, int tag) override;
  void barrier(GroupKind g) override { inner_.barrier(g); }
  void group_start() override { inner_.group_start(); }
  void group_end() override { inner_.group_end(); }

 private:
  Communicator& inner_;
  BenchMemory& mem_;
  std::string name_;
};

}  // namespace seqscale::comm
