// CPU benchmark of the fused softmax: the fp32 CPU backend (softmax_cpu.h), in place as on
// the GPU, checked against the double reference before it is timed. Axes: B, N, H, rows,
// cols, dtype (fp32 only on the CPU), mask (0/1), bias (0/1).
#include "kernels/softmax/softmax_bench.h"
#include "kernels/softmax/softmax_cpu.h"
#include "workloads/config_error.h"

namespace seqscale {
namespace {

SEQSCALE_BENCH(softmax_fwd_cpu, "softmax_fwd", "kernels", Backend::kCpu, [](BenchState& s) {
  const SoftmaxShape sh = softmax_shape_of(s);
  if (s.get_dtype() != DType::kFp32) throw ConfigError("dtype: the CPU softmax runs fp32 only");
  const bool mask = s.get_int("mask") != 0, bias = s.get_int("bias") != 0;
  s.add_cost(softmax_fwd_cost(sh, DType::kFp32, mask, bias));
  auto* m = mask ? s.alloc_array<float>(sh.batch * sh.n * sh.cols) : nullptr;
  auto* b = bias ? s.alloc_array<float>(sh.batch * sh.heads * sh.rows * sh.cols) : nullptr;
  auto* x = s.alloc_array<float>(sh.elements());
  s.fill_random(x, sh.elements(), DType::kFp32, 1);
  if (m) s.fill_random(m, sh.batch * sh.n * sh.cols, DType::kFp32, 2);
  if (b) s.fill_random(b, sh.batch * sh.heads * sh.rows * sh.cols, DType::kFp32, 3);
  SoftmaxCheckInputs in;
  if (s.checks()) in = softmax_check_inputs(s, sh, x, m, b, DType::kFp32);
  const auto run = [&](void*) { softmax_fwd_cpu(x, x, m, b, sh, 1.f); };
  s.check(run, [&] { return check_softmax_fwd(s, sh, in, x, 1.f, DType::kFp32); });
  s.exec(run);
});

}  // namespace
}  // namespace seqscale
