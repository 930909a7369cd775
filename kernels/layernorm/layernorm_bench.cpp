// CPU benchmarks of LayerNorm: the double-accumulation reference on tracked host buffers.
// Axes: rows, cols, dtype (inputs are rounded to dtype; the reference computes in double).
#include "harness/bench/registry.h"
#include "kernels/layernorm/layernorm_cost.h"
#include "kernels/layernorm/layernorm_ref.h"

namespace seqscale {
namespace {

SEQSCALE_BENCH(layernorm_fwd_cpu, "layernorm_fwd", "kernels", Backend::kCpu, [](BenchState& s) {
  const std::int64_t rows = s.get_int("rows"), cols = s.get_int("cols");
  s.add_cost(layernorm_fwd_cost(rows, cols, s.get_dtype()));
  auto* x = s.alloc_array<float>(rows * cols);
  auto* w = s.alloc_array<float>(cols);
  auto* b = s.alloc_array<float>(cols);
  auto* y = s.alloc_array<double>(rows * cols);
  auto* stats = s.alloc_array<double>(2 * rows);
  s.fill_random(x, rows * cols, DType::kFp32, 1);
  s.fill_random(w, cols, DType::kFp32, 2);
  s.fill_random(b, cols, DType::kFp32, 3);
  s.exec([&](void*) { layernorm_fwd_ref(x, w, b, rows, cols, 1e-5, y, stats, stats + rows); });
});

SEQSCALE_BENCH(layernorm_bwd_cpu, "layernorm_bwd", "kernels", Backend::kCpu, [](BenchState& s) {
  const std::int64_t rows = s.get_int("rows"), cols = s.get_int("cols");
  s.add_cost(layernorm_bwd_cost(rows, cols, s.get_dtype()));
  auto* x = s.alloc_array<float>(rows * cols);
  auto* dy = s.alloc_array<float>(rows * cols);
  auto* w = s.alloc_array<float>(cols);
  auto* dx = s.alloc_array<double>(rows * cols);
  auto* grads = s.alloc_array<double>(3 * cols);
  s.fill_random(x, rows * cols, DType::kFp32, 1);
  s.fill_random(dy, rows * cols, DType::kFp32, 4);
  s.fill_random(w, cols, DType::kFp32, 2);
  s.exec([&](void*) { layernorm_bwd_ref(dy, x, w, rows, cols, 1e-5, dx, grads, grads + cols, grads + 2 * cols); });
});

}  // namespace
}  // namespace seqscale
