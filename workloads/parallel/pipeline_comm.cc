#include "workloads/parallel/pipeline_comm.h"

namespace seqscale {

namespace {

// Megatron's scatter/gather of the boundary (see the header).
bool scatter_gather(const Plan& p) { return p.tp > 1 && p.sp != SeqParallel::kMegatron; }
bool overlapped(const Plan& p) { return p.p2p_overlap && p.schedule == PipeSchedule::kInterleaved; }

bool receives(VirtualStage vs, Phase ph) { return ph == Phase::kForward ? !vs.first() : !vs.last(); }
bool sends(VirtualStage vs, Phase ph) { return ph == Phase::kForward ? !vs.last() : !vs.first(); }

// What one TP rank puts on the pipeline link: its slice of B in scatter/gather form.
double transfer_bytes(const TransformerSpec& t, const Plan& p, const RunShape& shape) {
  const double b = pipeline_boundary_bytes(t, p, shape);
  return scatter_gather(p) ? b / p.tp : b;
}

}  // namespace

std::vector<PipelineSlot> pipeline_schedule(int pp, int stage, int microbatches, int chunks) {
  std::vector<PipelineSlot> out;
  out.reserve(static_cast<std::size_t>(2 * microbatches * chunks));
  for_each_pipeline_slot(pp, stage, microbatches, chunks, [&](const PipelineSlot& s) { out.push_back(s); });
  return out;
}

int pipeline_chunks(const Plan& p) { return p.schedule == PipeSchedule::kInterleaved ? p.vpp : 1; }

VirtualStage virtual_stage(const Plan& p, int stage, int chunk) {
  return VirtualStage{chunk * p.pp + stage, p.pp * pipeline_chunks(p)};
}

double pipeline_boundary_bytes(const TransformerSpec& t, const Plan& p, const RunShape& shape) {
  const double sbh = static_cast<double>(shape.seq) * static_cast<double>(shape.micro_batch) * static_cast<double>(t.hidden);
  return static_cast<double>(dtype_bytes(t.dtype)) * sbh / p.seq_shards();
}

void pipeline_pass_open(CommOps& ops, const TransformerSpec& t, const Plan& p, const RunShape& shape,
                        VirtualStage vs, Phase ph) {
  if (p.pp <= 1 || !receives(vs, ph)) return;
  emit(ops, Collective::kSendRecv, GroupKind::kPipeline, p.pp, transfer_bytes(t, p, shape), ph, overlapped(p));
  if (scatter_gather(p))
    emit(ops, Collective::kAllGather, GroupKind::kTensor, p.tp, pipeline_boundary_bytes(t, p, shape), ph);
}

void pipeline_pass_close(CommOps& ops, const TransformerSpec& t, const Plan& p, const RunShape& shape,
                         VirtualStage vs, Phase ph) {
  if (p.pp <= 1 || !sends(vs, ph)) return;
  emit(ops, Collective::kSendRecv, GroupKind::kPipeline, p.pp, transfer_bytes(t, p, shape), ph, overlapped(p));
}

}  // namespace seqscale
