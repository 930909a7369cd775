// CPU benchmark of the fp32 CPU GEMM (gemm_cpu.h), checked against the double reference
// before it is timed. Axes: m, n, k, dtype (fp32 only on the CPU).
#include "kernels/gemm/gemm_bench.h"
#include "kernels/gemm/gemm_cost.h"
#include "kernels/gemm/gemm_cpu.h"
#include "workloads/config_error.h"

namespace seqscale {
namespace {

SEQSCALE_BENCH(gemm_cpu, "gemm", "kernels", Backend::kCpu, [](BenchState& s) {
  const std::int64_t m = s.get_int("m"), n = s.get_int("n"), k = s.get_int("k");
  if (s.get_dtype() != DType::kFp32) throw ConfigError("dtype: the CPU GEMM runs fp32 only");
  s.add_cost(gemm_cost(m, n, k, DType::kFp32));
  auto* a = s.alloc_array<float>(m * k);
  auto* b = s.alloc_array<float>(k * n);
  auto* c = s.alloc_array<float>(m * n);
  s.fill_random(a, m * k, DType::kFp32, 1);
  s.fill_random(b, k * n, DType::kFp32, 2);
  const auto run = [&](void*) { gemm_cpu(a, b, c, m, n, k); };
  s.check(run, [&] { return check_gemm(s, a, b, c, m, n, k, DType::kFp32); });
  s.exec(run);
});

}  // namespace
}  // namespace seqscale
