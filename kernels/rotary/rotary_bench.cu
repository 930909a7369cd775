// CUDA benchmarks of rotary position embedding, forward and backward (the rotation by
// -theta). Axes: batch, seq, heads, head_dim, rotary_pct, in_place (0/1), dtype; optional
// base. Bytes declared by rotary_cost.h (in place: the rotated dims only), so GB/s is
// against the compulsory traffic. Each point is checked against the double reference
// before it is timed.
// Run: seqscale bench --matrix transformer_kernels --filter 'rotary_.*/cuda/' --out DIR
#include "kernels/rotary/rotary.cuh"
#include "kernels/rotary/rotary_bench.h"
#include "kernels/rotary/rotary_cost.h"

namespace seqscale {
namespace {

void rotary_cuda_body(BenchState& s, bool inverse) {
  RotaryParams p;
  p.shape = rotary_shape_of(s);
  p.io = s.get_dtype();
  const bool in_place = s.get_int("in_place") != 0;
  s.add_cost(rotary_cost(p.shape, p.io, in_place));
  const auto bytes = static_cast<std::size_t>(dtype_bytes(p.io) * p.shape.elements());
  void* in = s.alloc(bytes);
  p.in = in;
  p.out = in_place ? in : s.alloc(bytes);
  s.fill_random(in, p.shape.elements(), p.io, 1);
  RotaryCheckInputs ci;
  if (s.checks()) ci = rotary_check_inputs(s, p.shape, p.in, p.io);
  const auto run = [&](void* stream) {
    if (inverse) rotary_bwd(p, static_cast<cudaStream_t>(stream));
    else rotary_fwd(p, static_cast<cudaStream_t>(stream));
  };
  s.check(run, [&] { return check_rotary(s, p.shape, ci, p.out, p.io, inverse); });
  s.exec(run);
}

SEQSCALE_BENCH(rotary_fwd_cuda, "rotary_fwd", "kernels", Backend::kCuda, [](BenchState& s) { rotary_cuda_body(s, false); });
SEQSCALE_BENCH(rotary_bwd_cuda, "rotary_bwd", "kernels", Backend::kCuda, [](BenchState& s) { rotary_cuda_body(s, true); });

}  // namespace
}  // namespace seqscale
