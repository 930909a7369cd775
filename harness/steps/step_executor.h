// Executes a StepProgram for real: every memory event becomes an allocation or free
// through the BenchState (tracking allocator on CPU, stream-ordered pool on GPU), so the
// measured high-water mark can be compared with the model's replay; every ComputeOp runs
// as GEMMs of the op's declared FLOPs (M = tokens, K = hidden / (tp * ulysses), N from
// the FLOPs, in column blocks of at most K) on the backend's GEMM (naive fp32 loops on
// CPU, cuBLAS bf16 with fp32 accumulation on GPU). That is a FLOP-faithful execution of
// the model's description, not of a framework's kernels: its time checks the model's
// compute efficiency, its memory the model's accounting.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "harness/bench/registry.h"
#include "workloads/step_program.h"

namespace seqscale {

struct GemmShape {
  std::int64_t m = 0, n = 0, k = 0;
  std::int64_t blocks = 0;   // n is run as `blocks` GEMMs of at most k columns
  std::int64_t block_n = 0;
};

GemmShape gemm_equivalent(const ComputeOp& op, std::int64_t tokens, std::int64_t k);

// Replays the device memory events in order (host-side events are skipped: offloaded
// states live in host memory the device does not see). Returns the peak live bytes the
// replay itself reached; the allocator's own high-water mark is the measured value.
std::int64_t replay_memory_events(const StepProgram& program, BenchState& state);

// Runs every ComputeOp of the program with `gemm(shape, column_blocks)`.
void run_compute_ops(const StepProgram& program, std::int64_t tokens, std::int64_t k,
                     const std::function<void(const GemmShape&)>& gemm);

}  // namespace seqscale
