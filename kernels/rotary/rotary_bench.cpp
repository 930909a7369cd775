// CPU benchmarks of rotary position embedding, forward and backward (the same rotation by
// -theta): the fp32 CPU backend (rotary_cpu.h) on tracked host buffers, checked against
// the double reference before it is timed. Axes: batch, seq, heads, head_dim, rotary_pct,
// in_place (0/1), dtype (fp32 only on the CPU); optional base.
// Run: seqscale bench --matrix transformer_kernels --filter 'rotary_.*/cpu/' --out DIR
#include "kernels/rotary/rotary_bench.h"
#include "kernels/rotary/rotary_cost.h"
#include "kernels/rotary/rotary_cpu.h"
#include "workloads/config_error.h"

namespace seqscale {
namespace {

void rotary_cpu_body(BenchState& s, bool inverse) {
  if (s.get_dtype() != DType::kFp32) throw ConfigError("dtype: the CPU rotary runs fp32 only");
  const RotaryShape sh = rotary_shape_of(s);
  const bool in_place = s.get_int("in_place") != 0;
  s.add_cost(rotary_cost(sh, DType::kFp32, in_place));
  auto* in = s.alloc_array<float>(sh.elements());
  auto* out = in_place ? in : s.alloc_array<float>(sh.elements());
  s.fill_random(in, sh.elements(), DType::kFp32, 1);
  RotaryCheckInputs ci;
  if (s.checks()) ci = rotary_check_inputs(s, sh, in, DType::kFp32);
  const auto run = [&](void*) { rotary_cpu(in, out, sh, inverse); };
  s.check(run, [&] { return check_rotary(s, sh, ci, out, DType::kFp32, inverse); });
  s.exec(run);
}

SEQSCALE_BENCH(rotary_fwd_cpu, "rotary_fwd", "kernels", Backend::kCpu, [](BenchState& s) { rotary_cpu_body(s, false); });
SEQSCALE_BENCH(rotary_bwd_cpu, "rotary_bwd", "kernels", Backend::kCpu, [](BenchState& s) { rotary_cpu_body(s, true); });

}  // namespace
}  // namespace seqscale
