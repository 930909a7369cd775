// CPU benchmarks of bias + GELU: the fp32 CPU backend (bias_gelu_cpu.h) on tracked host
// buffers, checked against the double reference before it is timed. Axes: rows, cols,
// dtype (fp32 only on the CPU).
// Run: seqscale bench --matrix transformer_kernels --filter 'bias_gelu_.*/cpu/' --out DIR
#include "kernels/bias_gelu/bias_gelu_bench.h"
#include "kernels/bias_gelu/bias_gelu_cost.h"
#include "kernels/bias_gelu/bias_gelu_cpu.h"
#include "workloads/config_error.h"

namespace seqscale {
namespace {

void require_fp32(BenchState& s) {
  if (s.get_dtype() != DType::kFp32) throw ConfigError("dtype: the CPU bias_gelu runs fp32 only");
}

SEQSCALE_BENCH(bias_gelu_fwd_cpu, "bias_gelu_fwd", "kernels", Backend::kCpu, [](BenchState& s) {
  require_fp32(s);
  const std::int64_t rows = s.get_int("rows"), cols = s.get_int("cols");
  s.add_cost(bias_gelu_fwd_cost(rows, cols, DType::kFp32));
  auto* x = s.alloc_array<float>(rows * cols);
  auto* b = s.alloc_array<float>(cols);
  auto* y = s.alloc_array<float>(rows * cols);
  s.fill_random(x, rows * cols, DType::kFp32, 1, -4.f, 4.f);  // GELU's curved range and both tails
  s.fill_random(b, cols, DType::kFp32, 2);
  const auto run = [&](void*) { bias_gelu_fwd_cpu(x, b, rows, cols, y); };
  s.check(run, [&] { return check_bias_gelu_fwd(s, x, b, y, rows, cols, DType::kFp32); });
  s.exec(run);
});

SEQSCALE_BENCH(bias_gelu_bwd_cpu, "bias_gelu_bwd", "kernels", Backend::kCpu, [](BenchState& s) {
  require_fp32(s);
  const std::int64_t rows = s.get_int("rows"), cols = s.get_int("cols");
  s.add_cost(bias_gelu_bwd_cost(rows, cols, DType::kFp32));
  auto* x = s.alloc_array<float>(rows * cols);
  auto* b = s.alloc_array<float>(cols);
  auto* dy = s.alloc_array<float>(rows * cols);
  auto* dx = s.alloc_array<float>(rows * cols);
  auto* db = s.alloc_array<float>(cols);
  s.fill_random(x, rows * cols, DType::kFp32, 1, -4.f, 4.f);
  s.fill_random(b, cols, DType::kFp32, 2);
  s.fill_random(dy, rows * cols, DType::kFp32, 3);
  const auto run = [&](void*) { bias_gelu_bwd_cpu(dy, x, b, rows, cols, dx, db); };
  s.check(run, [&] { return check_bias_gelu_bwd(s, dy, x, b, dx, db, rows, cols, DType::kFp32); });
  s.exec(run);
});

}  // namespace
}  // namespace seqscale
