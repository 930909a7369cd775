#include "workloads/parallel/data_parallel_comm.h"

namespace seqscale {

void zero3_param_gather(CommOps& ops, const ReplicatedStates& s, int zero, Phase ph) {
  if (zero != 3 || s.ranks <= 1 || s.params <= 0) return;
  emit(ops, Collective::kAllGather, GroupKind::kData, s.ranks, s.param_bytes * s.params, ph, true);
}

void data_parallel_grads(CommOps& ops, const ReplicatedStates& s, int zero) {
  if (s.ranks <= 1) return;
  emit(ops, zero >= 2 ? Collective::kReduceScatter : Collective::kAllReduce, GroupKind::kData, s.ranks,
       s.grad_bytes * s.params, Phase::kBackward, true);
  if (zero == 1 || zero == 2)
    emit(ops, Collective::kAllGather, GroupKind::kData, s.ranks, s.param_bytes * s.params, Phase::kOptimizer);
}

}  // namespace seqscale
