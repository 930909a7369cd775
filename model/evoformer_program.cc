#include "model/evoformer_program.h"

#include <cmath>

#include "model/memory.h"

namespace seqscale {

namespace {

std::int64_t to_bytes(double b) { return static_cast<std::int64_t>(std::llround(b)); }

void add_attention(StepProgram& prog, const char* kernel, double bt, const AttentionDims& d, double len, double dap,
                   DType dtype, bool fused, bool recompute, std::int32_t block) {
  const double f = bt * static_cast<double>(d.heads) * len * len * static_cast<double>(d.head_dim) / dap;
  const std::vector<std::int64_t> shape{static_cast<std::int64_t>(bt / dap), d.heads, static_cast<std::int64_t>(len),
                                        d.head_dim};
  if (recompute) prog.add(ComputeOp{kernel, shape, dtype, KernelCost{4.0 * f, 0, 0}, Phase::kRecompute, block});
  prog.add(ComputeOp{kernel, shape, dtype, KernelCost{(fused ? 10.0 : 8.0) * f, 0, 0}, Phase::kBackward, block});
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

  const bool fused = p.attn == AttentionImpl::kFused;
  const bool recompute = p.recompute != Recompute::kNone;
  const char* kernel = fused ? "attention_fused" : "attention_naive";
  const double n_res = static_cast<double>(s.seq), dap = p.dap;
  const double n_seq = static_cast<double>(e.n_seq), n_extra = static_cast<double>(e.n_extra);
  const std::int64_t blocks = e.blocks + e.extra_blocks;
  // The attention calls of one block (the extra-MSA stack's column attention is AF2's
  // linear-cost global attention and is left out, as in the time model).
  struct Call { double bt; AttentionDims dims; double len; };
  auto calls = [&](bool extra) {
    std::vector<Call> v;
    if (extra) {
      v.push_back({n_extra, e.extra_msa, n_res});
    } else {
      v.push_back({n_seq, e.msa, n_res});  // MSA row, pair bias
      v.push_back({n_res, e.msa, n_seq});  // MSA column
    }
    v.push_back({n_res, e.triangle, n_res});  // triangle start node
    v.push_back({n_res, e.triangle, n_res});  // triangle end node
    return v;
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
    for (const Call& c : calls(extra)) {
      const double f = c.bt * static_cast<double>(c.dims.heads) * c.len * c.len * static_cast<double>(c.dims.head_dim) / dap;
      prog.add(ComputeOp{kernel, {}, e.dtype, KernelCost{4.0 * f, 0, 0}, Phase::kForward, static_cast<std::int32_t>(b)});
    }
  }
  // Backward, last block first: recompute the block, hold its working set and the largest
  // attention module, then release the block's checkpoint.
  const std::int64_t transient = to_bytes(mb[MemTerm::kBackwardWorkingSet] + mb[MemTerm::kAttentionScores]);
  for (std::int64_t b = blocks - 1; b >= 0; --b) {
    const bool extra = b < e.extra_blocks;
    prog.alloc(MemoryKind::kWorkspace, transient, "block_backward");
    for (const Call& c : calls(extra)) {
      add_attention(prog, kernel, c.bt, c.dims, c.len, dap, e.dtype, fused, recompute, static_cast<std::int32_t>(b));
    }
    prog.free(MemoryKind::kWorkspace, transient, "block_backward");
    prog.free(MemoryKind::kActivations, stored[static_cast<std::size_t>(b)], "block_input");
  }
  return prog;
}

}  // namespace seqscale
