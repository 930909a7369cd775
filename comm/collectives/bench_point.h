// One point of the harness's suite "collectives": reads the point's params (bytes, dtype,
// op, root, iters, warmup), runs bench_collective, hands the per-iteration samples (max
// over ranks when `host` spans them) to the harness with record_samples and sets
// algbw_GBps, busbw_GBps, time_us, wrong_elements, nranks, crosses_nodes (the link tier
// seqscale calibrate files the busbw under). Shared by the MPI
// (comm/bench) and NCCL (comm/nccl) registrations.
#pragma once
#include <string>

#include "comm/collectives/collective_bench.h"
#include "harness/bench/registry.h"

namespace seqscale::comm {

// From the launcher's environment (Slurm node count, Open MPI / MPICH local size).
bool world_crosses_nodes(int world_size);

void run_collective_bench_point(const std::string& name, BenchState& s, Communicator& c, Communicator* host,
                                BenchMemory& mem);

}  // namespace seqscale::comm
