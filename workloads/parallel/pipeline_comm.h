// Pipeline parallelism on the pipeline group (kPipeline): the schedule a stage runs and
// the transfers at its boundaries, as Megatron-LM runs them (Narayanan et al. 2021).
//
// Schedule (Megatron schedules.py): warm-up forwards, steady one-forward-one-backward,
// cool-down backwards. With chunks = v > 1 model chunks per stage (the interleaved
// schedule, s2.2.2), virtual stage k = chunk * pp + stage of pp * v holds a 1/v slice of
// the stage's layers: the bubble shrinks to (p-1)/(v m) and the transfers grow v-fold.
// It needs microbatches % pp == 0.
//
// Transfers, per pass of a virtual stage, of the boundary tensor [s/seq_shards, b, h] (B
// bytes): forward receives the activation from k-1 (not at k = 0) and sends its output
// to k+1 (not at the last); backward receives the gradient from k+1 and sends to k-1.
// Send and receive are each an op of the rank's step (kSendRecv, B each).
// Scatter/gather (s4.1): with tp > 1 every TP rank holds the whole boundary tensor (the
// output of Megatron's g all-reduce), so each sends only its 1/tp slice over the
// inter-node link, B/tp, and the receiving stage all-gathers the slices over its TP
// group (NVLink): receive B/tp on kPipeline, then an all-gather of B (the gathered size)
// on kTensor. Megatron-SP leaves the boundary sharded along the sequence already (B is
// 1/tp of the tensor), so it sends its shard and gathers nothing (Megatron's
// p2p_communication.py: scatter_gather_tensors_in_pipeline and not sequence_parallel).
// Overlap: older Megatron waits on every transfer (batch_isend_irecv, then req.wait()
// and a device synchronize), so none is overlappable; with p2p_overlap=1 (Megatron's
// --overlap-p2p-communication, interleaved schedule only) the sends and receives run
// behind the neighbouring chunk's compute and are marked overlappable. The all-gather
// is never: the receiving pass needs the whole tensor before it starts.
// Consumers: model/comm_volume.cc walks the schedule and brackets each pass's layers
// with the transfers; comm/strategies/pipeline.cc runs the same schedule and transfers
// on its toy model.
#pragma once
#include <algorithm>
#include <vector>

#include "workloads/parallel/comm_ops.h"
#include "workloads/plan.h"
#include "workloads/specs.h"

namespace seqscale {

struct PipelineSlot {
  bool forward = true;
  int microbatch = 0, chunk = 0;
};

// Calls fn(PipelineSlot) for every pass stage `stage` runs, in order; chunks == 1 is
// 1F1B. No allocation: the model walks it for every priced plan.
template <typename Fn>
void for_each_pipeline_slot(int pp, int stage, int microbatches, int chunks, Fn&& fn) {
  const int total = microbatches * chunks;
  int warmup = chunks == 1 ? pp - stage - 1 : (pp - stage - 1) * 2 + (chunks - 1) * pp;
  warmup = std::min(warmup, total);
  auto slot = [&](int k, bool forward) {
    const int group = pp * chunks, in_group = k % group;
    int chunk = in_group / pp;
    if (!forward) chunk = chunks - 1 - chunk;
    return PipelineSlot{forward, (k / group) * pp + in_group % pp, chunk};
  };
  for (int k = 0; k < warmup; ++k) fn(slot(k, true));
  for (int i = 0; i < total - warmup; ++i) {
    fn(slot(warmup + i, true));
    fn(slot(i, false));
  }
  for (int k = total - warmup; k < total; ++k) fn(slot(k, false));
}
std::vector<PipelineSlot> pipeline_schedule(int pp, int stage, int microbatches, int chunks);

// Model chunks per stage: vpp for the interleaved schedule, else 1.
int pipeline_chunks(const Plan& p);

// Virtual stage k of count = pp * chunks.
struct VirtualStage {
  int k = 0, count = 1;
  bool first() const { return k == 0; }
  bool last() const { return k == count - 1; }
};
VirtualStage virtual_stage(const Plan& p, int stage, int chunk);

// B: the boundary tensor [s/seq_shards, b, h] in the model dtype.
double pipeline_boundary_bytes(const TransformerSpec& t, const Plan& p, const RunShape& shape);

// The receive that opens a pass and the send that closes it (nothing at the pipeline's
// ends, nothing when pp == 1); ph is kForward or kBackward.
void pipeline_pass_open(CommOps& ops, const TransformerSpec& t, const Plan& p, const RunShape& shape,
                        VirtualStage vs, Phase ph);
void pipeline_pass_close(CommOps& ops, const TransformerSpec& t, const Plan& p, const RunShape& shape,
                         VirtualStage vs, Phase ph);

}  // namespace seqscale
