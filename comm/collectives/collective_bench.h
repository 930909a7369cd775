// The collective benchmark (nccl-tests method, ANCHORS section 6): per size, one untimed
// op whose every element is checked (#wrong), warm-ups, a barrier, timed iterations each
// launched and waited; each iteration's time is the max over ranks; time = their mean,
// algbw = size / time, busbw = algbw x busbw_factor (2(n-1)/n all-reduce, (n-1)/n
// all-gather / reduce-scatter / all-to-all, 1 broadcast and send/recv).
// Runs any registered CollectiveSpec on any Communicator: BenchMemory says where buffers
// live (host for MPI, device for NCCL).
#pragma once
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "comm/collectives/collective_spec.h"

namespace seqscale::comm {

class BenchMemory {
 public:
  virtual ~BenchMemory() = default;
  virtual void* alloc(std::size_t bytes) = 0;
  virtual void release(void* p) = 0;
  virtual void upload(void* dst, const void* host, std::size_t bytes) = 0;
  virtual void download(void* host, const void* src, std::size_t bytes) = 0;
};
// Plain host memory (MPI backend).
class HostMemory final : public BenchMemory {
 public:
  void* alloc(std::size_t bytes) override;
  void release(void* p) override;
  void upload(void* dst, const void* host, std::size_t bytes) override;
  void download(void* host, const void* src, std::size_t bytes) override;
};

struct CollBenchOptions {
  GroupKind group = GroupKind::kWorld;
  int warmup = 5;
  int iters = 20;
  bool check = true;
};

struct CollBenchRow {
  std::string collective;
  std::int64_t size_bytes = 0, count = 0;  // count: elements of the larger buffer
  DType dtype = DType::kFp32;
  ReduceOp op = ReduceOp::kSum;
  int root = 0, nranks = 1;
  double time_us = 0, algbw_GBps = 0, busbw_GBps = 0;
  std::int64_t wrong = 0;               // summed over ranks; -1 when not checked
  std::vector<double> samples_s;        // per iteration, max over ranks
};

// One size. `host` reduces times and #wrong over ranks on host memory (the MPI world;
// nullptr when the run is one process). Sizes too small for one element per rank give a
// row with count 0 and no timing.
CollBenchRow bench_collective(Communicator& c, Communicator* host, BenchMemory& mem, const CollectiveSpec& spec,
                              std::int64_t size_bytes, DType t, ReduceOp op, int root, const CollBenchOptions& o);

// Sizes min, min*factor, ... <= max (nccl-tests -b -e -f).
std::vector<std::int64_t> size_sweep(std::int64_t min_bytes, std::int64_t max_bytes, double factor);

void print_header(std::ostream& os, const std::string& title);
void print_row(std::ostream& os, const CollBenchRow& r);
nlohmann::json to_json(const CollBenchRow& r);

}  // namespace seqscale::comm
