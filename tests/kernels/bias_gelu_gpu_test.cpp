// bias_gelu CUDA kernels vs the double reference, fp32/fp16/bf16, at awkward sizes (rows 1,
// 17, 1000; cols 33, 96, 6144, 24576), on both the 16-byte-pack path and the scalar path
// (odd widths, and a pointer one element off alignment), in place, and bitwise run to run.
// Tolerances: bias_gelu_y_tolerance, bias_gelu_dx_tolerance, bias_gelu_dbias_tolerance
// (bias_gelu_ref.h), the ones the bench's check uses: one fp32 evaluation rounded once
// to the dtype (1 unit of its last place, plus 1e-5 relative and 1e-6 absolute for the
// fp32 math); dbias an fp32 sum over rows (8 x 2^-24 sqrt(rows) of max|dbias|).
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>

#include "kernels/bias_gelu/bias_gelu.cuh"
#include "kernels/bias_gelu/bias_gelu_cost.h"
#include "kernels/bias_gelu/bias_gelu_ref.h"
#include "tests/support/device_data.h"
#include "tests/support/gpu.h"
#include "tests/support/matches.h"
#include "tests/support/seed.h"

namespace seqscale {
namespace {

using testing_support::download;
using testing_support::matches;
using testing_support::upload;

class BiasGeluGpu : public ::testing::TestWithParam<DType> {};

std::vector<float> normal(std::size_t n, std::mt19937& rng, float scale) {
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (auto& e : v) e = d(rng);
  return v;
}

TEST_P(BiasGeluGpu, ForwardAndBackwardMatchReference) {
  SEQSCALE_REQUIRE_GPU();
  const DType t = GetParam();
  const auto es = static_cast<std::size_t>(dtype_bytes(t));
  std::mt19937 rng(testing_support::test_seed());
  for (auto [rows, cols] : {std::pair<std::int64_t, std::int64_t>{1, 33}, {17, 96}, {1000, 33}, {1000, 6144},
                            {17, 24576}, {1, 24576}, {1000, 1}}) {
    const auto n = static_cast<std::size_t>(rows * cols);
    std::vector<float> xr, br, dyr;
    void* x = upload(normal(n, rng, 2.f), t, &xr);
    void* b = upload(normal(static_cast<std::size_t>(cols), rng, 1.f), t, &br);
    void* dy = upload(normal(n, rng, 1.f), t, &dyr);
    void *y, *dx;
    float *db, *ws;
    ASSERT_EQ(cudaMalloc(&y, n * es), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&dx, n * es), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&db, static_cast<std::size_t>(cols) * 4), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&ws, static_cast<std::size_t>(bias_gelu_bwd_cost(rows, cols, t).workspace_bytes)), cudaSuccess);
    bias_gelu_fwd(BiasGeluFwdParams{x, b, y, rows, cols, t}, nullptr);
    bias_gelu_bwd(BiasGeluBwdParams{dy, x, b, dx, db, ws, rows, cols, t}, nullptr);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const auto ref = bias_gelu_bwd_ref(dyr, xr, br, rows, cols);
    const std::string at = std::to_string(rows) + "x" + std::to_string(cols) + " ";
    EXPECT_TRUE(matches(compare_values(at + "y", download(y, n, t), bias_gelu_fwd_ref(xr, br, rows, cols), bias_gelu_y_tolerance(t))));
    EXPECT_TRUE(matches(compare_values(at + "dx", download(dx, n, t), ref.dx, bias_gelu_dx_tolerance(t))));
    EXPECT_TRUE(matches(compare_values(at + "dbias", download(db, static_cast<std::size_t>(cols), DType::kFp32), ref.dbias,
                                       bias_gelu_dbias_tolerance(rows))));
    for (void* p : {x, b, dy, y, dx}) cudaFree(p);
    cudaFree(db);
    cudaFree(ws);
  }
}

// A pointer one element past a 16-byte boundary takes the scalar path; in place (y = x,
// dx = dy) reads each element before writing it; a second run gives the same bits.
TEST_P(BiasGeluGpu, MisalignedInPlaceAndDeterministic) {
  SEQSCALE_REQUIRE_GPU();
  const DType t = GetParam();
  const auto es = static_cast<std::size_t>(dtype_bytes(t));
  std::mt19937 rng(testing_support::test_seed());
  const std::int64_t rows = 300, cols = 96;
  const auto n = static_cast<std::size_t>(rows * cols);
  std::vector<float> xr, br, dyr;
  void* xbuf = upload(normal(n + 1, rng, 2.f), t, &xr);  // x starts at element 1
  xr.erase(xr.begin());
  void* b = upload(normal(static_cast<std::size_t>(cols), rng, 1.f), t, &br);
  void* dy = upload(normal(n, rng, 1.f), t, &dyr);
  void* x = static_cast<char*>(xbuf) + es;
  void* dx2;
  float *db1, *db2, *ws;
  ASSERT_EQ(cudaMalloc(&dx2, n * es), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&db1, static_cast<std::size_t>(cols) * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&db2, static_cast<std::size_t>(cols) * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&ws, static_cast<std::size_t>(bias_gelu_bwd_cost(rows, cols, t).workspace_bytes)), cudaSuccess);
  // Backward first (x still the input): out of place, then in place into dy.
  bias_gelu_bwd(BiasGeluBwdParams{dy, x, b, dx2, db1, ws, rows, cols, t}, nullptr);
  bias_gelu_bwd(BiasGeluBwdParams{dy, x, b, dy, db2, ws, rows, cols, t}, nullptr);
  bias_gelu_fwd(BiasGeluFwdParams{x, b, x, rows, cols, t}, nullptr);  // in place, misaligned
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const auto ref = bias_gelu_bwd_ref(dyr, xr, br, rows, cols);
  EXPECT_TRUE(matches(compare_values("y", download(x, n, t), bias_gelu_fwd_ref(xr, br, rows, cols), bias_gelu_y_tolerance(t))));
  EXPECT_TRUE(matches(compare_values("dx", download(dy, n, t), ref.dx, bias_gelu_dx_tolerance(t))));
  const auto a = download(dx2, n, t), c = download(dy, n, t);
  EXPECT_EQ(std::memcmp(a.data(), c.data(), n * sizeof(float)), 0) << "in-place dx differs from out-of-place";
  const auto d1 = download(db1, static_cast<std::size_t>(cols), DType::kFp32);
  const auto d2 = download(db2, static_cast<std::size_t>(cols), DType::kFp32);
  EXPECT_EQ(std::memcmp(d1.data(), d2.data(), d1.size() * sizeof(float)), 0) << "dbias not bitwise reproducible";
  for (void* p : {xbuf, b, dy, dx2}) cudaFree(p);
  for (float* p : {db1, db2, ws}) cudaFree(p);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, BiasGeluGpu, ::testing::Values(DType::kFp32, DType::kFp16, DType::kBf16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(BiasGeluGpuErrors, NameTheField) {
  SEQSCALE_REQUIRE_GPU();
  const auto message = [](auto fn) {
    try {
      fn();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  BiasGeluFwdParams f;
  f.rows = 4;
  EXPECT_EQ(message([&] { bias_gelu_fwd(f, nullptr); }), "bias_gelu_fwd: cols must be in [1, 1073741824], got 0");
  f.cols = 8;
  EXPECT_EQ(message([&] { bias_gelu_fwd(f, nullptr); }), "bias_gelu_fwd: x is null");
  BiasGeluBwdParams b;
  b.rows = b.cols = 4;
  b.dy = b.x = b.bias = b.dx = &b;
  b.dbias = reinterpret_cast<float*>(&b);
  EXPECT_EQ(message([&] { bias_gelu_bwd(b, nullptr); }),
            "bias_gelu_bwd: workspace (dbias needs bias_gelu_bwd_cost(...).workspace_bytes) is null");
  b.workspace = b.dbias;
  b.io = DType::kInt32;
  EXPECT_EQ(message([&] { bias_gelu_bwd(b, nullptr); }), "bias_gelu_bwd: io must be fp32, fp16 or bf16, got int32");
}

}  // namespace
}  // namespace seqscale
