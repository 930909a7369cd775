// Causal attention without a GPU: the double reference against an independent long-double
// softmax, the causal structure (row i never sees keys after i), the backward against
// central finite differences, the sampled-row references against whole slices, the fp32
// CPU backend (contiguous and strided [B, S, 3, H, D] views), the validation's one-line
// errors, the declared cost, and the bench's check end to end on CPU points (whole slices
// and the sampled-rows mode of long sequences).
// Tolerances: the reference against long double 1e-12 (double rounding over <= 64 terms);
// finite differences of step 1e-2: 2e-3 (1 + |fd|) (the O(h^2) truncation); the fp32 CPU
// backend causal_attention_tolerance(fp32) = 1e-4 (the bench check's own rule).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "harness/bench/execute.h"
#include "kernels/causal_attention/causal_attention_bench.h"
#include "kernels/causal_attention/causal_attention_cost.h"
#include "kernels/causal_attention/causal_attention_cpu.h"
#include "kernels/causal_attention/causal_attention_params.h"
#include "kernels/causal_attention/causal_attention_ref.h"
#include "tests/support/matches.h"
#include "tests/support/seed.h"

namespace seqscale {
namespace {

using testing_support::matches;

struct Inputs {
  CausalAttentionShape s;
  std::vector<float> q, k, v, d_o;
};

Inputs random_inputs(const CausalAttentionShape& s, std::mt19937& rng) {
  std::normal_distribution<float> nd(0, 1);
  Inputs in{s, {}, {}, {}, {}};
  for (auto* x : {&in.q, &in.k, &in.v, &in.d_o}) {
    x->resize(static_cast<size_t>(s.elements()));
    for (auto& e : *x) e = nd(rng);
  }
  return in;
}

size_t at(const CausalAttentionShape& s, std::int64_t b, std::int64_t i, std::int64_t h, std::int64_t d) {
  return static_cast<size_t>(((b * s.seq + i) * s.heads + h) * s.head_dim + d);
}

TEST(CausalAttention, ForwardMatchesLongDoubleSoftmax) {
  std::mt19937 rng(testing_support::test_seed());
  for (const CausalAttentionShape& s : {CausalAttentionShape{1, 1, 1, 8}, {2, 5, 3, 8}, {1, 17, 2, 16}, {1, 33, 1, 64}}) {
    const Inputs in = random_inputs(s, rng);
    const CausalAttentionRefOut out = causal_attention_fwd_ref(s, in.q, in.k, in.v);
    const long double scale = 1.0L / std::sqrt(static_cast<long double>(s.head_dim));
    for (std::int64_t b = 0; b < s.batch; ++b)
      for (std::int64_t h = 0; h < s.heads; ++h)
        for (std::int64_t i = 0; i < s.seq; ++i) {
          // The masked logits tensor row, as a materialised implementation builds it.
          std::vector<long double> e(static_cast<size_t>(s.seq), 0.0L);
          long double mx = -INFINITY, sum = 0;
          for (std::int64_t j = 0; j <= i; ++j) {
            long double dot = 0;
            for (std::int64_t d = 0; d < s.head_dim; ++d) dot += static_cast<long double>(in.q[at(s, b, i, h, d)]) * in.k[at(s, b, j, h, d)];
            e[static_cast<size_t>(j)] = scale * dot;
            mx = std::max(mx, scale * dot);
          }
          for (std::int64_t j = 0; j <= i; ++j) sum += (e[static_cast<size_t>(j)] = std::exp(e[static_cast<size_t>(j)] - mx));
          for (std::int64_t d = 0; d < s.head_dim; ++d) {
            long double o = 0;
            for (std::int64_t j = 0; j <= i; ++j) o += e[static_cast<size_t>(j)] / sum * in.v[at(s, b, j, h, d)];
            ASSERT_NEAR(out.o[at(s, b, i, h, d)], static_cast<double>(o), 1e-12) << "b " << b << " h " << h << " i " << i;
          }
          ASSERT_NEAR(out.lse[static_cast<size_t>((b * s.heads + h) * s.seq + i)], static_cast<double>(mx + std::log(sum)), 1e-12);
        }
  }
}

TEST(CausalAttention, RowNeverSeesLaterKeys) {
  std::mt19937 rng(testing_support::test_seed());
  const CausalAttentionShape s{1, 20, 2, 8};
  const Inputs in = random_inputs(s, rng);
  Inputs later = in;
  const std::int64_t cut = 7;  // keys and values after row 7 change
  for (std::int64_t j = cut + 1; j < s.seq; ++j)
    for (std::int64_t h = 0; h < s.heads; ++h)
      for (std::int64_t d = 0; d < s.head_dim; ++d) {
        later.k[at(s, 0, j, h, d)] += 3.f;
        later.v[at(s, 0, j, h, d)] -= 5.f;
      }
  const auto a = causal_attention_fwd_ref(s, in.q, in.k, in.v), c = causal_attention_fwd_ref(s, later.q, later.k, later.v);
  const auto ga = causal_attention_bwd_ref(s, in.q, in.k, in.v, in.d_o);
  const auto gc = causal_attention_bwd_ref(s, later.q, later.k, later.v, later.d_o);
  for (std::int64_t i = 0; i < s.seq; ++i)
    for (std::int64_t h = 0; h < s.heads; ++h) {
      const double lse_a = a.lse[static_cast<size_t>(h * s.seq + i)], lse_c = c.lse[static_cast<size_t>(h * s.seq + i)];
      if (i <= cut) {
        EXPECT_EQ(lse_a, lse_c) << "row " << i;
        for (std::int64_t d = 0; d < s.head_dim; ++d) {
          EXPECT_EQ(a.o[at(s, 0, i, h, d)], c.o[at(s, 0, i, h, d)]) << "row " << i;
          EXPECT_EQ(ga.dq[at(s, 0, i, h, d)], gc.dq[at(s, 0, i, h, d)]) << "row " << i;
        }
      } else {
        EXPECT_NE(lse_a, lse_c) << "row " << i << " must see its own (changed) key";
      }
    }
  // Row 0 attends to key 0 alone: O_0 = V_0, lse_0 = s_00, and no gradient reaches Q_0.
  for (std::int64_t d = 0; d < s.head_dim; ++d) {
    EXPECT_NEAR(a.o[at(s, 0, 0, 0, d)], in.v[at(s, 0, 0, 0, d)], 1e-12);
    EXPECT_NEAR(ga.dq[at(s, 0, 0, 0, d)], 0.0, 1e-12);
  }
}

TEST(CausalAttention, BackwardMatchesFiniteDifferences) {
  std::mt19937 rng(testing_support::test_seed());
  for (const CausalAttentionShape& s : {CausalAttentionShape{1, 5, 2, 8}, {2, 7, 1, 16}}) {
    const Inputs in = random_inputs(s, rng);
    const auto g = causal_attention_bwd_ref(s, in.q, in.k, in.v, in.d_o);
    const auto loss = [&](const Inputs& x) {
      const auto o = causal_attention_fwd_ref(s, x.q, x.k, x.v).o;
      double l = 0;
      for (size_t i = 0; i < o.size(); ++i) l += static_cast<double>(in.d_o[i]) * o[i];
      return l;
    };
    const auto check = [&](std::vector<float> Inputs::*field, const std::vector<double>& grad, const char* name) {
      for (size_t i = 0; i < grad.size(); i += 3) {
        Inputs p = in, m = in;
        (p.*field)[i] += 1e-2f;
        (m.*field)[i] -= 1e-2f;
        const double fd = (loss(p) - loss(m)) / (static_cast<double>((p.*field)[i]) - (m.*field)[i]);
        ASSERT_NEAR(grad[i], fd, 2e-3 * (1 + std::fabs(fd))) << name << "[" << i << "]";
      }
    };
    check(&Inputs::q, g.dq, "dq");
    check(&Inputs::k, g.dk, "dk");
    check(&Inputs::v, g.dv, "dv");
  }
}

TEST(CausalAttention, SampledRowsMatchWholeSlice) {
  std::mt19937 rng(testing_support::test_seed());
  const CausalAttentionShape s{1, 37, 1, 16};  // one (b, h) slice: [S, D] contiguous
  const Inputs in = random_inputs(s, rng);
  const auto f = causal_attention_fwd_ref(s, in.q, in.k, in.v);
  const auto g = causal_attention_bwd_ref(s, in.q, in.k, in.v, in.d_o);
  std::vector<double> row_dot(static_cast<size_t>(s.seq), 0.0);
  for (std::int64_t i = 0; i < s.seq; ++i)
    for (std::int64_t d = 0; d < s.head_dim; ++d) row_dot[static_cast<size_t>(i)] += in.d_o[at(s, 0, i, 0, d)] * f.o[at(s, 0, i, 0, d)];
  const std::vector<std::int64_t> rows = {0, 1, 15, 36};
  const CausalAttentionSlice x{s.seq, s.head_dim, in.q.data(), in.k.data(), in.v.data(), in.d_o.data()};
  const auto qr = causal_attention_query_rows_ref(x, rows);
  const auto kr = causal_attention_key_rows_ref(x, f.lse, row_dot, rows);
  for (size_t r = 0; r < rows.size(); ++r) {
    EXPECT_NEAR(qr.lse[r], f.lse[static_cast<size_t>(rows[r])], 1e-12);
    for (std::int64_t d = 0; d < s.head_dim; ++d) {
      const size_t e = r * static_cast<size_t>(s.head_dim) + static_cast<size_t>(d);
      EXPECT_NEAR(qr.o[e], f.o[at(s, 0, rows[r], 0, d)], 1e-12);
      EXPECT_NEAR(qr.dq[e], g.dq[at(s, 0, rows[r], 0, d)], 1e-10);
      EXPECT_NEAR(kr.dk[e], g.dk[at(s, 0, rows[r], 0, d)], 1e-10);
      EXPECT_NEAR(kr.dv[e], g.dv[at(s, 0, rows[r], 0, d)], 1e-10);
    }
  }
}

// The fp32 CPU backend on contiguous buffers, against the reference.
TEST(CausalAttention, CpuBackendMatchesReference) {
  std::mt19937 rng(testing_support::test_seed());
  // S = 130 crosses two 64-key blocks of the online softmax and ends mid-block.
  for (const CausalAttentionShape& s : {CausalAttentionShape{1, 1, 1, 64}, {2, 17, 3, 96}, {1, 130, 2, 128}, {1, 100, 1, 64}}) {
    Inputs in = random_inputs(s, rng);
    std::vector<float> o(in.q.size()), dq(in.q.size()), dk(in.q.size()), dv(in.q.size());
    std::vector<float> lse(static_cast<size_t>(s.rows())), row_dot(lse.size());
    CausalAttentionParams p;
    p.shape = s;
    p.io = DType::kFp32;
    p.q = in.q.data();
    p.k = in.k.data();
    p.v = in.v.data();
    p.o = o.data();
    p.lse = lse.data();
    CausalAttentionGrads g;
    g.d_o = in.d_o.data();
    g.dq = dq.data();
    g.dk = dk.data();
    g.dv = dv.data();
    g.row_dot = row_dot.data();
    causal_attention_fwd_cpu(p);
    causal_attention_bwd_cpu(p, g);
    const auto f = causal_attention_fwd_ref(s, in.q, in.k, in.v);
    const auto r = causal_attention_bwd_ref(s, in.q, in.k, in.v, in.d_o);
    const std::string at_s = "S=" + std::to_string(s.seq) + " D=" + std::to_string(s.head_dim) + " ";
    const CheckTolerance tol = causal_attention_tolerance(DType::kFp32);
    EXPECT_TRUE(matches(compare_values(at_s + "o", o, f.o, tol)));
    EXPECT_TRUE(matches(compare_values(at_s + "lse", lse, f.lse, causal_attention_lse_tolerance(DType::kFp32))));
    EXPECT_TRUE(matches(compare_values(at_s + "dq", dq, r.dq, tol)));
    EXPECT_TRUE(matches(compare_values(at_s + "dk", dk, r.dk, tol)));
    EXPECT_TRUE(matches(compare_values(at_s + "dv", dv, r.dv, tol)));
  }
}

// The same through [B, S, 3, H, D] views of one packed QKV buffer (a QKV GEMM's output) and
// a packed dQKV buffer: every element equals the contiguous run's (the same arithmetic).
TEST(CausalAttention, CpuBackendHonoursPackedQkvStrides) {
  std::mt19937 rng(testing_support::test_seed());
  const CausalAttentionShape s{2, 19, 3, 64};
  const Inputs in = random_inputs(s, rng);
  const std::int64_t hd = s.heads * s.head_dim;
  std::vector<float> qkv(static_cast<size_t>(3 * s.elements())), dqkv(qkv.size());
  for (std::int64_t b = 0; b < s.batch; ++b)
    for (std::int64_t i = 0; i < s.seq; ++i)
      for (std::int64_t c = 0; c < hd; ++c) {
        const size_t src = static_cast<size_t>((b * s.seq + i) * hd + c);
        const size_t dst = static_cast<size_t>((b * s.seq + i) * 3 * hd + c);
        qkv[dst] = in.q[src];
        qkv[dst + static_cast<size_t>(hd)] = in.k[src];
        qkv[dst + static_cast<size_t>(2 * hd)] = in.v[src];
      }
  const BshdStrides packed{3 * s.seq * hd, 3 * hd, s.head_dim};
  const auto run = [&](bool strided, std::vector<float>& o, std::vector<float>& dq, std::vector<float>& dk,
                       std::vector<float>& dv) {
    std::vector<float> lse(static_cast<size_t>(s.rows())), row_dot(lse.size());
    o.assign(in.q.size(), 0.f);
    CausalAttentionParams p;
    p.shape = s;
    p.io = DType::kFp32;
    CausalAttentionGrads g;
    g.d_o = in.d_o.data();
    g.row_dot = row_dot.data();
    p.o = o.data();
    p.lse = lse.data();
    if (strided) {
      p.q = qkv.data();
      p.k = qkv.data() + hd;
      p.v = qkv.data() + 2 * hd;
      p.q_strides = p.k_strides = p.v_strides = packed;
      g.dq = dqkv.data();
      g.dk = dqkv.data() + hd;
      g.dv = dqkv.data() + 2 * hd;
      g.dq_strides = g.dk_strides = g.dv_strides = packed;
    } else {
      dq.assign(in.q.size(), 0.f);
      dk.assign(in.q.size(), 0.f);
      dv.assign(in.q.size(), 0.f);
      p.q = in.q.data();
      p.k = in.k.data();
      p.v = in.v.data();
      g.dq = dq.data();
      g.dk = dk.data();
      g.dv = dv.data();
    }
    causal_attention_fwd_cpu(p);
    causal_attention_bwd_cpu(p, g);
  };
  std::vector<float> o1, dq1, dk1, dv1, o2, unused_q, unused_k, unused_v;
  run(false, o1, dq1, dk1, dv1);
  run(true, o2, unused_q, unused_k, unused_v);
  EXPECT_EQ(o1, o2);
  for (std::int64_t b = 0; b < s.batch; ++b)
    for (std::int64_t i = 0; i < s.seq; ++i)
      for (std::int64_t c = 0; c < hd; ++c) {
        const size_t src = static_cast<size_t>((b * s.seq + i) * hd + c);
        const size_t dst = static_cast<size_t>((b * s.seq + i) * 3 * hd + c);
        ASSERT_EQ(dq1[src], dqkv[dst]);
        ASSERT_EQ(dk1[src], dqkv[dst + static_cast<size_t>(hd)]);
        ASSERT_EQ(dv1[src], dqkv[dst + static_cast<size_t>(2 * hd)]);
      }
}

// ---- validation: one line naming the field, before anything runs ----------------------

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(no error)";
}

CausalAttentionParams valid_params(DType io) {
  CausalAttentionParams p;
  p.shape = {2, 100, 4, 96};
  p.io = io;
  void* fake = reinterpret_cast<void*>(std::uintptr_t{4096});  // never dereferenced: validation only
  p.q = p.k = p.v = p.o = fake;
  p.lse = static_cast<float*>(fake);
  return p;
}

CausalAttentionGrads valid_grads() {
  CausalAttentionGrads g;
  void* fake = reinterpret_cast<void*>(std::uintptr_t{8192});
  g.d_o = g.dq = g.dk = g.dv = fake;
  g.row_dot = g.dq_accum = static_cast<float*>(fake);
  return g;
}

TEST(CausalAttention, ValidationNamesTheField) {
  EXPECT_EQ(error_of([] { causal_attention_validate_bwd(valid_params(DType::kBf16), valid_grads()); }), "(no error)");
  const auto fwd_error = [](const std::function<void(CausalAttentionParams&)>& edit, DType io = DType::kBf16, bool gpu = true) {
    CausalAttentionParams p = valid_params(io);
    edit(p);
    return error_of([&] { causal_attention_validate_fwd(p, gpu); });
  };
  EXPECT_EQ(fwd_error([](auto& p) { p.shape.head_dim = 80; }), "causal_attention: shape.head_dim must be 64, 96 or 128, got 80");
  EXPECT_EQ(fwd_error([](auto& p) { p.shape.seq = 0; }), "causal_attention: shape.seq must be >= 1, got 0");
  EXPECT_EQ(fwd_error([](auto& p) { p.shape.heads = -1; }), "causal_attention: shape.heads must be >= 1, got -1");
  EXPECT_EQ(fwd_error([](auto& p) { p.lse = nullptr; }), "causal_attention: lse is null");
  EXPECT_EQ(fwd_error([](auto& p) { p.io = DType::kInt32; }), "causal_attention: io must be fp16, bf16 or fp32, got int32");
  EXPECT_EQ(fwd_error([](auto& p) { p.kernel = CausalAttentionKernel::kTensorCore; }, DType::kFp32),
            "causal_attention: kernel = tensor-core needs io fp16 or bf16, got fp32");
  EXPECT_EQ(fwd_error([](auto&) {}, DType::kBf16, /*gpu=*/false), "causal_attention: io must be fp32 on the CPU backend, got bf16");
  // A [B, S, 3, H, D] view with 3 H D = 1200: fine; an odd seq stride is refused on tensor
  // cores (16-byte cp.async rows) and accepted by the SIMT kernels.
  EXPECT_EQ(fwd_error([](auto& p) { p.k_strides = {3 * 100 * 384, 3 * 384, 96}; }), "(no error)");
  EXPECT_EQ(fwd_error([](auto& p) { p.k_strides = {100 * 392, 390, 96}; }),
            "causal_attention: k_strides.seq must be a multiple of 8 elements on the tensor-core path (16-byte cp.async rows), got 390");
  EXPECT_EQ(fwd_error([](auto& p) {
              p.k_strides = {100 * 392, 390, 96};
              p.kernel = CausalAttentionKernel::kSimt;
            }),
            "(no error)");
  EXPECT_EQ(fwd_error([](auto& p) { p.o_strides = {8, 0, 8}; }), "causal_attention: o_strides.seq must be positive, got 0");
  EXPECT_EQ(fwd_error([](auto& p) { p.q = static_cast<const char*>(p.q) + 2; }),
            "causal_attention: q must be 16-byte aligned on the tensor-core path");
  EXPECT_EQ(fwd_error([](auto& p) { p.shape = {65536, 65536, 64, 64}; }),
            "causal_attention: shape.batch * shape.heads * ceil(shape.seq / 64) = 4294967296 blocks exceeds the 1-D grid limit "
            "2^31 - 1");
  CausalAttentionGrads g = valid_grads();
  g.dq_accum = nullptr;
  EXPECT_EQ(error_of([&] { causal_attention_validate_bwd(valid_params(DType::kBf16), g); }),
            "causal_attention: dq_accum is null: the tensor-core backward in atomic mode needs B*H*S*D fp32 of workspace");
  g.mode = CausalBwdMode::kDeterministic;  // needs no accumulator; neither do the SIMT kernels
  EXPECT_EQ(error_of([&] { causal_attention_validate_bwd(valid_params(DType::kBf16), g); }), "(no error)");
  g.mode = CausalBwdMode::kAtomic;
  EXPECT_EQ(error_of([&] { causal_attention_validate_bwd(valid_params(DType::kFp32), g); }), "(no error)");
  g.row_dot = nullptr;
  EXPECT_EQ(error_of([&] { causal_attention_validate_bwd(valid_params(DType::kFp32), g); }), "causal_attention: row_dot is null");
}

// FlashAttention's convention (causal_attention_cost.h): forward 4 B H S^2 D / 2, backward
// 2.5x; GenSLM-25B at S = 2048 with all 64 heads of size 96 on one GPU:
// 2 * 64 * 2048^2 * 96 = 5.15e10 forward FLOPs per layer and sequence.
TEST(CausalAttention, DeclaredCostFollowsFlashAttentionConvention) {
  const CausalAttentionShape s{1, 2048, 64, 96};
  const KernelCost f = causal_attention_fwd_cost(s, DType::kBf16);
  EXPECT_DOUBLE_EQ(f.flops, 0.5 * 4.0 * 64 * 2048.0 * 2048 * 96);
  EXPECT_NEAR(f.flops / 1e10, 5.154, 0.001);
  EXPECT_DOUBLE_EQ(f.bytes, 4.0 * 2048 * 64 * 96 * 2 + 4.0 * 64 * 2048);
  EXPECT_EQ(f.workspace_bytes, 0);
  const KernelCost ba = causal_attention_bwd_cost(s, DType::kBf16, CausalBwdMode::kAtomic);
  const KernelCost bd = causal_attention_bwd_cost(s, DType::kBf16, CausalBwdMode::kDeterministic);
  EXPECT_DOUBLE_EQ(ba.flops, 2.5 * f.flops);
  EXPECT_DOUBLE_EQ(bd.flops, ba.flops);  // useful FLOPs: the deterministic recompute is overhead
  EXPECT_EQ(bd.workspace_bytes, 4 * 64 * 2048);
  EXPECT_EQ(ba.workspace_bytes, 4 * 64 * 2048 + 4 * 2048 * 64 * 96);
  EXPECT_DOUBLE_EQ(ba.bytes - bd.bytes, 3.0 * 4 * 2048 * 64 * 96);
}

// ---- the bench's check, end to end on the CPU backend --------------------------------

MatrixPoint cpu_point(const std::string& bench, std::int64_t seq) {
  MatrixPoint p;
  p.suite = "kernels";
  p.bench = bench;
  p.backend = "cpu";
  p.params = {{"B", 2}, {"S", seq}, {"H", 2}, {"D", 64}, {"dtype", "fp32"}};
  p.id = point_id(p.suite, p.bench, p.backend, p.params);
  p.timing.warmup_s = 0;
  p.timing.min_samples = 2;
  p.timing.max_samples = 2;
  p.timing.time_cap_s = 0.05;
  return p;
}

struct ScopedEnv {
  std::string name;
  ScopedEnv(const std::string& n, const std::string& v) : name(n) { ::setenv(n.c_str(), v.c_str(), 1); }
  ~ScopedEnv() { ::unsetenv(name.c_str()); }
};

TEST(CausalAttention, CpuBenchPointsAreCheckedThenTimed) {
  for (const char* bench : {"causal_attention_fwd", "causal_attention_fwdbwd"}) {
    const PointResult r = execute_point(cpu_point(bench, 100));
    ASSERT_EQ(r.status, PointStatus::kOk) << bench << ": " << r.reason;
    ASSERT_TRUE(r.check.has_value());
    EXPECT_TRUE(r.check->ok) << r.check->worst;
    EXPECT_EQ(r.check->scope, "") << "every slice and row fits the budget at S = 100";
    EXPECT_GT(r.check->max_abs_err, 0);  // fp32 against double: a real error, inside the tolerance
    EXPECT_FALSE(r.samples_s.empty());
  }
  const ScopedEnv plant("SEQSCALE_TEST_PLANT_WRONG_OUTPUT", "1");
  const PointResult bad = execute_point(cpu_point("causal_attention_fwdbwd", 17));
  EXPECT_EQ(bad.status, PointStatus::kFailed);
  EXPECT_EQ(bad.reason.rfind("check failed: ", 0), 0u) << bad.reason;
  EXPECT_TRUE(bad.samples_s.empty());
}

TEST(CausalAttention, CpuBenchRejectsCudaAxesAndBadHeadSize) {
  MatrixPoint p = cpu_point("causal_attention_fwd", 17);
  p.params["kernel"] = "tc";
  PointResult r = execute_point(p);
  EXPECT_EQ(r.status, PointStatus::kFailed);
  EXPECT_NE(r.reason.find("kernel: a CUDA axis"), std::string::npos) << r.reason;
  p = cpu_point("causal_attention_fwd", 17);
  p.params["D"] = 80;
  r = execute_point(p);
  EXPECT_EQ(r.status, PointStatus::kFailed);
  EXPECT_NE(r.reason.find("D: must be 64, 96 or 128, got 80"), std::string::npos) << r.reason;
}

// Past the budget (S^2 D 3.5 > 4e8 with the backward) the check samples rows of the first
// and last slices; a wrong value in a sampled dK row is caught.
TEST(CausalAttention, LongSequenceCheckSamplesRows) {
  std::mt19937 rng(testing_support::test_seed());
  const CausalAttentionShape s{1, 1400, 2, 64};
  MatrixPoint point = cpu_point("causal_attention_fwdbwd", s.seq);
  const auto state = make_cpu_state(point);
  const Inputs in = random_inputs(s, rng);
  std::vector<float> o(in.q.size()), dq(o.size()), dk(o.size()), dv(o.size()), lse(static_cast<size_t>(s.rows())),
      row_dot(lse.size());
  CausalAttentionParams p;
  p.shape = s;
  p.io = DType::kFp32;
  p.q = in.q.data();
  p.k = in.k.data();
  p.v = in.v.data();
  p.o = o.data();
  p.lse = lse.data();
  CausalAttentionGrads g;
  g.d_o = in.d_o.data();
  g.dq = dq.data();
  g.dk = dk.data();
  g.dv = dv.data();
  g.row_dot = row_dot.data();
  causal_attention_fwd_cpu(p);
  causal_attention_bwd_cpu(p, g);
  const CausalAttentionCheckBuffers buf{p.q, p.k, p.v, p.o, p.lse, g.d_o, g.dq, g.dk, g.dv};
  const CheckResult ok = check_causal_attention(*state, s, DType::kFp32, buf);
  EXPECT_TRUE(ok.ok) << ok.worst;
  EXPECT_NE(ok.scope.find("query rows (o, lse, dq) and"), std::string::npos) << ok.scope;
  EXPECT_GT(ok.checked_elements, 0);
  dk[at(s, 0, s.seq - 1, 1, 5)] += 1.f;  // key S - 1 of the last slice is always sampled
  const CheckResult bad = check_causal_attention(*state, s, DType::kFp32, buf);
  EXPECT_FALSE(bad.ok);
  EXPECT_NE(bad.worst.find("dk["), std::string::npos) << bad.worst;
}

}  // namespace
}  // namespace seqscale
