// Suite "steps": one Evoformer block training step (forward + backward) on the GPU with
// naive or fused attention. Axes: model (an Evoformer model file: the crop and channel
// sizes), attn (naive | fused), optional stack (main | extra_msa: the extra-MSA stack's
// block, N_extra rows with global column attention), dtype (fp32 | bf16, default fp32) and
// n_seq / n_res overrides. Every tensor comes from
// the harness's pool, so peak_bytes is the block's measured high-water mark; the model's
// StepProgram of the same block (layers/evoformer_block/evoformer_block_program.h) is recorded beside it.
#include <cuda_runtime.h>

#include "harness/bench/registry.h"
#include "layers/evoformer_block/evoformer_block.cuh"
#include "layers/evoformer_block/evoformer_block_bench.h"

namespace seqscale {
namespace {

SEQSCALE_BENCH(evoformer_block_cuda, "evoformer_block", "steps", Backend::kCuda, [](BenchState& s) {
  EvoformerBlockPoint pt;
  if (!setup_evoformer_block_point(s, {DType::kFp32, DType::kBf16}, pt)) return;
  EvoformerBlockCudaOps ops(nullptr, pt.fused, pt.io, [&](std::size_t bytes) { return s.alloc(bytes); },
                            [&](void* p) { s.release(p); });
  EvoformerBlock<EvoformerBlockCudaOps> block(ops, pt.dims);
  std::uint64_t seed = 1;
  for (auto* p : block.params()) {
    s.fill_random(p->w.p, p->w.n, p->w.t, seed++, -kEvoformerBlockWeightRange, kEvoformerBlockWeightRange);
  }
  EvoformerBlockIo<EvoformerBlockCudaOps> io(ops, s, pt.dims, pt.io);
  const auto run = [&](void* stream) {
    ops.set_stream(static_cast<cudaStream_t>(stream));
    block.forward(io.m0, io.z0);
    block.backward(io.dm, io.dz, io.dm0, io.dz0);
  };
  if (evoformer_block_checkable(s, pt)) s.check(run, [&] { return check_evoformer_block(s, pt, block, io); });
  s.exec(run);
});

}  // namespace
}  // namespace seqscale
