// Runtime parameters of causal fused attention (pointers, shapes, strides, choices) and
// their validation, in plain C++: the CUDA launchers (causal_attention.cuh), the fp32 CPU
// backend (causal_attention_cpu.h) and the CPU tests share them. Compile-time tiles live
// apart, in the kernels' traits (causal_attention_tc.cuh).
//
// Layout: Q, K, V, O and their gradients are [B, S, H, D] views (batch, sequence, head,
// head dim) with element strides {batch, seq, head} and a unit head-dim stride, so the
// slices of a QKV GEMM's output serve directly: for a [B, S, 3, H, D] buffer `qkv`,
//   q = qkv, k = qkv + H*D, v = qkv + 2*H*D,  strides {3*S*H*D, 3*H*D, D}.
// Strides left all zero mean contiguous: {S*H*D, H*D, D}. The log-sum-exp and D_i are
// contiguous fp32 [B, H, S] (row (b, h, i) at (b*H + h)*S + i).
#pragma once
#include <cstdint>

#include "kernels/causal_attention/causal_attention_cost.h"
#include "workloads/dtype.h"

namespace seqscale {

struct BshdStrides {
  std::int64_t batch = 0, seq = 0, head = 0;  // elements; all zero: contiguous
};

// The strides a kernel uses: `st` itself, or the contiguous ones when `st` is all zero.
inline BshdStrides resolve_strides(const BshdStrides& st, const CausalAttentionShape& s) {
  if (st.batch == 0 && st.seq == 0 && st.head == 0) return {s.seq * s.heads * s.head_dim, s.heads * s.head_dim, s.head_dim};
  return st;
}

// Which kernel family: kAuto takes the tensor-core kernels for fp16/bf16 and the SIMT ones
// for fp32; the explicit choices are for tests and benchmarks.
enum class CausalAttentionKernel : std::uint8_t { kAuto, kSimt, kTensorCore };

struct CausalAttentionParams {
  CausalAttentionShape shape;
  DType io = DType::kBf16;  // fp16 / bf16 (both kernel families), fp32 (SIMT and CPU only)
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  void* o = nullptr;
  BshdStrides q_strides, k_strides, v_strides, o_strides;
  float* lse = nullptr;  // [B, H, S] natural-log log-sum-exp of the scaled logits: written by the forward
  CausalAttentionKernel kernel = CausalAttentionKernel::kAuto;
};

struct CausalAttentionGrads {
  const void* d_o = nullptr;
  void* dq = nullptr;
  void* dk = nullptr;
  void* dv = nullptr;
  BshdStrides d_o_strides, dq_strides, dk_strides, dv_strides;
  float* row_dot = nullptr;   // workspace [B, H, S]: D_i = dO_i . O_i
  float* dq_accum = nullptr;  // workspace [B, H, S, D] fp32: tensor cores in kAtomic mode only
  CausalBwdMode mode = CausalBwdMode::kAtomic;
};

// Supported head sizes: 96 (GenSLM-25B and -33B: hidden 6144 over 64 heads), 64 and 128
// (the other common GPT sizes). Anything else is refused with the field named.
inline bool causal_attention_head_dim_supported(std::int64_t d) { return d == 64 || d == 96 || d == 128; }

// True when the call runs on the tensor-core kernels (after validation: kAuto resolved).
inline bool causal_attention_uses_tc(const CausalAttentionParams& p) {
  return p.kernel == CausalAttentionKernel::kTensorCore ||
         (p.kernel == CausalAttentionKernel::kAuto && (p.io == DType::kFp16 || p.io == DType::kBf16));
}

// Largest number of blocks any launch of the call needs: B * H * ceil(S / 64) (the
// smallest tile); it must fit a 1-D grid (2^31 - 1).
inline constexpr std::int64_t kCausalAttentionMaxBlocks = 2147483647;

// Throw std::invalid_argument with one line naming the offending field ("causal_attention:
// shape.head_dim must be 64, 96 or 128, got 80"), before anything is launched.
// `gpu` = false validates for the fp32 CPU backend (fp32 only; no alignment rules).
void causal_attention_validate_fwd(const CausalAttentionParams& p, bool gpu = true);
void causal_attention_validate_bwd(const CausalAttentionParams& p, const CausalAttentionGrads& g, bool gpu = true);

}  // namespace seqscale
