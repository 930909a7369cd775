// NCCL backend of the Communicator (device buffers on a CUDA stream). Two ways to start:
//   - one process per GPU (mpirun / srun): an MPI (host) communicator bootstraps the
//     world, rank 0's ncclUniqueId is broadcast over it as nccl-tests does, and every
//     group of the plan is an ncclCommSplit of the world;
//   - one process driving all GPUs of a node: ncclCommInitAll; the caller issues each
//     collective on every device's communicator between group_start() and group_end().
// Work::wait polls a CUDA event and ncclCommGetAsyncError against the deadline; on an
// asynchronous NCCL error or a timeout every communicator is ncclCommAbort-ed and the
// error names the collective, group and rank (the process exits with kTimeoutExitCode
// when CommOptions::abort_on_timeout is set, so mpirun tears the job down).
// Plain header: no nccl.h or cuda_runtime.h.
#pragma once
#include <cstddef>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "comm/collectives/collective_bench.h"
#include "comm/communicator.h"
#include "comm/groups.h"

namespace seqscale::comm {

// How the ranks agree on the ncclUniqueId: rank, size and a broadcast of raw bytes from
// rank 0 (MPI, or the harness's RankContext).
struct NcclBootstrap {
  int rank = 0, size = 1;
  std::function<void(void* data, std::size_t bytes)> broadcast_from_root;
};
// device < 0: local rank modulo the visible devices (OMPI / SLURM local-rank variables).
std::unique_ptr<Communicator> make_nccl_communicator(const NcclBootstrap& bootstrap, const RankLayout& layout,
                                                     int device, CommOptions options = options_from_env());
// Bootstrapped over a host communicator (the MPI backend's world).
std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap, const RankLayout& layout, int device,
                                                     CommOptions options = options_from_env());
// One communicator per visible device (layout.world_size() devices), rank i on device i.
std::vector<std::unique_ptr<Communicator>> make_nccl_communicators_single_process(
    const RankLayout& layout, CommOptions options = options_from_env());

// Streams: every call of an NCCL communicator is enqueued on its stream (its own, unless
// set here to the harness's cudaStream_t).
void nccl_set_stream(Communicator& nccl, void* cuda_stream);
void* nccl_stream(Communicator& nccl);

// Device memory on the communicator's GPU, for the collective benchmark (cudaMalloc: not
// the harness's pool, see collectives_bench_nccl.cu).
std::unique_ptr<BenchMemory> make_device_memory(Communicator& nccl);

// all_to_all: "ncclAlltoAll" when the libnccl loaded at run time has it (2.28 or later),
// else "send/recv" (ncclSend/ncclRecv in one group). Chosen when the communicator is made;
// env SEQSCALE_NCCL_ALLTOALL=auto (default) | native (error if missing) | sendrecv (forced).
std::string_view nccl_all_to_all_path(Communicator& nccl);
// NCCL_VERSION_CODE of the libnccl loaded at run time (ncclGetVersion), e.g. 22809.
int nccl_runtime_version();

}  // namespace seqscale::comm
