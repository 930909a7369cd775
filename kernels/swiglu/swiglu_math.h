// The fp32 SwiGLU gate and its partial derivatives, one text for the CUDA kernel and the
// fp32 CPU backend (kernels/common/host_device.h).
//   silu(a) = a s(a), s the logistic sigmoid;  y = silu(a) g
//   dy/da = g s(a) (1 + a s(-a)),  dy/dg = silu(a)
// s(-a) = 1 - s(a) is computed as its own 1 / (1 + e^a): the subtraction cancels for
// a >> 0. Saturates without NaN: e^{+-a} overflows to inf and 1 / (1 + inf) = 0.
#pragma once

#include <math.h>

#include "kernels/common/host_device.h"

namespace seqscale::swiglu {

SEQSCALE_HOST_DEVICE inline float sigmoid(float a) { return 1.f / (1.f + ::expf(-a)); }

SEQSCALE_HOST_DEVICE inline float forward(float a, float g) { return a * sigmoid(a) * g; }

// d(silu(a) g) / da without g: s(a) (1 + a s(-a)).
SEQSCALE_HOST_DEVICE inline float silu_derivative(float a) { return sigmoid(a) * (1.f + a * sigmoid(-a)); }

}  // namespace seqscale::swiglu
