// CPU reference of rotary position embedding (rotate-half, rotary.cuh) in double, on inputs
// already rounded to the kernel's dtype (as float); outputs in double for comparison.
// theta_i = p * base^(-2i / r) in double and std::cos / std::sin of it (exact range
// reduction in libm). inverse = the backward: the rotation by -theta.
#pragma once
#include <cstdint>
#include <vector>

#include "common/check_result.h"
#include "kernels/common/rounding.h"
#include "kernels/rotary/rotary_cost.h"
#include "workloads/dtype.h"

namespace seqscale {

// Tolerance of a rotary kernel against this reference (tests and bench checks): a rotated
// element is x c - x' s in fp32 with c, s from an fp32 sincos of an angle reduced exactly
// in double and rounded to fp32 (<= 2.4e-7 rad): ~4e-7 x (|x| + |x'|), and |x| reaches ~5
// in the tests: abs 1e-5. Plus the output's one rounding to the dtype (io_rounding_rel).
// Pass-through dims are copies (exact).
inline CheckTolerance rotary_tolerance(DType t) { return {1e-5, 1e-6 + io_rounding_rel(t), 0}; }

// Rows given explicitly: `in` holds `positions.size()` head vectors of head_dim, row k at
// position positions[k]; the shape supplies head_dim, rotary_dims and base.
std::vector<double> rotary_rows_ref(const std::vector<float>& in, const std::vector<std::int64_t>& positions,
                                    const RotaryShape& shape, bool inverse);
// The whole tensor [batch, seq, heads, head_dim].
std::vector<double> rotary_ref(const std::vector<float>& in, const RotaryShape& shape, bool inverse);

}  // namespace seqscale
