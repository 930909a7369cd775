// Parallel strategies executed for real across ranks. Each strategy is one file that
// registers a StrategyDef: a tiny model with fixed shapes, and three functions sharing
// those shapes:
//   declare(layout, rank, program)  the CommOps one training step issues on this rank
//                                   (what the cost model prices); no communication
//   run(comm, math, layout)         the step on the Communicator (host fp32 buffers, so
//                                   it runs on the MPI backend) with its dense ops on
//                                   `math`; returns named tensors
//   reference(layout, rank)         the same tensors from a single-rank computation of
//                                   the whole model, sliced to what this rank holds
// tests/comm/strategies_mpi_test.cpp checks run == reference within fp32 tolerance and
// that the bytes each group sent (the backend's counters) equal the declared bytes.
// Why `math` is a parameter: over MPI the tests pass host_strategy_math(); over NCCL
// (tests/comm/nccl_gpu_test.cpp) the CUDA math (cuBLAS + kernels), so the same step is
// checked on the GPU kernels against the same host double-accumulation reference (that
// path compiles here but has not run on a GPU yet).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "comm/groups.h"
#include "comm/strategies/strategy_math.h"
#include "workloads/step_program.h"

namespace seqscale::comm {

using Tensors = std::map<std::string, std::vector<float>>;

struct StrategyDef {
  std::string name;          // "tensor_parallel", "ulysses", ...
  std::string summary;
  // The layout the strategy runs on for a world of n ranks (all of it: tp = n, ...).
  std::function<ParallelDims(int world)> dims;
  std::function<void(const RankLayout&, int rank, StepProgram&)> declare;
  std::function<Tensors(Communicator&, StrategyMath&, const RankLayout&)> run;
  std::function<Tensors(const RankLayout&, int rank)> reference;
  double tolerance = 1e-5;   // max |run - reference| / (1 + |reference|)
};

bool register_strategy(StrategyDef def);
const std::vector<StrategyDef>& registered_strategies();
const StrategyDef* find_strategy(const std::string& name);

#define SEQSCALE_STRATEGY(id, ...) \
  static const bool seqscale_strategy_##id = ::seqscale::comm::register_strategy(__VA_ARGS__)

// ---- declaring communication -------------------------------------------------------
// One CommOp with the payload in the nccl-tests convention (see communicator.h).
void declare_comm(StepProgram& p, const RankLayout& l, Collective c, GroupKind g, std::int64_t bytes, Phase phase,
                  bool overlappable = false);

// ---- small dense math on host fp32 (double accumulation) ---------------------------
// What reference() uses and host_strategy_math() wraps.
// Deterministic uniform values in [-scale, scale): equal on every rank for equal seeds.
std::vector<float> random_vector(std::int64_t n, std::uint64_t seed, float scale = 1.f);
// C[m,n] (+)= A[m,k] B[k,n]
void matmul(const float* a, const float* b, float* c, int m, int k, int n, bool accumulate = false);
// C[k,n] (+)= A[m,k]^T B[m,n]
void matmul_tn(const float* a, const float* b, float* c, int m, int k, int n, bool accumulate = false);
// C[m,k] (+)= A[m,n] B[k,n]^T
void matmul_nt(const float* a, const float* b, float* c, int m, int n, int k, bool accumulate = false);
// Columns [c0, c1) of a row-major [rows, cols] matrix, and rows [r0, r1).
std::vector<float> slice_cols(const std::vector<float>& a, int rows, int cols, int c0, int c1);
std::vector<float> slice_rows(const std::vector<float>& a, int cols, int r0, int r1);

// Single-head softmax attention over rows: O[Lq,D] = softmax(Q K^T / sqrt(D)) V, rows of
// every operand `ld` floats apart. Backward accumulates (+=) into dq, dk, dv.
void attention_fwd(const float* q, const float* k, const float* v, float* o, int lq, int lk, int d, int ld);
void attention_bwd(const float* q, const float* k, const float* v, const float* dout, float* dq, float* dk,
                   float* dv, int lq, int lk, int d, int ld);

// Adam on a flat shard; AdamConfig is in strategy_math.h.
void adam_step(float* param, const float* grad, float* m, float* v, std::int64_t n, int step, const AdamConfig& c = {});

}  // namespace seqscale::comm
