// A kernel's output against its double reference under the kernel's shared tolerance
// (common/check_result.h, the rule the benches' check uses), as a GoogleTest
// predicate, so a failure is reported at the test's own line with the worst element:
//   EXPECT_TRUE(matches(compare_values("L=17 D=16 dq", got, want, evoformer_attn_tolerance(t))));
//   -> L=17 D=16 dq[41]: got 0.12 want 0.2 (allowed 0.05); tolerance abs 0.05 + rel 0
#pragma once
#include <gtest/gtest.h>

#include "common/check_result.h"

namespace seqscale::testing_support {

inline ::testing::AssertionResult matches(const CheckResult& r) {
  if (r.ok) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << r.worst << "; tolerance " << r.tolerance.describe() << ", "
                                       << r.checked_elements << " elements, max abs error " << r.max_abs_err;
}

}  // namespace seqscale::testing_support
