// One point of the harness's suite "collectives": reads the point's params (bytes, dtype,
// op, root, iters, warmup), runs bench_collective, hands the per-iteration samples (max
// over ranks when `host` spans them) to the harness with record_samples and sets
// algbw_GBps, busbw_GBps, time_us, wrong_elements, nranks. Shared by the MPI
// (comm/bench) and NCCL (comm/nccl) registrations.
#pragma once
#include <string>

#include "comm/collectives/collective_bench.h"
#include "harness/bench/registry.h"

namespace seqscale::comm {

void run_collective_bench_point(const std::string& name, BenchState& s, Communicator& c, Communicator* host,
                                BenchMemory& mem);

}  // namespace seqscale::comm
