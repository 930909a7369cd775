// CPU benchmarks of LayerNorm: the fp32 CPU backend (layernorm_cpu.h) on tracked host
// buffers, checked against the double reference before it is timed. Axes: rows, cols,
// dtype (fp32 only on the CPU).
#include "kernels/layernorm/layernorm_bench.h"
#include "kernels/layernorm/layernorm_cost.h"
#include "kernels/layernorm/layernorm_cpu.h"
#include "workloads/config_error.h"

namespace seqscale {
namespace {

void require_fp32(BenchState& s) {
  if (s.get_dtype() != DType::kFp32) throw ConfigError("dtype: the CPU LayerNorm runs fp32 only");
}

SEQSCALE_BENCH(layernorm_fwd_cpu, "layernorm_fwd", "kernels", Backend::kCpu, [](BenchState& s) {
  require_fp32(s);
  const std::int64_t rows = s.get_int("rows"), cols = s.get_int("cols");
  s.add_cost(layernorm_fwd_cost(rows, cols, DType::kFp32));
  auto* x = s.alloc_array<float>(rows * cols);
  auto* w = s.alloc_array<float>(cols);
  auto* b = s.alloc_array<float>(cols);
  auto* y = s.alloc_array<float>(rows * cols);
  auto* stats = s.alloc_array<float>(2 * rows);
  s.fill_random(x, rows * cols, DType::kFp32, 1);
  s.fill_random(w, cols, DType::kFp32, 2);
  s.fill_random(b, cols, DType::kFp32, 3);
  const auto run = [&](void*) {
    layernorm_fwd_cpu(x, w, b, rows, cols, static_cast<float>(kLayernormEps), y, stats, stats + rows);
  };
  s.check(run, [&] { return check_layernorm_fwd(s, x, w, b, y, rows, cols, DType::kFp32); });
  s.exec(run);
});

SEQSCALE_BENCH(layernorm_bwd_cpu, "layernorm_bwd", "kernels", Backend::kCpu, [](BenchState& s) {
  require_fp32(s);
  const std::int64_t rows = s.get_int("rows"), cols = s.get_int("cols");
  s.add_cost(layernorm_bwd_cost(rows, cols, DType::kFp32));
  auto* x = s.alloc_array<float>(rows * cols);
  auto* dy = s.alloc_array<float>(rows * cols);
  auto* w = s.alloc_array<float>(cols);
  auto* dx = s.alloc_array<float>(rows * cols);
  auto* stats = s.alloc_array<float>(2 * rows);
  auto* grads = s.alloc_array<float>(2 * cols);
  s.fill_random(x, rows * cols, DType::kFp32, 1);
  s.fill_random(dy, rows * cols, DType::kFp32, 4);
  s.fill_random(w, cols, DType::kFp32, 2);
  // The saved statistics come from the forward, as in training (dx holds its output until
  // the backward overwrites it; the statistics do not depend on the bias: w serves).
  s.setup_call([&](void*) { layernorm_fwd_cpu(x, w, w, rows, cols, static_cast<float>(kLayernormEps), dx, stats, stats + rows); });
  const auto run = [&](void*) { layernorm_bwd_cpu(dy, x, w, stats, stats + rows, rows, cols, dx, grads, grads + cols); };
  s.check(run, [&] { return check_layernorm_bwd(s, dy, x, w, dx, grads, grads + cols, rows, cols, DType::kFp32); });
  s.exec(run);
});

}  // namespace
}  // namespace seqscale
