// CUDA benchmarks of the fused softmax (in place, as FastFold runs it). Axes: B, N, H,
// rows, cols, dtype, mask (0/1), bias (0/1). Evoformer shapes: rows = cols = L.
#include "kernels/softmax/softmax_bench.h"
#include "kernels/softmax/softmax.cuh"

namespace seqscale {
namespace {

SEQSCALE_BENCH(softmax_fwd_cuda, "softmax_fwd", "kernels", Backend::kCuda, [](BenchState& s) {
  SoftmaxFwdParams p;
  p.shape = softmax_shape_of(s);
  p.io = s.get_dtype();
  const bool mask = s.get_int("mask") != 0, bias = s.get_int("bias") != 0;
  s.add_cost(softmax_fwd_cost(p.shape, p.io, mask, bias));
  const auto es = static_cast<std::size_t>(dtype_bytes(p.io));
  void* x = s.alloc(es * static_cast<std::size_t>(p.shape.elements()));
  s.fill_random(x, p.shape.elements(), p.io, 1);
  p.x = p.y = x;
  if (mask) {
    const std::int64_t n = p.shape.batch * p.shape.n * p.shape.cols;
    void* m = s.alloc(es * static_cast<std::size_t>(n));
    s.fill_value(m, n, p.io, 0.f);
    p.mask = m;
  }
  if (bias) {
    const std::int64_t n = p.shape.batch * p.shape.heads * p.shape.rows * p.shape.cols;
    void* b = s.alloc(es * static_cast<std::size_t>(n));
    s.fill_random(b, n, p.io, 2);
    p.bias = b;
  }
  SoftmaxCheckInputs in;
  if (s.checks()) in = softmax_check_inputs(s, p.shape, p.x, p.mask, p.bias, p.io);
  const auto run = [&](void* stream) { softmax_fwd(p, static_cast<cudaStream_t>(stream)); };
  s.check(run, [&] { return check_softmax_fwd(s, p.shape, in, p.y, p.scale, p.io); });
  s.exec(run);
});

SEQSCALE_BENCH(softmax_bwd_cuda, "softmax_bwd", "kernels", Backend::kCuda, [](BenchState& s) {
  SoftmaxBwdParams p;
  p.shape = softmax_shape_of(s);
  p.io = s.get_dtype();
  s.add_cost(softmax_bwd_cost(p.shape, p.io));
  const auto es = static_cast<std::size_t>(dtype_bytes(p.io));
  void* y = s.alloc(es * static_cast<std::size_t>(p.shape.elements()));
  void* dy = s.alloc(es * static_cast<std::size_t>(p.shape.elements()));
  s.fill_random(y, p.shape.elements(), p.io, 1, 0.f, 1.f);
  s.fill_random(dy, p.shape.elements(), p.io, 2);
  p.y = y;
  p.dy = dy;
  p.dx = s.alloc(es * static_cast<std::size_t>(p.shape.elements()));
  const auto run = [&](void* stream) { softmax_bwd(p, static_cast<cudaStream_t>(stream)); };
  s.check(run, [&] { return check_softmax_bwd(s, p.shape, p.y, p.dy, p.dx, p.scale, p.io); });
  s.exec(run);
});

}  // namespace
}  // namespace seqscale
