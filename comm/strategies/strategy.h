// Parallel strategies executed for real across ranks. Each strategy is one file that
// registers a StrategyDef: a tiny model whose shapes are written once, at the top of the
// file, and three functions sharing them:
//   emit(layout, rank)        the CommOps one step issues on this rank: the strategy's
//                             emitter (workloads/parallel/<strategy>_comm.h, the same
//                             one the cost model composes) at the tiny shapes
//   run(comm, math, layout)   the step on the Communicator (host fp32 buffers, so it
//                             runs on the MPI backend) with its dense ops on `math`,
//                             issuing exactly the emitted ops; returns named tensors.
//                             It marks the phase of its calls with comm.set_phase()
//   reference(layout, rank)   the same tensors from a single-rank computation of the
//                             whole model, sliced to what this rank holds
// run_checked() runs a strategy recording every call (calls on a one-rank group move
// nothing and are not recorded, as emitters list none) and throws ExecutedNotEmitted at
// the first op that differs from emit()'s: tests/consistency/strategies_mpi_test.cpp runs
// every strategy so at 2, 4 and 8 ranks and compares its tensors with reference().
// Why `math` is a parameter: over MPI the tests pass host_strategy_math(); over NCCL
// (tests/comm/nccl_gpu_test.cpp) the CUDA math (cuBLAS + kernels), so the same step is
// checked on the GPU kernels against the same host double-accumulation reference (that
// path compiles here but has not run on a GPU yet).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "comm/groups.h"
#include "comm/strategies/strategy_math.h"
#include "workloads/parallel/comm_ops.h"
#include "workloads/plan.h"
#include "workloads/specs.h"
#include "workloads/step_program.h"

namespace seqscale::comm {

using Tensors = std::map<std::string, std::vector<float>>;

struct StrategyDef {
  std::string name;          // "tensor_parallel", "ulysses", ...
  std::string summary;
  // The layout the strategy runs on for a world of n ranks (all of it: tp = n, ...).
  std::function<ParallelDims(int world)> dims;
  std::function<CommOps(const RankLayout&, int rank)> emit;
  std::function<Tensors(Communicator&, StrategyMath&, const RankLayout&)> run;
  std::function<Tensors(const RankLayout&, int rank)> reference;
  double tolerance = 1e-5;   // max |run - reference| / (1 + |reference|)
};

bool register_strategy(StrategyDef def);
const std::vector<StrategyDef>& registered_strategies();
const StrategyDef* find_strategy(const std::string& name);

#define SEQSCALE_STRATEGY(id, ...) \
  static const bool seqscale_strategy_##id = ::seqscale::comm::register_strategy(__VA_ARGS__)

// ---- executed == emitted ----------------------------------------------------------
// Thrown by run_checked with one line naming the strategy, the rank and the first op
// that differs: "megatron_sp (rank 1): op 3 executed all_gather on tp (2 ranks), 512 B,
// backward; emitted reduce_scatter on tp (2 ranks), 512 B, backward".
class ExecutedNotEmitted : public std::runtime_error {
 public:
  explicit ExecutedNotEmitted(const std::string& what) : std::runtime_error(what) {}
};

// def.run on `comm` with every call recorded (collective, group, group size, bytes,
// phase), then compared with def.emit(layout, comm.rank()) op by op. Returns run()'s
// tensors (and the executed ops into `executed` when given); throws ExecutedNotEmitted
// on the first difference.
Tensors run_checked(const StrategyDef& def, Communicator& comm, StrategyMath& math, const RankLayout& layout,
                    std::vector<CommOp>* executed = nullptr);

// "all_gather on tp (2 ranks), 512 B, backward"
std::string describe(const CommOp& op);

// ---- describing a toy step to its emitter ------------------------------------------
// A one-layer fp32 transformer of width `hidden` (kv_heads = heads, no vocabulary): the
// strategy sets what else its emitter reads.
TransformerSpec toy_transformer(std::int64_t hidden, std::int64_t heads = 1);
// The checked plan of `layout`'s tp, pp, dp and ep; the strategy adds its own keys (sp,
// sp_degree, dap, zero, schedule).
Plan toy_plan(const RankLayout& layout);

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
