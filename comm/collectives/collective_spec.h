// One small spec per collective kind (nccl-tests style: name, buffer counts, expected
// data, the call), each in its own file and self-registered with designated initialisers:
//   SEQSCALE_COLLECTIVE(all_gather, {.name = "all_gather", .kind = Collective::kAllGather,
//                                    .uses_op = false, .counts = ..., .expected = ..., .launch = ...});
// The collectives benchmarks (comm/bench for MPI, comm/nccl for NCCL) and the standalone
// driver iterate registered_collectives(), so a new spec file is benchmarked as it lands;
// tests/comm/collective_specs_test.cpp checks there is one spec per Collective kind.
//
// Sizes and bus-bandwidth factors follow nccl-tests as workloads/collective_sizes.h states
// them (size: the larger of the two buffers), the convention of CommOp::bytes, so measured
// busbw calibrates exactly what the model prices.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "comm/communicator.h"

namespace seqscale::comm {

struct CollectiveCounts {
  std::int64_t send = 0, recv = 0;  // elements per rank in the send and receive buffers
};

struct CollectiveSpec {
  std::string_view name;            // collective_name(kind): "all_reduce", ...
  Collective kind = Collective::kAllReduce;
  bool uses_op = false;             // the reduction op matters (sweep ops)
  // Buffer sizes for a size in bytes (rounded down so every rank gets whole elements).
  CollectiveCounts (*counts)(std::int64_t size_bytes, DType t, int nranks) = nullptr;
  // Expected receive element i on group rank `me`, given the input pattern below.
  double (*expected)(std::int64_t i, int me, int nranks, ReduceOp op, int root, const CollectiveCounts& c) = nullptr;
  WorkPtr (*launch)(Communicator& c, GroupKind g, const void* send, void* recv, const CollectiveCounts& n, DType t,
                    ReduceOp op, int root) = nullptr;
};

bool register_collective(const CollectiveSpec& spec);
const std::vector<CollectiveSpec>& registered_collectives();
const CollectiveSpec* find_collective(std::string_view name);

#define SEQSCALE_COLLECTIVE(id, ...) \
  static const bool seqscale_collective_##id = ::seqscale::comm::register_collective(__VA_ARGS__)

// Input element i on rank r: small integers (exact in fp16/bf16 even after a sum or a
// product over 8 ranks), different per rank and position.
double collective_input(int rank, std::int64_t i, ReduceOp op);
// The reduction of collective_input over ranks [0, n) at element i.
double collective_reduce(std::int64_t i, int n, ReduceOp op, DType t);
// Whether got matches want for the dtype (exact for sums of small integers; avg rounds).
bool collective_close(double got, double want, DType t, ReduceOp op);

// A Work that completes when all of its parts do (send + recv of a ring step).
WorkPtr combine_work(std::vector<WorkPtr> parts);

}  // namespace seqscale::comm
