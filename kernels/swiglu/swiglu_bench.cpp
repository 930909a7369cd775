// CPU benchmarks of the SwiGLU gate: the fp32 CPU backend (swiglu_cpu.h) on tracked host
// buffers, checked against the double reference before it is timed. Axes: rows, ffn,
// dtype (fp32 only on the CPU).
// Run: seqscale bench --matrix transformer_kernels --filter 'swiglu_.*/cpu/' --out DIR
#include "kernels/swiglu/swiglu_bench.h"
#include "kernels/swiglu/swiglu_cost.h"
#include "kernels/swiglu/swiglu_cpu.h"
#include "workloads/config_error.h"

namespace seqscale {
namespace {

void require_fp32(BenchState& s) {
  if (s.get_dtype() != DType::kFp32) throw ConfigError("dtype: the CPU swiglu runs fp32 only");
}

SEQSCALE_BENCH(swiglu_fwd_cpu, "swiglu_fwd", "kernels", Backend::kCpu, [](BenchState& s) {
  require_fp32(s);
  const std::int64_t rows = s.get_int("rows"), ffn = s.get_int("ffn");
  s.add_cost(swiglu_fwd_cost(rows, ffn, DType::kFp32));
  auto* x = s.alloc_array<float>(rows * 2 * ffn);
  auto* y = s.alloc_array<float>(rows * ffn);
  s.fill_random(x, rows * 2 * ffn, DType::kFp32, 1, -4.f, 4.f);  // both tails of the sigmoid
  const auto run = [&](void*) { swiglu_fwd_cpu(x, rows, ffn, y); };
  s.check(run, [&] { return check_swiglu_fwd(s, x, y, rows, ffn, DType::kFp32); });
  s.exec(run);
});

SEQSCALE_BENCH(swiglu_bwd_cpu, "swiglu_bwd", "kernels", Backend::kCpu, [](BenchState& s) {
  require_fp32(s);
  const std::int64_t rows = s.get_int("rows"), ffn = s.get_int("ffn");
  s.add_cost(swiglu_bwd_cost(rows, ffn, DType::kFp32));
  auto* x = s.alloc_array<float>(rows * 2 * ffn);
  auto* dy = s.alloc_array<float>(rows * ffn);
  auto* dx = s.alloc_array<float>(rows * 2 * ffn);
  s.fill_random(x, rows * 2 * ffn, DType::kFp32, 1, -4.f, 4.f);
  s.fill_random(dy, rows * ffn, DType::kFp32, 2);
  const auto run = [&](void*) { swiglu_bwd_cpu(dy, x, rows, ffn, dx); };
  s.check(run, [&] { return check_swiglu_bwd(s, dy, x, dx, rows, ffn, DType::kFp32); });
  s.exec(run);
});

}  // namespace
}  // namespace seqscale
