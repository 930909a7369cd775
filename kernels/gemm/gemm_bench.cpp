// CPU benchmark of the reference GEMM (double accumulation). Axes: m, n, k, dtype.
#include "harness/bench/registry.h"
#include "kernels/gemm/gemm_cost.h"
#include "kernels/gemm/gemm_ref.h"

namespace seqscale {
namespace {

SEQSCALE_BENCH(gemm_cpu, "gemm", "kernels", Backend::kCpu, [](BenchState& s) {
  const std::int64_t m = s.get_int("m"), n = s.get_int("n"), k = s.get_int("k");
  s.add_cost(gemm_cost(m, n, k, s.get_dtype()));
  auto* a = s.alloc_array<float>(m * k);
  auto* b = s.alloc_array<float>(k * n);
  auto* c = s.alloc_array<double>(m * n);
  s.fill_random(a, m * k, DType::kFp32, 1);
  s.fill_random(b, k * n, DType::kFp32, 2);
  s.exec([&](void*) { gemm_ref(a, b, c, m, n, k); });
});

}  // namespace
}  // namespace seqscale
