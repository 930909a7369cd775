// CUDA benchmarks of bias + GELU, forward and backward (dx + dbias). Axes: rows, cols,
// dtype. Bytes declared by bias_gelu_cost.h, so GB/s is against the compulsory traffic.
// Each point is checked against the double reference before it is timed.
// Run: seqscale bench --matrix transformer_kernels --filter 'bias_gelu_.*/cuda/' --out DIR
#include "kernels/bias_gelu/bias_gelu.cuh"
#include "kernels/bias_gelu/bias_gelu_bench.h"
#include "kernels/bias_gelu/bias_gelu_cost.h"

namespace seqscale {
namespace {

SEQSCALE_BENCH(bias_gelu_fwd_cuda, "bias_gelu_fwd", "kernels", Backend::kCuda, [](BenchState& s) {
  BiasGeluFwdParams p;
  p.rows = s.get_int("rows");
  p.cols = s.get_int("cols");
  p.io = s.get_dtype();
  s.add_cost(bias_gelu_fwd_cost(p.rows, p.cols, p.io));
  const auto es = static_cast<std::size_t>(dtype_bytes(p.io));
  void* x = s.alloc(es * static_cast<std::size_t>(p.rows * p.cols));
  void* b = s.alloc(es * static_cast<std::size_t>(p.cols));
  p.y = s.alloc(es * static_cast<std::size_t>(p.rows * p.cols));
  s.fill_random(x, p.rows * p.cols, p.io, 1, -4.f, 4.f);  // GELU's curved range and both tails
  s.fill_random(b, p.cols, p.io, 2);
  p.x = x;
  p.bias = b;
  const auto run = [&](void* stream) { bias_gelu_fwd(p, static_cast<cudaStream_t>(stream)); };
  s.check(run, [&] { return check_bias_gelu_fwd(s, p.x, p.bias, p.y, p.rows, p.cols, p.io); });
  s.exec(run);
});

SEQSCALE_BENCH(bias_gelu_bwd_cuda, "bias_gelu_bwd", "kernels", Backend::kCuda, [](BenchState& s) {
  BiasGeluBwdParams p;
  p.rows = s.get_int("rows");
  p.cols = s.get_int("cols");
  p.io = s.get_dtype();
  const KernelCost cost = bias_gelu_bwd_cost(p.rows, p.cols, p.io);
  s.add_cost(cost);
  const auto es = static_cast<std::size_t>(dtype_bytes(p.io));
  void* dy = s.alloc(es * static_cast<std::size_t>(p.rows * p.cols));
  void* x = s.alloc(es * static_cast<std::size_t>(p.rows * p.cols));
  void* b = s.alloc(es * static_cast<std::size_t>(p.cols));
  p.dx = s.alloc(es * static_cast<std::size_t>(p.rows * p.cols));
  p.dbias = s.alloc_array<float>(p.cols);
  p.workspace = static_cast<float*>(s.alloc(static_cast<std::size_t>(cost.workspace_bytes)));
  s.fill_random(dy, p.rows * p.cols, p.io, 3);
  s.fill_random(x, p.rows * p.cols, p.io, 1, -4.f, 4.f);
  s.fill_random(b, p.cols, p.io, 2);
  p.dy = dy;
  p.x = x;
  p.bias = b;
  const auto run = [&](void* stream) { bias_gelu_bwd(p, static_cast<cudaStream_t>(stream)); };
  s.check(run, [&] { return check_bias_gelu_bwd(s, p.dy, p.x, p.bias, p.dx, p.dbias, p.rows, p.cols, p.io); });
  s.exec(run);
});

}  // namespace
}  // namespace seqscale
