// Tensor parallelism (Megatron-LM, Shoeybi et al. 2019) and Megatron sequence parallelism
// (Korthikanti et al. 2022) on the TP group, one parallel block at a time.
//
// A transformer layer has two parallel blocks (attention, MLP); each is bracketed by
// Megatron's conjugate operators f (before the column-parallel GEMM) and g (after the
// row-parallel GEMM). Per block and pass, on the [s/sd, b, h] activation (sd the Ulysses
// or LSS degree), es the dtype's bytes:
//   plain TP     forward g all-reduces the output, backward f all-reduces dX
//                (one all-reduce of es*s*b*h/sd per block and pass)
//   Megatron-SP  the sequence shard is all-gathered before the block and the output
//                reduce-scattered after it; backward gathers dY, reduce-scatters dX.
//                Same size as plain TP's all-reduce, and the same bus volume: an
//                all-reduce is a reduce-scatter plus an all-gather (ANCHORS.md s3).
//                Backward also gathers the block's input X again for the column-
//                parallel weight gradient: forward keeps only the shard, as Megatron's
//                LinearWithGradAccumulationAndAsyncCommunication saves it (Korthikanti
//                et al. 2022 s4.2.2); it overlaps the dX GEMM, so it is overlappable.
// Consumers: model/comm_volume.cc calls tensor_parallel_block twice per layer and pass;
// comm/strategies/tensor_parallel.cc and megatron_sp.cc run one MLP block.
#pragma once
#include "workloads/parallel/comm_ops.h"
#include "workloads/plan.h"
#include "workloads/specs.h"

namespace seqscale {

// Bytes of the block's activation [s/sd, b, h]: the all-reduce's buffer, the
// all-gather's gathered output, the reduce-scatter's input.
double tensor_parallel_activation_bytes(const TransformerSpec& t, const Plan& p, const RunShape& shape);

// One pass (forward, backward or recompute) of one parallel block. `core` appends what
// runs inside the block between the TP collectives (Ulysses or LSS around the attention
// core, MoE dispatch and combine around the experts). The order is the same in every
// pass: the gather (of X forward, of dY backward) opens the block, the reduction (of Y
// forward, of dX backward) closes it; Megatron-SP's backward re-gather of X comes just
// before that reduction (layers/transformer_layer/transformer_layer_def.h runs this order).
template <typename Core>
void tensor_parallel_block(CommOps& ops, const TransformerSpec& t, const Plan& p, const RunShape& shape, Phase ph,
                           Core&& core) {
  if (p.tp <= 1) {
    core();
    return;
  }
  const double bytes = tensor_parallel_activation_bytes(t, p, shape);
  const bool megatron_sp = p.sp == SeqParallel::kMegatron;
  if (megatron_sp) emit(ops, Collective::kAllGather, GroupKind::kTensor, p.tp, bytes, ph);
  core();
  if (megatron_sp && ph == Phase::kBackward) emit(ops, Collective::kAllGather, GroupKind::kTensor, p.tp, bytes, ph, true);
  emit(ops, megatron_sp ? Collective::kReduceScatter : Collective::kAllReduce, GroupKind::kTensor, p.tp, bytes, ph);
}
inline void tensor_parallel_block(CommOps& ops, const TransformerSpec& t, const Plan& p, const RunShape& shape,
                                  Phase ph) {
  tensor_parallel_block(ops, t, p, shape, ph, [] {});
}

// Megatron-SP, once per step after the last backward: each TP rank applies the
// replicated LayerNorms and row-parallel output biases to its own sequence shard, so
// their gradients are partial sums, all-reduced over the TP group (Megatron core
// finalize_model_grads.py, _allreduce_layernorm_grads). `params` of them, `grad_bytes`
// each; overlappable (it runs behind the data-parallel reduction).
void sequence_parallel_grads(CommOps& ops, const Plan& p, double params, double grad_bytes);

// ckpt=partitioned (DeepSpeed's partition_activations, Megatron's
// --distribute-checkpointed-activations): a layer's full-recompute checkpoint is split
// over the TP ranks and all-gathered before the layer is recomputed.
void partitioned_checkpoint_gather(CommOps& ops, const TransformerSpec& t, const Plan& p, const RunShape& shape);

}  // namespace seqscale
