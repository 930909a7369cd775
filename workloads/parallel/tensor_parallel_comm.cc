#include "workloads/parallel/tensor_parallel_comm.h"

namespace seqscale {

double tensor_parallel_activation_bytes(const TransformerSpec& t, const Plan& p, const RunShape& shape) {
  const double sbh = static_cast<double>(shape.seq) * static_cast<double>(shape.micro_batch) * static_cast<double>(t.hidden);
  return static_cast<double>(dtype_bytes(t.dtype)) * sbh / p.seq_degree();
}

void sequence_parallel_grads(CommOps& ops, const Plan& p, double params, double grad_bytes) {
  if (p.tp <= 1 || p.sp != SeqParallel::kMegatron) return;
  emit(ops, Collective::kAllReduce, GroupKind::kTensor, p.tp, grad_bytes * params, Phase::kBackward, true);
}

void partitioned_checkpoint_gather(CommOps& ops, const TransformerSpec& t, const Plan& p, const RunShape& shape) {
  if (!p.ckpt_partitioned || p.tp <= 1) return;
  emit(ops, Collective::kAllGather, GroupKind::kTensor, p.tp, tensor_parallel_activation_bytes(t, p, shape),
       Phase::kRecompute);
}

}  // namespace seqscale
