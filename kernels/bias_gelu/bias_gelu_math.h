// The fp32 GELU (tanh approximation) and its derivative, one text for the CUDA kernel and
// the fp32 CPU backend (host and device: ::expf is CUDA's on the device, libm's on the host).
//
// 0.5 (1 + tanh(u)) is the logistic sigmoid s(2u), so gelu(z) = z s(2u) with
// u = sqrt(2/pi) (z + 0.044715 z^3). Written that way nothing cancels: the relative error
// is that of e^{-2u} for an argument carrying a few ulp, ~(8 + 4|u|) ulp (z = -5.5: ~50
// ulp, 3e-6, where gelu = -8e-9), the function's own conditioning. The literal
// 0.5 z (1 + tanh(u)) cancels instead: at z = -5, 1 + tanh(u) ~ 1e-8 is below fp32's ulp of 1.
// And
//   gelu'(z) = s(2u) + 2 z s(2u) s(-2u) u'(z),  u'(z) = sqrt(2/pi) (1 + 3 * 0.044715 z^2),
// with s(-2u) computed as its own 1 / (1 + e^{2u}), not as 1 - s(2u) (which cancels for
// z >> 0). Megatron's bias_gelu_back uses 1 - tanh^2, equal in exact arithmetic. Large
// finite |z| saturate without NaN: e^{+-2u} overflows to inf and 1 / (1 + inf) = 0; beyond
// |z| = 1e4 gelu' is 0 or 1 to far below fp32's resolution and is returned as such (z^2
// would overflow past 1.8e19 and make 0 x inf).
#pragma once

#include <math.h>

#include "kernels/common/host_device.h"

namespace seqscale::gelu {

inline constexpr float kSqrt2OverPi = 0.7978845608028654f;
inline constexpr float kCubic = 0.044715f;

SEQSCALE_HOST_DEVICE inline float tanh_arg(float z) { return kSqrt2OverPi * z * (1.f + kCubic * z * z); }

SEQSCALE_HOST_DEVICE inline float forward(float z) { return z / (1.f + ::expf(-2.f * tanh_arg(z))); }

SEQSCALE_HOST_DEVICE inline float derivative(float z) {
  if (fabsf(z) > 1e4f) return z > 0.f ? 1.f : 0.f;
  const float u = tanh_arg(z);
  const float s_pos = 1.f / (1.f + ::expf(-2.f * u));  // s(2u)
  const float s_neg = 1.f / (1.f + ::expf(2.f * u));   // s(-2u) = 1 - s(2u)
  return s_pos + 2.f * z * s_pos * s_neg * kSqrt2OverPi * (1.f + 3.f * kCubic * z * z);
}

}  // namespace seqscale::gelu
