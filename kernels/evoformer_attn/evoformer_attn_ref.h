// CPU reference of Evoformer attention with pair bias, double accumulation:
//   O = softmax(Q K^T / sqrt(D) + mask_bias + pair_bias) V
// Q, K, V, O [B, N, L, H, D]; mask_bias [B, N, 1, 1, L]; pair_bias [B, 1, H, L, L]
// (broadcast over N); lse [B*N, H, L] (log-sum-exp of the biased, scaled logits). Either
// bias may be null. A row whose logits are all -inf gives O = 0 and lse = -inf, and no
// gradient. Backward returns dQ, dK, dV, d(pair bias) summed over N and d(mask bias)
// summed over heads and query rows.
#pragma once
#include "workloads/dtype.h"
#include "common/check_result.h"
#include <vector>

#include "kernels/evoformer_attn/evoformer_attn_cost.h"

namespace seqscale {

// Tolerances against this reference (tests and bench checks; ANCHORS.md s1, DS4Sci's own
// test): max-abs error 1e-2 (fp16) / 5e-2 (bf16) / 1e-4 (fp32) for O, dQ, dK, dV; twice
// that for d(pair bias) (a sum over N); 2 x heads x that for d(mask bias) (summed over heads).
inline double evoformer_attn_abs_tolerance(DType t) { return t == DType::kFp32 ? 1e-4 : (t == DType::kFp16 ? 1e-2 : 5e-2); }
inline CheckTolerance evoformer_attn_tolerance(DType t) { return {evoformer_attn_abs_tolerance(t), 0, 0}; }
inline CheckTolerance evoformer_attn_dpair_tolerance(DType t) { return {2 * evoformer_attn_abs_tolerance(t), 0, 0}; }
inline CheckTolerance evoformer_attn_dmask_tolerance(DType t, std::int64_t heads) {
  return {2 * evoformer_attn_abs_tolerance(t) * static_cast<double>(heads), 0, 0};
}

struct EvoformerAttnRefOut {
  std::vector<double> o;    // [B, N, L, H, D]
  std::vector<double> lse;  // [B*N, H, L]
};

struct EvoformerAttnRefGrads {
  std::vector<double> dq, dk, dv;  // [B, N, L, H, D]
  std::vector<double> dpair;       // [B, H, L, L]
  std::vector<double> dmask;       // [B, N, L]
};

EvoformerAttnRefOut evoformer_attn_fwd_ref(const EvoformerAttnShape& s, const std::vector<float>& q,
                                           const std::vector<float>& k, const std::vector<float>& v,
                                           const float* mask_bias, const float* pair_bias);

EvoformerAttnRefGrads evoformer_attn_bwd_ref(const EvoformerAttnShape& s, const std::vector<float>& q,
                                             const std::vector<float>& k, const std::vector<float>& v,
                                             const float* mask_bias, const float* pair_bias,
                                             const std::vector<float>& d_o);

}  // namespace seqscale
