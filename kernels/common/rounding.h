// One rounding to a kernel's I/O dtype, as the tolerance of an output that a kernel
// computes in fp32 and stores once in fp16/bf16 against a double reference fed the same
// (already rounded) inputs. Round to nearest is off by at most half a unit in the last
// place, relative to the value: 2^-24 fp32, 2^-11 fp16, 2^-8 bf16. One whole unit
// (twice that) leaves room for the fp32 error that can move a value across a rounding
// boundary. Plain C++: the references, tests and bench checks use it.
#pragma once
#include "workloads/dtype.h"

namespace seqscale {

inline double io_rounding_rel(DType t) {
  switch (t) {
    case DType::kFp16: return 1.0 / 1024;  // 10 stored mantissa bits
    case DType::kBf16: return 1.0 / 128;   // 7 stored mantissa bits
    default: return 1.0 / (1 << 23);       // fp32
  }
}

// Below the smallest normal a dtype's spacing is absolute: 2^-24 in fp16 (values under
// 6.1e-5, e.g. a softmax probability of 1 / 50304, keep 10 bits less than the relative
// bound says), 2^-133 in bf16, 2^-149 in fp32. One such spacing is the absolute floor of
// an output that can be that small.
inline double io_underflow_abs(DType t) {
  switch (t) {
    case DType::kFp16: return 1.0 / (1 << 24);
    case DType::kBf16: return 1.0e-40;  // 2^-133 ~ 9.2e-41
    default: return 1.5e-45;            // 2^-149
  }
}

}  // namespace seqscale
