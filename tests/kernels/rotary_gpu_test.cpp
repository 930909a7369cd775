// rotary CUDA kernel vs the double reference, fp32/fp16/bf16: GPT-NeoX's rotary_pct 0.25
// at head_dim 96 (4-element packs), Llama's full rotation at 128 (16-byte packs), odd
// head_dim 33 (scalar), rotary_pct 0 (a copy), one token and 1000-token sequences, in place
// and out of place, forward and backward, and positions up to 2^20 + 63 where an fp32
// angle would be off by ~0.06 rad. Tolerance: rotary_tolerance (rotary_ref.h), the bench
// check's: the fp32 rotation of an exactly reduced angle (abs 1e-5 for |x| up to ~5) and
// one rounding to the dtype.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>

#include "kernels/rotary/rotary.cuh"
#include "kernels/rotary/rotary_ref.h"
#include "tests/support/device_data.h"
#include "tests/support/gpu.h"
#include "tests/support/matches.h"
#include "tests/support/seed.h"

namespace seqscale {
namespace {

using testing_support::download;
using testing_support::matches;
using testing_support::upload;

class RotaryGpu : public ::testing::TestWithParam<DType> {};

RotaryShape shape(std::int64_t b, std::int64_t s, std::int64_t h, std::int64_t d, double pct, std::int64_t offset = 0) {
  RotaryShape r;
  r.batch = b;
  r.seq = s;
  r.heads = h;
  r.head_dim = d;
  r.rotary_dims = rotary_dims_of(d, pct);
  r.position_offset = offset;
  return r;
}

TEST_P(RotaryGpu, MatchesReferenceInAndOutOfPlace) {
  SEQSCALE_REQUIRE_GPU();
  const DType t = GetParam();
  const auto es = static_cast<std::size_t>(dtype_bytes(t));
  std::mt19937 rng(testing_support::test_seed());
  std::normal_distribution<float> nd(0.f, 1.5f);
  for (const RotaryShape& sh : {shape(1, 1, 1, 96, 0.25), shape(2, 17, 3, 96, 0.25), shape(1, 17, 2, 33, 0.5),
                                shape(1, 1000, 4, 128, 1.0), shape(2, 1000, 3, 96, 0.25), shape(1, 64, 64, 96, 0.25),
                                shape(1, 64, 2, 96, 1.0, (1 << 20)), shape(1, 5, 2, 64, 0.0)}) {
    const auto n = static_cast<std::size_t>(sh.elements());
    std::vector<float> x(n), xr;
    for (auto& e : x) e = nd(rng);
    const std::string at = std::to_string(sh.batch) + "x" + std::to_string(sh.seq) + "x" + std::to_string(sh.heads) + "x" +
                           std::to_string(sh.head_dim) + "/" + std::to_string(sh.rotary_dims) + " ";
    for (bool inverse : {false, true}) {
      void* in = upload(x, t, &xr);
      void* out;
      ASSERT_EQ(cudaMalloc(&out, n * es), cudaSuccess);
      RotaryParams p{in, out, sh, t};
      inverse ? rotary_bwd(p, nullptr) : rotary_fwd(p, nullptr);
      p.out = in;  // in place
      inverse ? rotary_bwd(p, nullptr) : rotary_fwd(p, nullptr);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      const auto got = download(out, n, t), got_in_place = download(in, n, t);
      EXPECT_TRUE(matches(compare_values(at + (inverse ? "dx" : "y"), got, rotary_ref(xr, sh, inverse), rotary_tolerance(t))));
      EXPECT_EQ(std::memcmp(got.data(), got_in_place.data(), n * sizeof(float)), 0) << at << "in place differs";
      cudaFree(in);
      cudaFree(out);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, RotaryGpu, ::testing::Values(DType::kFp32, DType::kFp16, DType::kBf16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(RotaryGpuRoundTrip, BackwardUndoesForwardInFp32) {
  SEQSCALE_REQUIRE_GPU();
  std::mt19937 rng(testing_support::test_seed());
  std::normal_distribution<float> nd(0.f, 1.f);
  const RotaryShape sh = shape(2, 300, 8, 96, 0.25, 12345);
  const auto n = static_cast<std::size_t>(sh.elements());
  std::vector<float> x(n), xr;
  for (auto& e : x) e = nd(rng);
  void* d = upload(x, DType::kFp32, &xr);
  RotaryParams p{d, d, sh, DType::kFp32};
  rotary_fwd(p, nullptr);
  rotary_bwd(p, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_TRUE(matches(compare_values("x", download(d, n, DType::kFp32), x, CheckTolerance{2e-6, 2e-6, 0})));
  cudaFree(d);
}

TEST(RotaryGpuErrors, NameTheField) {
  SEQSCALE_REQUIRE_GPU();
  RotaryParams p;
  p.shape = shape(1, 4, 2, 96, 0.25);
  p.shape.rotary_dims = 23;
  int dummy = 0;
  p.in = p.out = &dummy;
  try {
    rotary_fwd(p, nullptr);
    ADD_FAILURE() << "odd rotary_dims accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "rotary_fwd: rotary_dims must be even (rotate-half), got 23");
  }
  p.shape.rotary_dims = 24;
  p.shape.head_dim = 512;
  try {
    rotary_bwd(p, nullptr);
    ADD_FAILURE() << "head_dim 512 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "rotary_bwd: head_dim must be in [1, 256], got 512");
  }
}

}  // namespace
}  // namespace seqscale
