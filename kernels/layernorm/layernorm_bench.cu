// CUDA benchmarks of LayerNorm: forward, backward (dx + dweight/dbias). Axes: rows, cols,
// dtype. Bytes declared by layernorm_cost.h, so GB/s is against the compulsory traffic.
// Each point is checked against the double reference before it is timed.
#include "kernels/layernorm/layernorm.cuh"
#include "kernels/layernorm/layernorm_bench.h"
#include "kernels/layernorm/layernorm_cost.h"

namespace seqscale {
namespace {

SEQSCALE_BENCH(layernorm_fwd_cuda, "layernorm_fwd", "kernels", Backend::kCuda, [](BenchState& s) {
  const std::int64_t rows = s.get_int("rows"), cols = s.get_int("cols");
  const DType io = s.get_dtype();
  const auto es = static_cast<std::size_t>(dtype_bytes(io));
  s.add_cost(layernorm_fwd_cost(rows, cols, io));
  LayerNormFwdParams p;
  p.rows = rows;
  p.cols = cols;
  p.io = io;
  p.x = s.alloc(es * rows * cols);
  p.y = s.alloc(es * rows * cols);
  p.weight = s.alloc(es * cols);
  p.bias = s.alloc(es * cols);
  p.mean = s.alloc_array<float>(rows);
  p.rstd = s.alloc_array<float>(rows);
  s.fill_random(const_cast<void*>(p.x), rows * cols, io, 1);
  s.fill_random(const_cast<void*>(p.weight), cols, io, 2);
  s.fill_random(const_cast<void*>(p.bias), cols, io, 3);
  const auto run = [&](void* stream) { layernorm_fwd(p, static_cast<cudaStream_t>(stream)); };
  s.check(run, [&] { return check_layernorm_fwd(s, p.x, p.weight, p.bias, p.y, rows, cols, io); });
  s.exec(run);
});

SEQSCALE_BENCH(layernorm_bwd_cuda, "layernorm_bwd", "kernels", Backend::kCuda, [](BenchState& s) {
  const std::int64_t rows = s.get_int("rows"), cols = s.get_int("cols");
  const DType io = s.get_dtype();
  const auto es = static_cast<std::size_t>(dtype_bytes(io));
  const KernelCost cost = layernorm_bwd_cost(rows, cols, io);
  s.add_cost(cost);
  LayerNormBwdParams p;
  p.rows = rows;
  p.cols = cols;
  p.io = io;
  p.dy = s.alloc(es * rows * cols);
  p.x = s.alloc(es * rows * cols);
  p.weight = s.alloc(es * cols);
  auto* mean = s.alloc_array<float>(rows);
  auto* rstd = s.alloc_array<float>(rows);
  p.mean = mean;
  p.rstd = rstd;
  p.dx = s.alloc(es * rows * cols);
  p.dweight = s.alloc_array<float>(cols);
  p.dbias = s.alloc_array<float>(cols);
  p.workspace = static_cast<float*>(s.alloc(static_cast<std::size_t>(cost.workspace_bytes)));
  s.fill_random(const_cast<void*>(p.dy), rows * cols, io, 4);
  s.fill_random(const_cast<void*>(p.x), rows * cols, io, 1);
  s.fill_random(const_cast<void*>(p.weight), cols, io, 2);
  // The saved statistics come from the forward, as in training: run it once into dx (the
  // backward overwrites it). The statistics do not depend on the bias, so any [cols] buffer
  // in the I/O dtype serves: the weight.
  LayerNormFwdParams f;
  f.rows = rows;
  f.cols = cols;
  f.io = io;
  f.x = p.x;
  f.weight = p.weight;
  f.bias = p.weight;
  f.y = p.dx;
  f.mean = mean;
  f.rstd = rstd;
  s.setup_call([&](void* stream) { layernorm_fwd(f, static_cast<cudaStream_t>(stream)); });
  const auto run = [&](void* stream) { layernorm_bwd(p, static_cast<cudaStream_t>(stream)); };
  s.check(run, [&] { return check_layernorm_bwd(s, p.dy, p.x, p.weight, p.dx, p.dweight, p.dbias, rows, cols, io); });
  s.exec(run);
});

}  // namespace
}  // namespace seqscale
