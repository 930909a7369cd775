// Rotary position embedding (RoPE, Su et al. 2021) in GPT-NeoX's rotate-half convention
// (HF GPTNeoXAttention / Llama's apply_rotary_pos_emb), on x [batch, seq, heads, head_dim]
// with position p = s + position_offset. The first r = rotary_dims of each head are
// rotated (GPT-NeoX rotary_pct = 0.25: r = 24 of 96; Llama: r = head_dim); the rest pass
// through. With h = r / 2 and theta_i = p * base^(-2i / r), i < h, pairs are (i, i + h),
// not adjacent elements (that is GPT-J's interleaved convention, which this is not):
//   y_i     = x_i cos(theta_i) - x_{i+h} sin(theta_i)
//   y_{i+h} = x_{i+h} cos(theta_i) + x_i sin(theta_i)
// Backward: dx = the same rotation by -theta applied to dy (a rotation's transpose).
// Angles are exact to fp32: theta in double, reduced to [-pi, pi] in double, then fp32
// sincos; HF's fp32 `t * inv_freq` is off by up to ulp(theta) (4e-3 rad at p = 32768).
// fp32 math, fp32/fp16/bf16 I/O. out may equal in: then only the rotated dims are read
// and written. Launchers validate params and throw std::invalid_argument naming the field.
#pragma once
#include <cstdint>

#include <cuda_runtime.h>

#include "kernels/rotary/rotary_cost.h"

namespace seqscale {

struct RotaryParams {
  const void* in = nullptr;  // x (forward) or dy (backward): [batch, seq, heads, head_dim]
  void* out = nullptr;       // y or dx, same layout; may equal in
  RotaryShape shape;         // dims, rotary_dims, position_offset, base
  DType io = DType::kBf16;
};

void rotary_fwd(const RotaryParams& p, cudaStream_t stream);
void rotary_bwd(const RotaryParams& p, cudaStream_t stream);

}  // namespace seqscale
