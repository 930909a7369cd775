// The communication of one transformer training step on one rank, as CommOps: the one
// place where the cost model's per-step volumes live. estimate() prices exactly these ops
// (model/estimate.cc) and build_transformer_program() puts them in the StepProgram the
// harness runs, so the closed form, the program and the bytes a backend measures cannot
// drift apart (issue 5). Bytes follow the nccl-tests convention of comm/README.md:
// all_reduce the buffer, all_gather the gathered output, reduce_scatter the input,
// all_to_all what the rank sends, send and recv each the message.
//
// Per micro-batch, per layer, per pass (forward, backward, and the recompute forward of
// recompute=full), with es the bytes of the model dtype and u the Ulysses degree:
//   TP (tp > 1), group kTensor:
//     plain      2 all-reduces of s/u*b*h*es (Megatron f/g around attention and MLP,
//                Shoeybi et al. 2019; comm/strategies/tensor_parallel.cc, one per block)
//     Megatron-SP 2 (all-gather, reduce-scatter) pairs of the same size (Korthikanti et
//                al. 2022; comm/strategies/megatron_sp.cc): equal bandwidth volume, as
//                an all-reduce is a reduce-scatter plus an all-gather (ANCHORS.md s3)
//     ckpt=partitioned: one all-gather of the checkpoint before each layer's recompute
//   Ulysses (u > 1), group kSequence: 4 all-to-alls (Q, K, V in, O out; backward dO in,
//     dQ dK dV out) of s/u*b*h/tp*es each (Jacobs et al. 2023: 4Nh/P per link;
//     comm/strategies/ulysses.cc)
//   PP (pp > 1), group kPipeline, per micro-batch: forward receive of the activation
//     (stage > 0) and send (stage < pp-1); backward receive of its gradient (stage < pp-1)
//     and send (stage > 0); s*b*h/seq_shards*es each; sends overlappable
//     (comm/strategies/pipeline.cc, 1F1B; interleaved chunks are not modelled: see below)
//   ZeRO-3, group kData of dp*u ranks (DeepSpeed-Ulysses shards states over dp and sp):
//     an all-gather of the stage's parameters before each forward, backward and recompute
//     forward pass of each micro-batch (Rajbhandari et al. 2020 s7.2.2: 2 Psi gathers +
//     1 Psi reduce-scatter = 1.5x data parallelism; comm/strategies/zero.cc)
// Per step, after the last backward, group kData of dp*u ranks:
//   zero 0 all-reduce of the gradients; 1 all-reduce + all-gather of the updated
//   parameters (optimizer phase); 2 reduce-scatter + all-gather; 3 reduce-scatter.
// Not modelled (known gaps): the LayerNorm-gradient all-reduce of Megatron-SP (2h per
// layer, tiny), the interleaved schedule's vpp-fold point-to-point traffic, the embedding
// and loss (vocab-parallel) collectives, MoE expert all-to-alls, Evoformer DAP.
#pragma once
#include <cstdint>
#include <vector>

#include "model/plan.h"
#include "workloads/specs.h"
#include "workloads/step_program.h"

namespace seqscale {

// The CommOps of one training step, in step order, on a rank of pipeline stage `stage`
// (0..pp-1). The plan must be checked (dp derived). group_size is set; crosses_nodes is
// left false (the plan-level placement is the estimate's, model/estimate.cc place()).
std::vector<CommOp> transformer_step_comm(const TransformerSpec& t, const Plan& p, const RunShape& shape,
                                          std::int32_t stage);

}  // namespace seqscale
