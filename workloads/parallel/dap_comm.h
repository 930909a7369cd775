// Dynamic Axial Parallelism for the Evoformer (FastFold, Cheng et al. 2022; ANCHORS.md
// s2) on the dap ranks of GroupKind::kSequence (the rank layout's sequence axis), as
// FastFold's fastnn EvoformerBlock runs it.
// The MSA m [R, N_res, c] (R = N_seq, c = c_m; extra-MSA blocks R = N_extra, c = c_e) is
// split along R for the row ops and along N_res for the column ops, the pair z [N_res,
// N_res, c_z] by rows; an all-to-all switches a split, an all-gather assembles what
// every rank needs whole. Per block and micro-batch, es the dtype's bytes, b the batch,
// H the heads, in block order:
//   MSA half   all-gather  row attention's pair bias         b N_res^2 H_msa es
//              all-to-all  m rows -> columns                 es b R N_res c / dap
//              all-gather  outer product mean's right side   es b R N_res c_opm
//              all-to-all  m columns -> rows (overlappable: FastFold's "duality
//                          async" hides it behind the pair stack)
//   pair half  for the triangle multiplications (outgoing, incoming) an all-gather of
//              the projection (b N_res^2 c_tri_mul es) and an all-to-all of z
//              (b N_res^2 c_z es / dap); for the triangle attentions (starting, ending
//              node) an all-gather of the bias (b N_res^2 H_tri es) and an all-to-all
// i.e. 6 all-to-alls and 6 all-gathers a block. After a stack's last block its m and z
// are all-gathered whole (FastFold's last EvoformerBlock / ExtraMSABlock); that
// gather's backward is a local split. Backward mirrors a block in reverse: an
// all-to-all's gradient goes back by one of the same size, an all-gather's (a partial
// sum on every rank) by a reduce-scatter of the gathered size (FastFold's
// Gather.backward only splits, which is wrong for a partial sum). A collective with no
// payload (a dimension of 0) is left out.
// Per step, the replicated weights saw a shard of every block's input on each DAP rank:
// their gradients are all-reduced over the DAP ranks (kSequence), then over kData
// (data_parallel_comm.h).
// Consumers: model/comm_volume.cc for whole stacks; comm/strategies/dap.cc runs one
// block's MSA half as the stack's last.
#pragma once
#include "workloads/parallel/comm_ops.h"
#include "workloads/plan.h"
#include "workloads/specs.h"

namespace seqscale {

enum class EvoformerStack : std::uint8_t { kMain, kExtraMsa };

// One block pass: forward or recompute the MSA half then the pair half, backward their
// mirrors pair half first. Nothing unless dap > 1. shape.seq is N_res (0: the spec's).
void dap_block(CommOps& ops, const EvoformerSpec& e, const Plan& p, const RunShape& shape, EvoformerStack stack,
               Phase ph);
// The MSA half alone, in the same convention.
void dap_msa_half(CommOps& ops, const EvoformerSpec& e, const Plan& p, const RunShape& shape, EvoformerStack stack,
                  Phase ph);
// The stack's exit: its m and z all-gathered whole (forward).
void dap_stack_exit(CommOps& ops, const EvoformerSpec& e, const Plan& p, const RunShape& shape, EvoformerStack stack);
// The per-step all-reduce of the replicated weights' gradients, `grad_bytes` in all.
void dap_weight_grads(CommOps& ops, const Plan& p, double grad_bytes);

}  // namespace seqscale
