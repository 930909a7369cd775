// CPU benchmarks of RMSNorm: the fp32 CPU backend (rmsnorm_cpu.h) on tracked host buffers,
// checked against the double reference before it is timed. Axes: rows, cols, dtype (fp32
// only on the CPU).
// Run: seqscale bench --matrix transformer_kernels --filter 'rmsnorm_.*/cpu/' --out DIR
#include "kernels/rmsnorm/rmsnorm_bench.h"
#include "kernels/rmsnorm/rmsnorm_cost.h"
#include "kernels/rmsnorm/rmsnorm_cpu.h"
#include "workloads/config_error.h"

namespace seqscale {
namespace {

void require_fp32(BenchState& s) {
  if (s.get_dtype() != DType::kFp32) throw ConfigError("dtype: the CPU rmsnorm runs fp32 only");
}

SEQSCALE_BENCH(rmsnorm_fwd_cpu, "rmsnorm_fwd", "kernels", Backend::kCpu, [](BenchState& s) {
  require_fp32(s);
  const std::int64_t rows = s.get_int("rows"), cols = s.get_int("cols");
  s.add_cost(rmsnorm_fwd_cost(rows, cols, DType::kFp32));
  auto* x = s.alloc_array<float>(rows * cols);
  auto* w = s.alloc_array<float>(cols);
  auto* y = s.alloc_array<float>(rows * cols);
  auto* rstd = s.alloc_array<float>(rows);
  s.fill_random(x, rows * cols, DType::kFp32, 1);
  s.fill_random(w, cols, DType::kFp32, 2);
  const auto run = [&](void*) { rmsnorm_fwd_cpu(x, w, rows, cols, static_cast<float>(kRmsnormEps), y, rstd); };
  s.check(run, [&] { return check_rmsnorm_fwd(s, x, w, y, rstd, rows, cols, DType::kFp32); });
  s.exec(run);
});

SEQSCALE_BENCH(rmsnorm_bwd_cpu, "rmsnorm_bwd", "kernels", Backend::kCpu, [](BenchState& s) {
  require_fp32(s);
  const std::int64_t rows = s.get_int("rows"), cols = s.get_int("cols");
  s.add_cost(rmsnorm_bwd_cost(rows, cols, DType::kFp32));
  auto* x = s.alloc_array<float>(rows * cols);
  auto* dy = s.alloc_array<float>(rows * cols);
  auto* w = s.alloc_array<float>(cols);
  auto* dx = s.alloc_array<float>(rows * cols);
  auto* rstd = s.alloc_array<float>(rows);
  auto* dw = s.alloc_array<float>(cols);
  s.fill_random(x, rows * cols, DType::kFp32, 1);
  s.fill_random(dy, rows * cols, DType::kFp32, 3);
  s.fill_random(w, cols, DType::kFp32, 2);
  // The saved rstd comes from the forward, as in training (dx holds its y until the backward overwrites it).
  s.setup_call([&](void*) { rmsnorm_fwd_cpu(x, w, rows, cols, static_cast<float>(kRmsnormEps), dx, rstd); });
  const auto run = [&](void*) { rmsnorm_bwd_cpu(dy, x, w, rstd, rows, cols, dx, dw); };
  s.check(run, [&] { return check_rmsnorm_bwd(s, dy, x, w, dx, dw, rows, cols, DType::kFp32); });
  s.exec(run);
});

}  // namespace
}  // namespace seqscale
