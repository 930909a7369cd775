// The SwiGLU gate on the CPU in fp32: the CPU backend the `swiglu_*` CPU benchmarks time
// and check against the double reference (swiglu_ref.h), as the CUDA kernel is. It
// evaluates the kernel's own fp32 formulas (swiglu_math.h). Not tuned.
#pragma once
#include <cstdint>

namespace seqscale {

// x [rows, 2 ffn] = [a | g], y [rows, ffn].
void swiglu_fwd_cpu(const float* x, std::int64_t rows, std::int64_t ffn, float* y);
// dy [rows, ffn], dx [rows, 2 ffn]; dx may equal x.
void swiglu_bwd_cpu(const float* dy, const float* x, std::int64_t rows, std::int64_t ffn, float* dx);

}  // namespace seqscale
