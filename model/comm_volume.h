// The communication of one training step on one rank, as CommOps: the one place where the
// cost model's per-step volumes live. estimate() prices exactly the transformer ops
// (model/estimate.cc) and build_transformer_program() puts them in the StepProgram the
// harness runs, so the closed form, the program and the bytes a backend measures cannot
// drift apart (issue 5). Bytes follow the nccl-tests convention of comm/README.md:
// all_reduce the buffer, all_gather the gathered output, reduce_scatter the input,
// all_to_all what the rank sends, send and recv each the message. Every function here is
// checked against the bytes a strategy of comm/strategies really sends over MPI
// (tests/comm/priced_bytes_mpi_test.cpp): measured == declared == priced.
//
// ---- transformer_step_comm --------------------------------------------------------
// Per micro-batch, per layer, per pass (forward, backward, and the recompute forward of
// recompute=full), with es the bytes of the model dtype and u the Ulysses degree:
//   TP (tp > 1), group kTensor:
//     plain      2 all-reduces of s/u*b*h*es (Megatron f/g around attention and MLP,
//                Shoeybi et al. 2019; comm/strategies/tensor_parallel.cc, one per block)
//     Megatron-SP 2 (all-gather, reduce-scatter) pairs of the same size (Korthikanti et
//                al. 2022; comm/strategies/megatron_sp.cc): equal bandwidth volume, as
//                an all-reduce is a reduce-scatter plus an all-gather (ANCHORS.md s3)
//     ckpt=partitioned: one all-gather of the checkpoint before each layer's recompute
//     Megatron-SP, per step after the last backward: one all-reduce of the gradients of
//     the parameters each rank applies to its sequence shard only, 2 LayerNorms' gamma
//     and beta and the 2 row-parallel output biases, 6h a layer, plus the final
//     LayerNorm's 2h on the last stage, kGradBytes each (Megatron core
//     _allreduce_layernorm_grads; comm/strategies/megatron_sp.cc's d(gamma))
//   Ulysses (u > 1), group kSequence: 4 all-to-alls (Q, K, V in, O out; backward dO in,
//     dQ dK dV out) of s/u*b*h/tp*es each (Jacobs et al. 2023: 4Nh/P per link;
//     comm/strategies/ulysses.cc)
//   PP (pp > 1), group kPipeline, per micro-batch and per model chunk the stage holds
//     (1 for 1F1B, vpp for schedule=interleaved): forward receive of the activation
//     (unless it is virtual stage 0) and send (unless it is the last virtual stage);
//     backward receive of its gradient and send, mirrored; s*b*h/seq_shards*es each, sends
//     overlappable. Virtual stage k = chunk*pp + stage (Narayanan et al. 2021 s2.2.2:
//     the interleaved schedule cuts the bubble to (p-1)/(v m), and its communication
//     grows by v): a middle stage moves 4v messages per micro-batch, stage 0 and the last
//     stage 4v - 2 (comm/strategies/pipeline.cc, pipeline_1f1b and _interleaved).
//   ZeRO-3, group kData of dp*u ranks (DeepSpeed-Ulysses shards states over dp and sp):
//     an all-gather of the stage's parameters before each forward, backward and recompute
//     forward pass of each micro-batch (Rajbhandari et al. 2020 s7.2.2: 2 Psi gathers +
//     1 Psi reduce-scatter = 1.5x data parallelism; comm/strategies/zero.cc)
//   Vocab-parallel embedding and loss (tp > 1, group kTensor; Shoeybi et al. 2019 s3,
//     Megatron's VocabParallelEmbedding and vocab_parallel_cross_entropy; the output
//     projection untied, as GPT-NeoX; comm/strategies/vocab_parallel.cc), per micro-batch
//     with T = s*b/u' tokens (u' the Ulysses or LSS degree):
//     first stage  forward: the looked-up rows summed over the vocab slices, an
//                  all-reduce of T*h*es (Megatron-SP: a reduce-scatter; its backward an
//                  all-gather of dX)
//     last stage   forward: Megatron-SP all-gathers the final norm output (T*h*es); the
//                  loss all-reduces 3 fp32 floats a token (max logit, sum of exp, target
//                  logit: 4T bytes each); backward: d(norm output) all-reduced
//                  (Megatron-SP: reduce-scattered), T*h*es
// Per step, after the last backward, group kData of dp*u ranks:
//   zero 0 all-reduce of the gradients; 1 all-reduce + all-gather of the updated
//   parameters (optimizer phase); 2 reduce-scatter + all-gather; 3 reduce-scatter.
//
// ---- evoformer_step_comm: FastFold Dynamic Axial Parallelism ----------------------
// Cheng et al. 2022 (FastFold, ANCHORS.md s2), as its fastnn EvoformerBlock runs: the MSA
// m [R, N_res, c] (R = N_seq, c = c_m; extra-MSA blocks R = N_extra, c = c_e) is split
// along R for the row ops and along N_res for the column ops, the pair z [N_res, N_res,
// c_z] by rows, and an all-to-all switches a split. Per block and micro-batch, group
// kDap of dap ranks, es the dtype bytes and H the heads, in block order:
//   all-gather  MSA row attention pair bias      N_res^2 * H_msa * es
//   all-to-all  m rows -> columns                R * N_res * c * es / dap
//   all-gather  outer product mean right proj.   R * N_res * c_opm * es
//   all-to-all  m columns -> rows                (the same; overlaps the pair stack:
//                                                 FastFold's "duality async")
//   pair stack, z: all-gather triangle-mult outgoing projection N_res^2 * c_tri_mul * es,
//     all-to-all rows -> columns N_res^2 * c_z * es / dap, all-gather incoming projection,
//     all-to-all back; all-gather triangle-attention start bias N_res^2 * H_tri * es,
//     all-to-all, all-gather end bias, all-to-all back
// i.e. 6 all-to-alls and 6 all-gathers a block; after each stack's last block its m and z
// are all-gathered whole (FastFold's last EvoformerBlock / ExtraMSABlock: m is
// R*N_res*c*es, z N_res^2*c_z*es), whose backward is a local split. Backward mirrors them in reverse: each
// all-to-all by one of the same size, each all-gather by a reduce-scatter of the gathered
// gradient (every rank holds a partial sum of it: the strategy's, and the correct one;
// FastFold's Gather.backward only splits). recompute != none re-runs each block's
// forward collectives before its backward. Per step: the weights are replicated over the
// DAP ranks, each of which saw a shard, so their gradients are all-reduced over kDap;
// then the data-parallel / ZeRO ops above over kData of dp ranks (comm/strategies/dap.cc
// runs one block's MSA half: the row op's bias gather, both all-to-alls and their
// backward).
//
// ---- lss_attention_comm: LSS Transformer (Wang et al. 2023, ANCHORS.md s3) --------
// Per layer and micro-batch on the sp segment ranks (group kSequence): forward one fused
// all-gather of [k | v] (s*b*2*kv_width*es gathered), backward one fused reduce-scatter of
// [dk | dv] of the same size. Per step, "double gradient averaging": the replicated
// weights' gradients are all-reduced over kSequence, then over kData (comm/strategies/
// lss.cc).
//
// ---- moe_comm: expert parallelism (GShard, Lepikhin et al. 2020; DeepSpeed-MoE) ---
// Per MoE layer and micro-batch on the ep expert ranks (group kExpert), with capacity
// C = ceil(capacity_factor * T * k / E) slots per expert and source rank (T tokens a rank
// routes, top-k of E experts): forward the dispatch and combine all-to-alls and backward
// their two mirrors, each E*C*H*es sent per rank (padding makes the size independent of
// the routing). Per step: the replicated router's gradient (H*E per layer) all-reduced
// over kExpert (comm/strategies/moe.cc, where ep spans the data-parallel ranks).
// In a whole model (transformer_step_comm with a "moe" spec and plan ep > 1) the
// dispatch/combine pairs sit around each MoE layer's MLP; the router is a dense weight,
// reduced with the others over kData, and a rank's experts' gradients are reduced over
// the zero_shards/ep ranks holding the same experts (DeepSpeed's expert-data-parallel
// group, counted under kData); ZeRO shards the experts' states over that group.
//
// ---- LSS in a whole model (plan sp=lss) --------------------------------------------
// transformer_step_comm issues lss_attention_comm's ops layer by layer: the [k | v]
// all-gather in each forward (and recompute) pass, the reduce-scatter in each backward,
// k and v of this TP rank's kv heads; then the per-step kSequence all-reduce of the
// stage's gradients before the data-parallel ops over the dp ranks.
//
// estimate() prices every op of transformer_step_comm and evoformer_step_comm
// (LSS and MoE included, through the plan keys sp=lss and ep).
#pragma once
#include <cstdint>
#include <vector>

#include "model/memory.h"
#include "workloads/plan.h"
#include "workloads/specs.h"
#include "workloads/step_program.h"

namespace seqscale {

// The CommOps of one training step, in step order, on a rank of pipeline stage `stage`
// (0..pp-1). The plan must be checked (dp derived). group_size is set; crosses_nodes is
// left false (the plan-level placement is the estimate's, model/estimate.cc place()).
std::vector<CommOp> transformer_step_comm(const TransformerSpec& t, const Plan& p, const RunShape& shape,
                                          std::int32_t stage);
// Of which the vocab-parallel embedding and loss ops (empty unless tp > 1).
std::vector<CommOp> vocab_parallel_comm(const TransformerSpec& t, const Plan& p, const RunShape& shape,
                                        std::int32_t stage);

// The CommOps of one Evoformer training step (main and extra-MSA blocks) on one rank of a
// checked plan with dap ranks; shape.seq is N_res (0: the spec's). Collectives whose
// payload is zero (a dimension of 0 in the spec) are left out.
std::vector<CommOp> evoformer_step_comm(const EvoformerSpec& e, const Plan& p, const RunShape& shape);

// LSS segmented attention over sp segment ranks and dp replicas, `layers` attention layers
// with k and v each kv_width features a token. weight_grad_bytes: the gradients averaged
// per step (a whole model: kGradBytes * transformer_params). micro_batches per replica.
struct LssAttention {
  std::int64_t seq = 0, micro_batch = 1, kv_width = 0, layers = 1, micro_batches = 1;
  std::int32_t sp = 1, dp = 1;
  DType dtype = DType::kBf16;
  double weight_grad_bytes = 0;
};
std::vector<CommOp> lss_attention_comm(const LssAttention& a);

// One rank's expert-parallel step: `layers` MoE layers, each routing `tokens` tokens a
// micro-batch top_k of `experts` experts of width `hidden` over ep ranks.
struct MoeLayers {
  std::int64_t experts = 0, top_k = 1, hidden = 0, tokens = 0, layers = 1, micro_batches = 1;
  double capacity_factor = 1.25;
  std::int32_t ep = 1;
  DType dtype = DType::kBf16;
  double router_grad_bytes_per_param = kGradBytes;  // 4 for fp32 gradients
};
std::int64_t moe_capacity(const MoeLayers& m);  // slots per expert and source rank
double moe_all_to_all_bytes(const MoeLayers& m);  // what a rank sends in one of them
std::vector<CommOp> moe_comm(const MoeLayers& m);
// The MoE layers of one pipeline stage of a checked plan: the tokens a rank routes are its
// sequence shard of the micro-batch (TP ranks route the same ones).
MoeLayers moe_layers_of(const TransformerSpec& t, const Plan& p, const RunShape& shape);

}  // namespace seqscale
