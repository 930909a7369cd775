// CPU reference of causal attention, double accumulation:
//   O_i = sum_{j <= i} softmax_j(Q_i . K_j / sqrt(D)) V_j,   lse_i = log sum_{j <= i} exp(Q_i . K_j / sqrt(D))
// Q, K, V, O (and gradients) contiguous [B, S, H, D] as float (the values a kernel saw,
// already rounded to its dtype); lse [B, H, S]. Backward by the textbook rule:
//   P_ij = exp(s_ij - lse_i), dP_ij = dO_i . V_j, D_i = sum_j P_ij dP_ij, dS_ij = P_ij (dP_ij - D_i),
//   dV_j = sum_i P_ij dO_i,  dK_j = sum_i dS_ij Q_i / sqrt(D),  dQ_i = sum_j dS_ij K_j / sqrt(D).
// Every query row has key 0, so no row is empty. Any head size D >= 1 (the kernels take 64,
// 96 and 128; the tests use small D too).
//
// A whole (b, h) slice costs ~S^2 D multiply-adds forward and ~3.5x that with the backward,
// more than a bench check may spend at S >= 2K; the row functions below check a sample of
// query rows exactly, and a sample of key rows given the kernel's own forward statistics.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/causal_attention/causal_attention_cost.h"
#include "common/check_result.h"
#include "workloads/dtype.h"

namespace seqscale {

// Tolerances against this reference (tests and the benches' check), max-abs error for
// O, dQ, dK, dV with inputs of unit scale (normal(0, 1) in the tests, uniform(-1, 1) in the
// benches): bf16 5e-2, fp16 1e-2, fp32 1e-4, as for evoformer_attn. Why they hold: every
// output is a rounding of an fp32 accumulation whose inputs are exact dtype values; the
// largest error is the final rounding of an output of a few units (bf16: 8 significant
// bits, half an ulp at 4 is 2^-7 = 0.008; fp16: 11 bits, 0.001) plus P and dS entering the
// tensor-core products rounded to the dtype (relative 2^-9 / 2^-12 each, random in sign, so
// their sum over i or j grows like the square root of the count while the terms shrink like
// 1/count). fp32: the SIMT and CPU kernels accumulate in fp32 over at most a few thousand
// terms (~1e-6), 1e-4 leaves margin.
inline double causal_attention_abs_tolerance(DType t) {
  return t == DType::kFp32 ? 1e-4 : (t == DType::kFp16 ? 1e-2 : 5e-2);
}
inline CheckTolerance causal_attention_tolerance(DType t) { return {causal_attention_abs_tolerance(t), 0, 0}; }
// The log-sum-exp is fp32 in every dtype; its error comes from the sum of P rounded to the
// dtype (relative 2^-9 in bf16 -> ~0.002 in lse) and from the logits' fp32 accumulation:
// 1e-2 absolute + 1e-2 relative in fp16/bf16 (a few bf16 steps), 1e-5 + 1e-5 in fp32.
inline CheckTolerance causal_attention_lse_tolerance(DType t) {
  return t == DType::kFp32 ? CheckTolerance{1e-5, 1e-5, 0} : CheckTolerance{1e-2, 1e-2, 0};
}

struct CausalAttentionRefOut {
  std::vector<double> o;    // [B, S, H, D]
  std::vector<double> lse;  // [B, H, S]
};

struct CausalAttentionRefGrads {
  std::vector<double> dq, dk, dv;  // [B, S, H, D]
};

CausalAttentionRefOut causal_attention_fwd_ref(const CausalAttentionShape& s, const std::vector<float>& q,
                                               const std::vector<float>& k, const std::vector<float>& v);

CausalAttentionRefGrads causal_attention_bwd_ref(const CausalAttentionShape& s, const std::vector<float>& q,
                                                 const std::vector<float>& k, const std::vector<float>& v,
                                                 const std::vector<float>& d_o);

// ---- sampled rows of one (b, h) slice ----------------------------------------------
// A slice is the [S, D] values of one (b, h), contiguous (q[i * D + d]).
struct CausalAttentionSlice {
  std::int64_t seq = 1, head_dim = 1;
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  const float* d_o = nullptr;  // null: forward only
};

struct CausalAttentionQueryRowsRef {
  std::vector<double> o;    // [rows, D]
  std::vector<double> lse;  // [rows]
  std::vector<double> dq;   // [rows, D]; empty without d_o
};

// O, lse and (with d_o) dQ of query rows `rows`, exactly: each costs ~2 i D (forward) and
// as much again (dQ) multiply-adds.
CausalAttentionQueryRowsRef causal_attention_query_rows_ref(const CausalAttentionSlice& x,
                                                            const std::vector<std::int64_t>& rows);

struct CausalAttentionKeyRowsRef {
  std::vector<double> dk, dv;  // [keys, D]
};

// dK and dV of key rows `keys` given every query row's forward statistics, lse_i [S] and
// D_i = dO_i . O_i [S] (a bench passes the kernel's own lse and O, checked on sampled rows
// by the query-row reference): each key j costs ~4 (S - j) D multiply-adds instead of the
// whole slice's S^2 D.
CausalAttentionKeyRowsRef causal_attention_key_rows_ref(const CausalAttentionSlice& x, const std::vector<double>& lse,
                                                        const std::vector<double>& row_dot,
                                                        const std::vector<std::int64_t>& keys);

}  // namespace seqscale
