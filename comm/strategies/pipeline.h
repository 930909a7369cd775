// Pipeline schedules (see pipeline.cc).
#pragma once
#include <vector>

#include "comm/strategies/strategy.h"

namespace seqscale::comm {

struct PipelineSlot {
  bool forward;
  int microbatch, chunk;
};

// The order in which one stage runs its forward and backward passes (Megatron's
// schedules.py): warm-up forwards, steady 1F1B, cool-down backwards. chunks == 1 is
// 1F1B; chunks > 1 is the interleaved schedule and needs microbatches % pp == 0.
std::vector<PipelineSlot> pipeline_schedule(int pp, int stage, int microbatches, int chunks);

}  // namespace seqscale::comm
