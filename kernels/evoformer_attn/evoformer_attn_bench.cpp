// CPU benchmark of the Evoformer attention reference (forward). Axes: B, N, L, H, D,
// dtype, pair_bias (0/1). Declares the naive path's cost (the reference materialises one
// logits row at a time, so its own memory is O(L)).
#include "harness/bench/registry.h"
#include "kernels/evoformer_attn/evoformer_attn_ref.h"

namespace seqscale {
namespace {

SEQSCALE_BENCH(evoformer_attn_ref_fwd_cpu, "evoformer_attn_ref_fwd", "kernels", Backend::kCpu, [](BenchState& s) {
  EvoformerAttnShape sh{s.get_int("B"), s.get_int("N"), s.get_int("L"), s.get_int("H"), s.get_int("D")};
  const bool pair = s.get_int("pair_bias") != 0;
  s.add_cost(evoformer_attn_fwd_cost(sh, s.get_dtype(), pair, false));
  const auto n = sh.qkv_elements();
  auto* buf = s.alloc_array<float>(3 * n + sh.batch * sh.n * sh.len + sh.batch * sh.heads * sh.len * sh.len);
  s.fill_random(buf, 3 * n, DType::kFp32, 1);
  s.fill_value(buf + 3 * n, sh.batch * sh.n * sh.len, DType::kFp32, 0.f);
  s.fill_random(buf + 3 * n + sh.batch * sh.n * sh.len, sh.batch * sh.heads * sh.len * sh.len, DType::kFp32, 2);
  const std::vector<float> q(buf, buf + n), k(buf + n, buf + 2 * n), v(buf + 2 * n, buf + 3 * n);
  const float* mask = buf + 3 * n;
  const float* bias = pair ? mask + sh.batch * sh.n * sh.len : nullptr;
  // This benchmark times the reference itself: there is nothing independent to check it
  // against here (the reference is checked against a long-double logits tensor in
  // tests/kernels/evoformer_attn_test.cpp).
  s.no_check("the benchmark times the double reference itself");
  s.exec([&](void*) { evoformer_attn_fwd_ref(sh, q, k, v, mask, bias); });
});

}  // namespace
}  // namespace seqscale
