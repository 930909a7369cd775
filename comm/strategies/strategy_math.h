// The dense ops a strategy's run() does between its collectives, behind one interface so
// the same strategy code runs on host math over MPI (CI) and on GPU kernels over NCCL
// (comm/strategies/cuda/strategy_math_cuda.h). Same signatures and semantics as the free
// functions of strategy.h: host float pointers in and out, row-major, `accumulate` adds
// into C, attention_bwd always accumulates into dq, dk, dv. Elementwise glue (tanh, the
// router's softmax, DAP's column op) stays on host in the strategies. reference() never
// goes through this: references are always the host double-accumulating functions.
#pragma once
#include <cstdint>

namespace seqscale::comm {

// Adam on a flat shard (the sharded optimizer of ZeRO and of the host offload).
struct AdamConfig {
  float lr = 1e-2f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
};

class StrategyMath {
 public:
  virtual ~StrategyMath() = default;
  // C[m,n] (+)= A[m,k] B[k,n]
  virtual void matmul(const float* a, const float* b, float* c, int m, int k, int n, bool accumulate = false) = 0;
  // C[k,n] (+)= A[m,k]^T B[m,n]
  virtual void matmul_tn(const float* a, const float* b, float* c, int m, int k, int n, bool accumulate = false) = 0;
  // C[m,k] (+)= A[m,n] B[k,n]^T
  virtual void matmul_nt(const float* a, const float* b, float* c, int m, int n, int k, bool accumulate = false) = 0;
  // O[Lq,D] = softmax(Q K^T / sqrt(D)) V, rows `ld` floats apart; columns >= d untouched.
  virtual void attention_fwd(const float* q, const float* k, const float* v, float* o, int lq, int lk, int d,
                             int ld) = 0;
  virtual void attention_bwd(const float* q, const float* k, const float* v, const float* dout, float* dq, float* dk,
                             float* dv, int lq, int lk, int d, int ld) = 0;
  // `step` counts from 1 (bias correction).
  virtual void adam_step(float* param, const float* grad, float* m, float* v, std::int64_t n, int step,
                         const AdamConfig& c = {}) = 0;
};

// The free functions of strategy.h (fp32 storage, double accumulation). One shared,
// stateless instance.
StrategyMath& host_strategy_math();

}  // namespace seqscale::comm
