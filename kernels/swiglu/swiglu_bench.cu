// CUDA benchmarks of the SwiGLU gate, forward and backward. Axes: rows, ffn, dtype. Bytes
// declared by swiglu_cost.h, so GB/s is against the compulsory traffic. Each point is
// checked against the double reference before it is timed.
// Run: seqscale bench --matrix transformer_kernels --filter 'swiglu_.*/cuda/' --out DIR
#include "kernels/swiglu/swiglu.cuh"
#include "kernels/swiglu/swiglu_bench.h"
#include "kernels/swiglu/swiglu_cost.h"

namespace seqscale {
namespace {

SEQSCALE_BENCH(swiglu_fwd_cuda, "swiglu_fwd", "kernels", Backend::kCuda, [](BenchState& s) {
  SwiGluFwdParams p;
  p.rows = s.get_int("rows");
  p.ffn = s.get_int("ffn");
  p.io = s.get_dtype();
  s.add_cost(swiglu_fwd_cost(p.rows, p.ffn, p.io));
  const auto es = static_cast<std::size_t>(dtype_bytes(p.io));
  void* x = s.alloc(es * static_cast<std::size_t>(p.rows * 2 * p.ffn));
  p.y = s.alloc(es * static_cast<std::size_t>(p.rows * p.ffn));
  s.fill_random(x, p.rows * 2 * p.ffn, p.io, 1, -4.f, 4.f);  // both tails of the sigmoid
  p.x = x;
  const auto run = [&](void* stream) { swiglu_fwd(p, static_cast<cudaStream_t>(stream)); };
  s.check(run, [&] { return check_swiglu_fwd(s, p.x, p.y, p.rows, p.ffn, p.io); });
  s.exec(run);
});

SEQSCALE_BENCH(swiglu_bwd_cuda, "swiglu_bwd", "kernels", Backend::kCuda, [](BenchState& s) {
  SwiGluBwdParams p;
  p.rows = s.get_int("rows");
  p.ffn = s.get_int("ffn");
  p.io = s.get_dtype();
  s.add_cost(swiglu_bwd_cost(p.rows, p.ffn, p.io));
  const auto es = static_cast<std::size_t>(dtype_bytes(p.io));
  void* x = s.alloc(es * static_cast<std::size_t>(p.rows * 2 * p.ffn));
  void* dy = s.alloc(es * static_cast<std::size_t>(p.rows * p.ffn));
  p.dx = s.alloc(es * static_cast<std::size_t>(p.rows * 2 * p.ffn));
  s.fill_random(x, p.rows * 2 * p.ffn, p.io, 1, -4.f, 4.f);
  s.fill_random(dy, p.rows * p.ffn, p.io, 2);
  p.x = x;
  p.dy = dy;
  const auto run = [&](void* stream) { swiglu_bwd(p, static_cast<cudaStream_t>(stream)); };
  s.check(run, [&] { return check_swiglu_bwd(s, p.dy, p.x, p.dx, p.rows, p.ffn, p.io); });
  s.exec(run);
});

}  // namespace
}  // namespace seqscale
