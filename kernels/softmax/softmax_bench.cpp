// CPU benchmark of the softmax reference. Axes: B, N, H, rows, cols, dtype, mask (0/1), bias (0/1).
#include "kernels/softmax/softmax_bench.h"
#include "kernels/softmax/softmax_ref.h"

namespace seqscale {
namespace {

SEQSCALE_BENCH(softmax_fwd_cpu, "softmax_fwd", "kernels", Backend::kCpu, [](BenchState& s) {
  const SoftmaxShape sh = softmax_shape_of(s);
  const bool mask = s.get_int("mask") != 0, bias = s.get_int("bias") != 0;
  s.add_cost(softmax_fwd_cost(sh, s.get_dtype(), mask, bias));
  std::vector<float> x(static_cast<size_t>(sh.elements()));
  auto* m = s.alloc_array<float>(sh.batch * sh.n * sh.cols);
  auto* b = s.alloc_array<float>(sh.batch * sh.heads * sh.rows * sh.cols);
  auto* xs = s.alloc_array<float>(sh.elements());
  s.fill_random(xs, sh.elements(), DType::kFp32, 1);
  s.fill_random(m, sh.batch * sh.n * sh.cols, DType::kFp32, 2);
  s.fill_random(b, sh.batch * sh.heads * sh.rows * sh.cols, DType::kFp32, 3);
  s.exec([&](void*) {
    x.assign(xs, xs + sh.elements());
    softmax_fwd_ref(x, mask ? m : nullptr, bias ? b : nullptr, sh, 1.0);
  });
});

}  // namespace
}  // namespace seqscale
