// CUDA benchmarks of RMSNorm: forward (y + rstd) and backward (dx + dweight). Axes: rows,
// cols, dtype. Bytes declared by rmsnorm_cost.h, so GB/s is against the compulsory
// traffic. Each point is checked against the double reference before it is timed.
// Run: seqscale bench --matrix transformer_kernels --filter 'rmsnorm_.*/cuda/' --out DIR
#include "kernels/rmsnorm/rmsnorm.cuh"
#include "kernels/rmsnorm/rmsnorm_bench.h"
#include "kernels/rmsnorm/rmsnorm_cost.h"

namespace seqscale {
namespace {

SEQSCALE_BENCH(rmsnorm_fwd_cuda, "rmsnorm_fwd", "kernels", Backend::kCuda, [](BenchState& s) {
  RmsNormFwdParams p;
  p.rows = s.get_int("rows");
  p.cols = s.get_int("cols");
  p.io = s.get_dtype();
  p.eps = static_cast<float>(kRmsnormEps);
  s.add_cost(rmsnorm_fwd_cost(p.rows, p.cols, p.io));
  const auto es = static_cast<std::size_t>(dtype_bytes(p.io));
  void* x = s.alloc(es * static_cast<std::size_t>(p.rows * p.cols));
  void* w = s.alloc(es * static_cast<std::size_t>(p.cols));
  p.y = s.alloc(es * static_cast<std::size_t>(p.rows * p.cols));
  p.rstd = s.alloc_array<float>(p.rows);
  s.fill_random(x, p.rows * p.cols, p.io, 1);
  s.fill_random(w, p.cols, p.io, 2);
  p.x = x;
  p.weight = w;
  const auto run = [&](void* stream) { rmsnorm_fwd(p, static_cast<cudaStream_t>(stream)); };
  s.check(run, [&] { return check_rmsnorm_fwd(s, p.x, p.weight, p.y, p.rstd, p.rows, p.cols, p.io); });
  s.exec(run);
});

SEQSCALE_BENCH(rmsnorm_bwd_cuda, "rmsnorm_bwd", "kernels", Backend::kCuda, [](BenchState& s) {
  RmsNormBwdParams p;
  p.rows = s.get_int("rows");
  p.cols = s.get_int("cols");
  p.io = s.get_dtype();
  const KernelCost cost = rmsnorm_bwd_cost(p.rows, p.cols, p.io);
  s.add_cost(cost);
  const auto es = static_cast<std::size_t>(dtype_bytes(p.io));
  void* dy = s.alloc(es * static_cast<std::size_t>(p.rows * p.cols));
  void* x = s.alloc(es * static_cast<std::size_t>(p.rows * p.cols));
  void* w = s.alloc(es * static_cast<std::size_t>(p.cols));
  float* rstd = s.alloc_array<float>(p.rows);
  p.dx = s.alloc(es * static_cast<std::size_t>(p.rows * p.cols));
  p.dweight = s.alloc_array<float>(p.cols);
  p.workspace = static_cast<float*>(s.alloc(static_cast<std::size_t>(cost.workspace_bytes)));
  s.fill_random(dy, p.rows * p.cols, p.io, 3);
  s.fill_random(x, p.rows * p.cols, p.io, 1);
  s.fill_random(w, p.cols, p.io, 2);
  p.dy = dy;
  p.x = x;
  p.weight = w;
  p.rstd = rstd;
  // The saved rstd comes from the forward, as in training: run it once into dx (the
  // backward overwrites it).
  RmsNormFwdParams f;
  f.x = x;
  f.weight = w;
  f.y = p.dx;
  f.rstd = rstd;
  f.rows = p.rows;
  f.cols = p.cols;
  f.eps = static_cast<float>(kRmsnormEps);
  f.io = p.io;
  s.setup_call([&](void* stream) { rmsnorm_fwd(f, static_cast<cudaStream_t>(stream)); });
  const auto run = [&](void* stream) { rmsnorm_bwd(p, static_cast<cudaStream_t>(stream)); };
  s.check(run, [&] { return check_rmsnorm_bwd(s, p.dy, p.x, p.weight, p.dx, p.dweight, p.rows, p.cols, p.io); });
  s.exec(run);
});

}  // namespace
}  // namespace seqscale
