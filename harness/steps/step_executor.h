// Replays a StepProgram's memory events through a BenchState: every device event becomes an
// allocation or a free (tracking allocator on CPU, stream-ordered pool on GPU). The layer
// benches (layers/transformer_layer, layers/evoformer_block) use it on the model's side
// (`bench --source model`, maxseq's prediction), where the recorded program of the point is
// replayed instead of run, so the pricing state's high-water mark is the program's peak.
// It executes no compute: a measurement runs the layer's definition on a real backend.
#pragma once
#include <cstdint>

#include "harness/bench/registry.h"
#include "workloads/step_program.h"

namespace seqscale {

// Replays the device memory events in order (host-side events are skipped: offloaded
// states live in host memory the device does not see). Returns the peak live bytes the
// replay itself reached; the allocator's own high-water mark is the measured value.
std::int64_t replay_memory_events(const StepProgram& program, BenchState& state);

}  // namespace seqscale
