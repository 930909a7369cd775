// cuBLASLt GEMM vs the double reference. Tolerance: gemm_tolerance (gemm_ref.h), the one
// the bench's check uses: inputs are exactly representable in the dtype (rounded on the
// host first); fp32 accumulation over k terms of |x| <= 1 errs by ~k * 2^-24; the fp16/bf16
// output rounding dominates: 1 ulp of |c| + k * 1e-6. A TF32 GEMM fails the fp32 case.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>

#include "common/check_result.h"
#include "common/half.h"
#include "kernels/gemm/gemm.cuh"
#include "kernels/gemm/gemm_ref.h"
#include "tests/support/device_data.h"
#include "tests/support/gpu.h"
#include "tests/support/matches.h"
#include "tests/support/seed.h"

namespace seqscale {
namespace {

class GemmGpu : public ::testing::TestWithParam<DType> {};

TEST_P(GemmGpu, MatchesReferenceOnAwkwardShapes) {
  SEQSCALE_REQUIRE_GPU();
  const DType t = GetParam();
  const auto es = static_cast<size_t>(dtype_bytes(t));
  std::mt19937 rng(testing_support::test_seed());
  std::uniform_real_distribution<float> d(-1, 1);
  void* workspace = nullptr;
  ASSERT_EQ(cudaMalloc(&workspace, 32 << 20), cudaSuccess);
  GemmRunner runner(workspace, 32 << 20);
  for (auto [m, n, k] : {std::tuple{1, 1, 1}, {17, 33, 65}, {128, 96, 250}, {333, 64, 1000}}) {
    auto make = [&](std::int64_t count, std::vector<float>* rounded) {
      std::vector<std::uint8_t> bytes(static_cast<size_t>(count) * es);
      rounded->resize(static_cast<size_t>(count));
      for (std::int64_t i = 0; i < count; ++i) {
        float v = d(rng);
        if (t == DType::kBf16) { const auto h = float_to_bf16(v); v = bf16_to_float(h); std::memcpy(&bytes[i * 2], &h, 2); }
        else if (t == DType::kFp16) { const auto h = float_to_fp16(v); v = fp16_to_float(h); std::memcpy(&bytes[i * 2], &h, 2); }
        else std::memcpy(&bytes[i * 4], &v, 4);
        (*rounded)[static_cast<size_t>(i)] = v;
      }
      void* dev = nullptr;
      EXPECT_EQ(cudaMalloc(&dev, bytes.size()), cudaSuccess);
      EXPECT_EQ(cudaMemcpy(dev, bytes.data(), bytes.size(), cudaMemcpyHostToDevice), cudaSuccess);
      return dev;
    };
    std::vector<float> ar, br;
    void* a = make(m * k, &ar);
    void* b = make(k * n, &br);
    void* c = nullptr;
    ASSERT_EQ(cudaMalloc(&c, static_cast<size_t>(m * n) * es), cudaSuccess);
    runner.run({a, b, c, m, n, k, t}, nullptr);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const std::vector<float> got = testing_support::download(c, static_cast<size_t>(m * n), t);
    std::vector<double> ref(static_cast<size_t>(m * n));
    gemm_ref(ar.data(), br.data(), ref.data(), m, n, k);
    const std::string at = std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k) + " c";
    EXPECT_TRUE(testing_support::matches(compare_values(at, got, ref, gemm_tolerance(t, k))));
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
  }
  cudaFree(workspace);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, GemmGpu, ::testing::Values(DType::kFp32, DType::kFp16, DType::kBf16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace seqscale
