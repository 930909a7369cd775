// Rotary position embedding on the CPU in fp32: the CPU backend the `rotary_*` CPU
// benchmarks time and check against the double reference (rotary_ref.h), as the CUDA
// kernel is, with the kernel's angle rule (theta in double, reduced to [-pi, pi] in
// double, fp32 sin and cos) once per (token, pair). out may equal in. Not tuned.
#pragma once
#include "kernels/rotary/rotary_cost.h"

namespace seqscale {

// inverse: the backward (rotation by -theta).
void rotary_cpu(const float* in, float* out, const RotaryShape& shape, bool inverse);

}  // namespace seqscale
