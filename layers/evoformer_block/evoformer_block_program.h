// The StepProgram of one AlphaFold2 Evoformer block, forward then backward, recorded by
// running layers/evoformer_block/evoformer_block_def.h on a backend that executes nothing:
// every backend call becomes a ComputeOp with its FLOPs and compulsory bytes, every
// alloc/release a MemoryEvent. Because the CPU reference and the CUDA backend run the same
// text, the program prices exactly the tensors and kernels that are measured, unlike
// evoformer_program.cc, which lays a whole model out from memory.cc's closed form.
//
// Element sizes (what the GPU kernels store):
//   activations and workspaces      `dtype`, except the fp32 ones below
//   LayerNorm mean / rstd           fp32 (tags "layernorm_mean", "layernorm_rstd")
//   d(pair bias)                    fp32 (tag "d_pair_bias"; both attention paths accumulate
//                                   it in fp32, EvoformerAttnGrads::d_pair)
//   naive attention                 probabilities [rows, H, L, L] kept in `dtype` from forward
//                                   to release_saved; a same-sized dP workspace in backward
//   fused attention                 fp32 log-sum-exp [rows, H, L] kept; fp32 row_dot
//                                   [rows, H, L] workspace in backward
//   parameters                      `dtype` (MemoryKind::kParameters)
//   parameter gradients             fp32 (MemoryKind::kGradients)
// The caller-side tensors (m0, z0, dm_out, dz_out, dm0, dz0) are allocated as activations
// before forward; after backward m0, z0, dm_out and dz_out are freed, while dm0, dz0 (the
// gradients handed to the previous block), the parameters and the gradients stay live.
#pragma once
#include <cstdint>

#include "layers/evoformer_block/evoformer_block_def.h"
#include "workloads/dtype.h"
#include "workloads/step_program.h"

namespace seqscale {

StepProgram build_evoformer_block_program(const EvoformerBlockDims& d, DType dtype, bool fused_attention);

struct EvoformerBlockTotals {
  double fwd_flops = 0, bwd_flops = 0;
  std::int64_t peak_bytes = 0;   // replayed device peak, parameters and gradients included
  std::int64_t param_count = 0;  // elements
};

EvoformerBlockTotals evoformer_block_totals(const EvoformerBlockDims& d, DType dtype, bool fused_attention);

// The same program, built once per (dims, dtype, attention) on this thread: estimate()
// prices a block per plan it evaluates, and a block program is ~1000 ops.
const StepProgram& evoformer_block_program_cached(const EvoformerBlockDims& d, DType dtype, bool fused_attention);

}  // namespace seqscale
