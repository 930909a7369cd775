#include "model/evoformer_program.h"

#include <cmath>

#include "model/comm_volume.h"
#include "layers/evoformer_block/evoformer_block_program.h"
#include "model/memory.h"

namespace seqscale {

namespace {

std::int64_t to_bytes(double b) { return static_cast<std::int64_t>(std::llround(b)); }

// One block's ComputeOps (from the block program the harness runs) under DAP: each rank
// does 1/dap of every op's work.
void add_block_ops(StepProgram& prog, const StepProgram& block, Phase from, Phase as, double dap, std::int32_t layer) {
  for (const StepOp& op : block.ops) {
    const auto* c = std::get_if<ComputeOp>(&op);
    if (!c || c->phase != from) continue;
    ComputeOp scaled = *c;
    scaled.cost.flops /= dap;
    scaled.cost.bytes /= dap;
    scaled.phase = as;
    scaled.layer = layer;
    prog.add(std::move(scaled));
  }
}

}  // namespace

StepProgram build_evoformer_program(const EvoformerSpec& e, const Plan& p, const RunShape& shape) {
  const ClusterSpec bare;  // no context, no fragmentation: the events carry the live bytes
  const RunShape s{shape.seq > 0 ? shape.seq : e.n_res, shape.micro_batch, shape.global_batch};
  const MemoryBreakdown mb = evoformer_memory(e, bare, p, s);
  StepProgram prog;
  prog.alloc(MemoryKind::kParameters, to_bytes(mb[MemTerm::kParameters]), "parameters");
  prog.alloc(MemoryKind::kGradients, to_bytes(mb[MemTerm::kGradients]), "gradients");
  prog.alloc(MemoryKind::kOptimizerStates, to_bytes(mb[MemTerm::kOptimizer]), "optimizer_states");
  if (mb.host_bytes > 0) prog.alloc(MemoryKind::kOptimizerStates, to_bytes(mb.host_bytes), "offloaded_states", true);
  prog.alloc(MemoryKind::kCommBuffers, to_bytes(mb[MemTerm::kCommBuffers]), "dap_all_to_all_staging");

  const double n_res = static_cast<double>(s.seq);
  const double n_seq = static_cast<double>(e.n_seq), n_extra = static_cast<double>(e.n_extra);
  // Compute: the main and extra-MSA block programs at this crop (every GEMM, LayerNorm,
  // attention and elementwise op the harness runs), work split over the DAP ranks.
  EvoformerBlockDims main_dims = EvoformerBlockDims::from_spec(e), extra_dims = EvoformerBlockDims::extra_msa_from_spec(e);
  main_dims.n_res = extra_dims.n_res = s.seq;
  const bool fused = p.attn == AttentionImpl::kFused;
  const bool recompute = p.recompute != Recompute::kNone;
  const StepProgram& main_block = evoformer_block_program_cached(main_dims, e.dtype, fused);
  const StepProgram* extra_block = e.extra_blocks > 0 && e.n_extra > 0 && e.c_e > 0
                                       ? &evoformer_block_program_cached(extra_dims, e.dtype, fused)
                                       : nullptr;
  const std::int64_t blocks = e.blocks + e.extra_blocks;
  const double dap = p.dap;
  auto block_of = [&](std::int64_t b) -> const StepProgram& {
    return b < e.extra_blocks && extra_block ? *extra_block : main_block;
  };
  // Stored per block: the closed form's activations split evenly over the blocks' inputs
  // (extra-MSA blocks first, as the model runs them), so the sum is exact.
  const double es = static_cast<double>(dtype_bytes(e.dtype));
  const double z = n_res * n_res * static_cast<double>(e.c_z) * es / dap;
  const double main_in = n_seq * n_res * static_cast<double>(e.c_m) * es / dap + z;
  const double extra_in = n_extra * n_res * static_cast<double>(e.c_e) * es / dap + z;
  const double extra_part = static_cast<double>(e.extra_blocks) * extra_in;
  const double main_part = static_cast<double>(e.blocks) * main_in;
  const double scale = (extra_part + main_part) > 0 ? mb[MemTerm::kActivations] / (extra_part + main_part) : 0.0;
  std::vector<std::int64_t> stored;
  std::int64_t allocated = 0;
  for (std::int64_t b = 0; b < blocks; ++b) {
    const bool extra = b < e.extra_blocks;
    std::int64_t bytes = to_bytes((extra ? extra_in : main_in) * scale);
    if (b == blocks - 1) bytes = to_bytes(mb[MemTerm::kActivations]) - allocated;  // rounding
    allocated += bytes;
    stored.push_back(bytes);
    prog.alloc(MemoryKind::kActivations, bytes, extra ? "extra_msa_block_input" : "evoformer_block_input");
    add_block_ops(prog, block_of(b), Phase::kForward, Phase::kForward, dap, static_cast<std::int32_t>(b));
  }
  // Backward, last block first: recompute the block, hold its working set and the largest
  // attention module, then release the block's checkpoint.
  const std::int64_t transient = to_bytes(mb[MemTerm::kBackwardWorkingSet] + mb[MemTerm::kAttentionScores]);
  for (std::int64_t b = blocks - 1; b >= 0; --b) {
    prog.alloc(MemoryKind::kWorkspace, transient, "block_backward");
    const auto layer = static_cast<std::int32_t>(b);
    if (recompute) add_block_ops(prog, block_of(b), Phase::kForward, Phase::kRecompute, dap, layer);
    add_block_ops(prog, block_of(b), Phase::kBackward, Phase::kBackward, dap, layer);
    prog.free(MemoryKind::kWorkspace, transient, "block_backward");
    prog.free(MemoryKind::kActivations, stored[static_cast<std::size_t>(b)], "block_input");
  }
  for (const CommOp& op : evoformer_step_comm(e, p, s)) prog.add(op);  // DAP and DP/ZeRO
  return prog;
}

}  // namespace seqscale
