// Fused softmax on the GPU vs the double reference: warp path (cols <= 1024) and block path
// (beyond), mask and bias broadcasts, in place, fully masked rows -> zeros, -1e9 masks in
// fp16 (-inf-like after conversion). Tolerances: softmax_fwd_tolerance and
// softmax_bwd_tolerance (softmax_ref.h), the ones the bench's check uses: outputs are
// probabilities rounded once to the dtype: 2 ulp of the dtype relative + 1e-6 (fp32:
// 1e-6 relative); fp32 math inside; the backward 4 ulp relative with a floor of 4 ulp x 1e-3.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include <span>
#include <string>

#include "common/check_result.h"
#include "common/half.h"
#include "kernels/softmax/softmax.cuh"
#include "kernels/softmax/softmax_ref.h"
#include "tests/support/device_data.h"
#include "tests/support/gpu.h"
#include "tests/support/matches.h"
#include "tests/support/seed.h"

namespace seqscale {
namespace {

struct DeviceArray {
  void* ptr = nullptr;
  std::vector<float> rounded;  // the values the kernel sees, as float
};

DeviceArray upload(const std::vector<float>& v, DType t) {
  DeviceArray d;
  d.ptr = testing_support::upload(v, t, &d.rounded);
  return d;
}

using testing_support::download;
using testing_support::matches;

class SoftmaxGpu : public ::testing::TestWithParam<DType> {};

TEST_P(SoftmaxGpu, ForwardInPlaceAndBackwardMatchReference) {
  SEQSCALE_REQUIRE_GPU();
  const DType t = GetParam();
  std::mt19937 rng(testing_support::test_seed());
  std::normal_distribution<float> nd(0, 2);
  for (int cols : {1, 17, 128, 250, 1000, 1025, 4096}) {
    SoftmaxShape s{1, 3, 2, 5, cols};
    std::vector<float> x(static_cast<size_t>(s.elements())), m(static_cast<size_t>(3 * cols)),
        b(static_cast<size_t>(2 * 5 * cols)), dy(x.size());
    for (auto* v : {&x, &b, &dy}) for (auto& e : *v) e = nd(rng);
    for (int c = 0; c < cols; ++c) {
      m[c] = -1e9f;                              // n = 0: fully masked by a -1e9 bias
      m[cols + c] = c % 3 == 0 ? -1e9f : 0.f;    // n = 1: every third column masked
      m[2 * cols + c] = 0.f;
    }
    DeviceArray dx_ = upload(x, t), dm = upload(m, t), db = upload(b, t), ddy = upload(dy, t);
    SoftmaxFwdParams f{dx_.ptr, dx_.ptr, dm.ptr, db.ptr, s, 0.25f, t};
    softmax_fwd(f, nullptr);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const auto y = download(dx_.ptr, x.size(), t);
    const auto ref = softmax_fwd_ref(dx_.rounded, dm.rounded.data(), db.rounded.data(), s, 0.25);
    // Rows of n = 0 are masked everywhere by -1e9: in fp32 math -1e9 + O(1) rounds to
    // -1e9 (ulp 64), so any finite distribution is right there; fp16 turns -1e9 into -inf
    // and the row must be zeros. Elsewhere the reference decides.
    const size_t masked_elems = static_cast<size_t>(2 * 5 * cols);
    for (size_t i = 0; i < masked_elems; ++i) {
      ASSERT_FALSE(std::isnan(y[i])) << cols << " i=" << i;
      if (t == DType::kFp16) {
        ASSERT_EQ(y[i], 0.f) << i;
      }
    }
    const std::string at = "cols=" + std::to_string(cols) + " ";
    EXPECT_TRUE(matches(compare_values(at + "y (rows of n = 1, 2)", std::span(y).subspan(masked_elems),
                                       std::span(ref).subspan(masked_elems), softmax_fwd_tolerance(t))));
    SoftmaxBwdParams g{dx_.ptr, ddy.ptr, ddy.ptr, s, 0.25f, t};  // dx over dy, in place
    softmax_bwd(g, nullptr);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const auto dxo = download(ddy.ptr, x.size(), t);
    const auto refg = softmax_bwd_ref(y, ddy.rounded, s, 0.25);  // from the kernel's own y
    EXPECT_TRUE(matches(compare_values(at + "dx", dxo, refg, softmax_bwd_tolerance(t))));
    for (void* p : {dx_.ptr, dm.ptr, db.ptr, ddy.ptr}) cudaFree(p);
  }
}

TEST(SoftmaxGpuMasks, MinusInfinityRowsGiveZeros) {
  SEQSCALE_REQUIRE_GPU();
  SoftmaxShape s{1, 1, 1, 2, 64};
  std::vector<float> x(128, 1.f), m(64, -std::numeric_limits<float>::infinity());
  DeviceArray dx = upload(x, DType::kFp16), dm = upload(m, DType::kFp16);
  softmax_fwd({dx.ptr, dx.ptr, dm.ptr, nullptr, s, 1.f, DType::kFp16}, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  for (float v : download(dx.ptr, 128, DType::kFp16)) ASSERT_EQ(v, 0.f);
  cudaFree(dx.ptr);
  cudaFree(dm.ptr);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, SoftmaxGpu, ::testing::Values(DType::kFp32, DType::kFp16, DType::kBf16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace seqscale
