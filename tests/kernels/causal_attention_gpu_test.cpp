// Causal attention on the GPU against the double CPU reference, forward and backward: the
// tensor-core and the SIMT kernels, both backward modes (atomic and deterministic dQ), fp16
// and bf16, head sizes 64, 96 and 128, at awkward lengths (S = 1, 17, 100, 255, 1000: tiles
// end mid-way, one row, one partial tile); packed [B, S, 3, H, D] QKV / dQKV views; the
// deterministic backward bitwise repeatable; long sequences (S = 3000) through the bench's
// own sampled-rows check; refusals before any launch.
// Every output is poisoned with NaN before each run, so an output a kernel fails to write
// fails the comparison instead of passing on the previous run's values.
// Tolerances: causal_attention_tolerance (max-abs 5e-2 bf16, 1e-2 fp16; the bench check's)
// for O, dQ, dK, dV; causal_attention_lse_tolerance (1e-2 + 1e-2 |lse|) for the lse.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "harness/bench/execute.h"
#include "kernels/causal_attention/causal_attention.cuh"
#include "kernels/causal_attention/causal_attention_bench.h"
#include "kernels/causal_attention/causal_attention_ref.h"
#include "tests/support/device_data.h"
#include "tests/support/gpu.h"
#include "tests/support/matches.h"
#include "tests/support/seed.h"

namespace seqscale {
namespace {

using testing_support::download;
using testing_support::matches;
using testing_support::upload;

std::string describe(const CausalAttentionShape& s) {
  return "B=" + std::to_string(s.batch) + " S=" + std::to_string(s.seq) + " H=" + std::to_string(s.heads) +
         " D=" + std::to_string(s.head_dim) + " ";
}

std::string describe(CausalAttentionKernel k, CausalBwdMode m, bool backward) {
  std::string out = k == CausalAttentionKernel::kTensorCore ? "tensor-core " : "SIMT ";
  if (backward) out += m == CausalBwdMode::kAtomic ? "atomic " : "deterministic ";
  return out;
}

// Random normal(0, 1) Q, K, V, dO on the device in the kernel's dtype, with the values the
// kernel sees (rounded) kept for the reference.
class Inputs {
 public:
  Inputs(const CausalAttentionShape& s, DType t, std::mt19937& rng) : s_(s) {
    std::normal_distribution<float> nd(0, 1);
    std::vector<float> x(static_cast<size_t>(s.elements()));
    for (int n = 0; n < 4; ++n) {
      for (auto& e : x) e = nd(rng);
      dev_[n] = upload(x, t, &host_[n]);
    }
  }
  ~Inputs() {
    for (void* p : dev_) cudaFree(p);
  }
  Inputs(const Inputs&) = delete;
  Inputs& operator=(const Inputs&) = delete;

  const void* q() const { return dev_[0]; }
  const void* k() const { return dev_[1]; }
  const void* v() const { return dev_[2]; }
  const void* d_o() const { return dev_[3]; }
  CausalAttentionRefOut fwd_ref() const { return causal_attention_fwd_ref(s_, host_[0], host_[1], host_[2]); }
  CausalAttentionRefGrads bwd_ref() const { return causal_attention_bwd_ref(s_, host_[0], host_[1], host_[2], host_[3]); }
  const std::vector<float>& host(int n) const { return host_[n]; }

 private:
  CausalAttentionShape s_;
  void* dev_[4] = {};
  std::vector<float> host_[4];
};

// Outputs and workspace of one shape; all-ones bytes are NaN in fp16, bf16 and fp32.
struct Outputs {
  CausalAttentionShape s;
  DType t;
  size_t n, rows;
  void *o = nullptr, *dq = nullptr, *dk = nullptr, *dv = nullptr;
  float *lse = nullptr, *row_dot = nullptr, *dq_accum = nullptr;

  Outputs(const CausalAttentionShape& shape, DType dtype)
      : s(shape), t(dtype), n(static_cast<size_t>(shape.elements())), rows(static_cast<size_t>(shape.rows())) {
    const size_t bytes = n * static_cast<size_t>(dtype_bytes(t));
    for (void** p : {&o, &dq, &dk, &dv}) EXPECT_EQ(cudaMalloc(p, bytes), cudaSuccess);
    EXPECT_EQ(cudaMalloc(&lse, rows * 4), cudaSuccess);
    EXPECT_EQ(cudaMalloc(&row_dot, rows * 4), cudaSuccess);
    EXPECT_EQ(cudaMalloc(&dq_accum, n * 4), cudaSuccess);
  }
  ~Outputs() {
    for (void* p : {o, dq, dk, dv}) cudaFree(p);
    for (float* p : {lse, row_dot, dq_accum}) cudaFree(p);
  }
  Outputs(const Outputs&) = delete;
  Outputs& operator=(const Outputs&) = delete;

  void poison_forward() const {
    EXPECT_EQ(cudaMemset(o, 0xff, n * static_cast<size_t>(dtype_bytes(t))), cudaSuccess);
    EXPECT_EQ(cudaMemset(lse, 0xff, rows * 4), cudaSuccess);
  }
  void poison_backward() const {
    for (void* p : {dq, dk, dv}) EXPECT_EQ(cudaMemset(p, 0xff, n * static_cast<size_t>(dtype_bytes(t))), cudaSuccess);
    EXPECT_EQ(cudaMemset(row_dot, 0xff, rows * 4), cudaSuccess);
    EXPECT_EQ(cudaMemset(dq_accum, 0xff, n * 4), cudaSuccess);  // the atomic path must zero it itself
  }
};

CausalAttentionParams params_of(const Inputs& in, const Outputs& out, CausalAttentionKernel kernel) {
  CausalAttentionParams p;
  p.shape = out.s;
  p.io = out.t;
  p.q = in.q();
  p.k = in.k();
  p.v = in.v();
  p.o = out.o;
  p.lse = out.lse;
  p.kernel = kernel;
  return p;
}

CausalAttentionGrads grads_of(const Inputs& in, const Outputs& out, CausalBwdMode mode) {
  CausalAttentionGrads g;
  g.d_o = in.d_o();
  g.dq = out.dq;
  g.dk = out.dk;
  g.dv = out.dv;
  g.row_dot = out.row_dot;
  g.dq_accum = out.dq_accum;
  g.mode = mode;
  return g;
}

void expect_forward(const std::string& at, const Outputs& out, const CausalAttentionRefOut& ref) {
  EXPECT_TRUE(matches(compare_values(at + "o", download(out.o, out.n, out.t), ref.o, causal_attention_tolerance(out.t))));
  EXPECT_TRUE(matches(compare_values(at + "lse", download(out.lse, out.rows, DType::kFp32), ref.lse,
                                     causal_attention_lse_tolerance(out.t))));
}

void expect_backward(const std::string& at, const Outputs& out, const CausalAttentionRefGrads& ref) {
  const CheckTolerance tol = causal_attention_tolerance(out.t);
  EXPECT_TRUE(matches(compare_values(at + "dq", download(out.dq, out.n, out.t), ref.dq, tol)));
  EXPECT_TRUE(matches(compare_values(at + "dk", download(out.dk, out.n, out.t), ref.dk, tol)));
  EXPECT_TRUE(matches(compare_values(at + "dv", download(out.dv, out.n, out.t), ref.dv, tol)));
}

class CausalAttentionGpu : public ::testing::TestWithParam<DType> {};

TEST_P(CausalAttentionGpu, EveryKernelAndModeMatchesReferenceAtAwkwardLengths) {
  SEQSCALE_REQUIRE_GPU();
  const DType t = GetParam();
  std::mt19937 rng(testing_support::test_seed());
  for (const std::int64_t d : {64, 96, 128}) {
    for (const std::int64_t seq : {1, 17, 100, 255, 1000}) {
      // 2 x 2 (b, h) slices tell batch from head strides; one batch at S = 1000 keeps the
      // double reference to ~1 s.
      const CausalAttentionShape s{seq < 1000 ? 2 : 1, seq, 2, d};
      const Inputs in(s, t, rng);
      const Outputs out(s, t);
      const CausalAttentionRefOut fref = in.fwd_ref();
      const CausalAttentionRefGrads gref = in.bwd_ref();
      for (const CausalAttentionKernel kernel : {CausalAttentionKernel::kTensorCore, CausalAttentionKernel::kSimt}) {
        const CausalAttentionParams p = params_of(in, out, kernel);
        const std::string at = describe(s) + describe(kernel, CausalBwdMode::kAtomic, false);
        out.poison_forward();
        causal_attention_fwd(p, nullptr);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << at;
        expect_forward(at, out, fref);
        // Each backward reads this kernel family's own O and lse.
        for (const CausalBwdMode mode : {CausalBwdMode::kAtomic, CausalBwdMode::kDeterministic}) {
          const std::string where = describe(s) + describe(kernel, mode, true);
          out.poison_backward();
          causal_attention_bwd(p, grads_of(in, out, mode), nullptr);
          ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << where;
          expect_backward(where, out, gref);
        }
      }
    }
  }
}

// The deterministic backward (tensor cores) and the SIMT one give the same bits on every
// run; the atomic one is compared with the reference only.
TEST_P(CausalAttentionGpu, DeterministicBackwardIsBitwiseRepeatable) {
  SEQSCALE_REQUIRE_GPU();
  const DType t = GetParam();
  std::mt19937 rng(testing_support::test_seed());
  const CausalAttentionShape s{1, 1000, 3, 96};
  const Inputs in(s, t, rng);
  const Outputs out(s, t);
  for (const CausalAttentionKernel kernel : {CausalAttentionKernel::kTensorCore, CausalAttentionKernel::kSimt}) {
    const CausalAttentionParams p = params_of(in, out, kernel);
    out.poison_forward();
    causal_attention_fwd(p, nullptr);
    std::vector<float> first[3];
    for (int run = 0; run < 3; ++run) {
      out.poison_backward();
      causal_attention_bwd(p, grads_of(in, out, CausalBwdMode::kDeterministic), nullptr);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      const void* grads[3] = {out.dq, out.dk, out.dv};
      for (int g = 0; g < 3; ++g) {
        const std::vector<float> now = download(grads[g], out.n, t);
        if (run == 0) {
          first[g] = now;
        } else {
          EXPECT_EQ(std::memcmp(first[g].data(), now.data(), now.size() * sizeof(float)), 0)
              << describe(s) << describe(kernel, CausalBwdMode::kDeterministic, true) << "gradient " << g
              << " differs on run " << run;
        }
      }
    }
  }
}

// Q, K, V as [B, S, 3, H, D] views of one QKV GEMM output, dQ, dK, dV into one packed
// dQKV buffer (strides {3 S H D, 3 H D, D}), on both kernel families and both modes.
TEST_P(CausalAttentionGpu, PackedQkvViewsMatchReference) {
  SEQSCALE_REQUIRE_GPU();
  const DType t = GetParam();
  std::mt19937 rng(testing_support::test_seed());
  for (const std::int64_t d : {64, 96}) {
    const CausalAttentionShape s{2, 100, 2, d};
    const std::int64_t hd = s.heads * s.head_dim;
    const Inputs in(s, t, rng);  // the rounded host values, repacked below
    std::vector<float> qkv(static_cast<size_t>(3 * s.elements())), rounded;
    for (std::int64_t row = 0; row < s.batch * s.seq; ++row)
      for (int part = 0; part < 3; ++part)
        for (std::int64_t c = 0; c < hd; ++c) {
          qkv[static_cast<size_t>((row * 3 + part) * hd + c)] = in.host(part)[static_cast<size_t>(row * hd + c)];
        }
    void* qkv_dev = upload(qkv, t, &rounded);  // already rounded: uploads exactly
    void* dqkv_dev = nullptr;
    ASSERT_EQ(cudaMalloc(&dqkv_dev, qkv.size() * static_cast<size_t>(dtype_bytes(t))), cudaSuccess);
    const Outputs out(s, t);
    const auto es = static_cast<std::size_t>(dtype_bytes(t));
    const BshdStrides packed{3 * s.seq * hd, 3 * hd, s.head_dim};
    const CausalAttentionRefOut fref = in.fwd_ref();
    const CausalAttentionRefGrads gref = in.bwd_ref();
    for (const CausalAttentionKernel kernel : {CausalAttentionKernel::kTensorCore, CausalAttentionKernel::kSimt}) {
      CausalAttentionParams p = params_of(in, out, kernel);
      p.q = qkv_dev;
      p.k = static_cast<const char*>(qkv_dev) + hd * es;
      p.v = static_cast<const char*>(qkv_dev) + 2 * hd * es;
      p.q_strides = p.k_strides = p.v_strides = packed;
      const std::string at = describe(s) + "packed " + describe(kernel, CausalBwdMode::kAtomic, false);
      out.poison_forward();
      causal_attention_fwd(p, nullptr);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << at;
      expect_forward(at, out, fref);
      for (const CausalBwdMode mode : {CausalBwdMode::kAtomic, CausalBwdMode::kDeterministic}) {
        CausalAttentionGrads g = grads_of(in, out, mode);
        g.dq = dqkv_dev;
        g.dk = static_cast<char*>(dqkv_dev) + hd * es;
        g.dv = static_cast<char*>(dqkv_dev) + 2 * hd * es;
        g.dq_strides = g.dk_strides = g.dv_strides = packed;
        ASSERT_EQ(cudaMemset(dqkv_dev, 0xff, qkv.size() * es), cudaSuccess);
        out.poison_backward();
        causal_attention_bwd(p, g, nullptr);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << at;
        const std::vector<float> got = download(dqkv_dev, qkv.size(), t);
        std::vector<float> dq(static_cast<size_t>(s.elements())), dk(dq.size()), dv(dq.size());
        for (std::int64_t row = 0; row < s.batch * s.seq; ++row)
          for (std::int64_t c = 0; c < hd; ++c) {
            const auto src = static_cast<size_t>(row * 3 * hd + c), dst = static_cast<size_t>(row * hd + c);
            dq[dst] = got[src];
            dk[dst] = got[src + static_cast<size_t>(hd)];
            dv[dst] = got[src + static_cast<size_t>(2 * hd)];
          }
        const std::string where = describe(s) + "packed " + describe(kernel, mode, true);
        const CheckTolerance tol = causal_attention_tolerance(t);
        EXPECT_TRUE(matches(compare_values(where + "dq", dq, gref.dq, tol)));
        EXPECT_TRUE(matches(compare_values(where + "dk", dk, gref.dk, tol)));
        EXPECT_TRUE(matches(compare_values(where + "dv", dv, gref.dv, tol)));
      }
    }
    cudaFree(qkv_dev);
    cudaFree(dqkv_dev);
  }
}

std::vector<std::uint8_t> download_bytes(const void* d, size_t bytes) {
  std::vector<std::uint8_t> out(bytes);
  EXPECT_EQ(cudaMemcpy(out.data(), d, bytes, cudaMemcpyDeviceToHost), cudaSuccess);
  return out;
}

// S = 3000 (47 key tiles, the last partial): the tensor-core kernels through the bench's
// own check, which samples query and key rows past its budget, reading host copies of the
// device buffers through a CPU BenchState.
TEST_P(CausalAttentionGpu, LongSequenceMatchesSampledReference) {
  SEQSCALE_REQUIRE_GPU();
  const DType t = GetParam();
  std::mt19937 rng(testing_support::test_seed());
  for (const std::int64_t d : {96, 128}) {
    const CausalAttentionShape s{1, 3000, 2, d};
    const Inputs in(s, t, rng);
    const Outputs out(s, t);
    MatrixPoint point;
    point.suite = "kernels";
    point.bench = "causal_attention_fwdbwd";
    point.backend = "cpu";
    const auto state = make_cpu_state(point);
    for (const CausalBwdMode mode : {CausalBwdMode::kAtomic, CausalBwdMode::kDeterministic}) {
      const CausalAttentionParams p = params_of(in, out, CausalAttentionKernel::kTensorCore);
      out.poison_forward();
      out.poison_backward();
      causal_attention_fwd(p, nullptr);
      causal_attention_bwd(p, grads_of(in, out, mode), nullptr);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      const size_t bytes = out.n * static_cast<size_t>(dtype_bytes(t));
      const auto q = download_bytes(in.q(), bytes), k = download_bytes(in.k(), bytes), v = download_bytes(in.v(), bytes),
                 d_o = download_bytes(in.d_o(), bytes), o = download_bytes(out.o, bytes), dq = download_bytes(out.dq, bytes),
                 dk = download_bytes(out.dk, bytes), dv = download_bytes(out.dv, bytes),
                 lse = download_bytes(out.lse, out.rows * 4);
      const CausalAttentionCheckBuffers buf{q.data(),   k.data(),  v.data(),  o.data(), reinterpret_cast<const float*>(lse.data()),
                                            d_o.data(), dq.data(), dk.data(), dv.data()};
      const CheckResult r = check_causal_attention(*state, s, t, buf);
      EXPECT_TRUE(r.ok) << describe(s) << describe(CausalAttentionKernel::kTensorCore, mode, true) << r.worst << " ("
                        << r.scope << ")";
      EXPECT_NE(r.scope.find("query rows"), std::string::npos) << r.scope;
    }
  }
}

// Refusals happen before any launch: the outputs keep their NaN poison.
TEST(CausalAttentionGpuErrors, RefusesBeforeLaunching) {
  SEQSCALE_REQUIRE_GPU();
  std::mt19937 rng(1);  // any inputs: only the refusals are checked
  const CausalAttentionShape s{1, 17, 1, 64};
  const Inputs in(s, DType::kBf16, rng);
  const Outputs out(s, DType::kBf16);
  out.poison_forward();
  out.poison_backward();
  CausalAttentionParams p = params_of(in, out, CausalAttentionKernel::kTensorCore);
  p.k_strides = {17 * 68, 68, 4};  // 68 is not a multiple of 8: no 16-byte rows
  EXPECT_THROW(causal_attention_fwd(p, nullptr), std::invalid_argument);
  p = params_of(in, out, CausalAttentionKernel::kTensorCore);
  p.io = DType::kFp32;
  EXPECT_THROW(causal_attention_fwd(p, nullptr), std::invalid_argument);
  p = params_of(in, out, CausalAttentionKernel::kTensorCore);
  CausalAttentionGrads g = grads_of(in, out, CausalBwdMode::kAtomic);
  g.dq_accum = nullptr;
  EXPECT_THROW(causal_attention_bwd(p, g, nullptr), std::invalid_argument);
  p.shape.head_dim = 80;
  EXPECT_THROW(causal_attention_fwd(p, nullptr), std::invalid_argument);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  for (float x : download(out.o, out.n, DType::kBf16)) ASSERT_TRUE(std::isnan(x)) << "a kernel ran before a refusal";
  for (float x : download(out.dq, out.n, DType::kBf16)) ASSERT_TRUE(std::isnan(x)) << "a kernel ran before a refusal";
  for (float x : download(out.row_dot, out.rows, DType::kFp32)) ASSERT_TRUE(std::isnan(x)) << "a kernel ran before a refusal";
}

// fp32 runs on the SIMT kernels (kAuto), against the reference at fp32's 1e-4.
TEST(CausalAttentionGpuFp32, SimtMatchesReference) {
  SEQSCALE_REQUIRE_GPU();
  std::mt19937 rng(testing_support::test_seed());
  const CausalAttentionShape s{2, 77, 2, 64};
  const Inputs in(s, DType::kFp32, rng);
  const Outputs out(s, DType::kFp32);
  const CausalAttentionParams p = params_of(in, out, CausalAttentionKernel::kAuto);
  out.poison_forward();
  out.poison_backward();
  causal_attention_fwd(p, nullptr);
  causal_attention_bwd(p, grads_of(in, out, CausalBwdMode::kAtomic), nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  expect_forward(describe(s) + "fp32 ", out, in.fwd_ref());
  expect_backward(describe(s) + "fp32 ", out, in.bwd_ref());
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CausalAttentionGpu, ::testing::Values(DType::kFp16, DType::kBf16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace seqscale
