// The vocabulary cross-entropy on the CPU in fp32, chunked exactly as the CUDA kernel is
// (cross_entropy.cuh): the CPU backend the `cross_entropy_*` CPU benchmarks time and check
// against the double reference (cross_entropy_ref.h). The GEMMs are plain fp32 loops
// (dot products over h, row updates for dW and d hidden); the workspace is the kernel's
// (cross_entropy_workspace for fp32 I/O), so the CPU point's tracked peak shows what
// chunking saves. Not tuned.
#pragma once
#include <cstdint>

#include "kernels/cross_entropy/cross_entropy_cost.h"

namespace seqscale {

// loss, lse [T]; workspace: cross_entropy_fwd_cost(shape, kFp32).workspace_bytes.
void cross_entropy_fwd_cpu(const float* hidden, const float* weight, const std::int32_t* targets,
                           const CrossEntropyShape& shape, float* loss, float* lse, void* workspace);
// dhidden [T, h], dweight [V, h] written; workspace: cross_entropy_bwd_cost(shape, kFp32).workspace_bytes.
void cross_entropy_bwd_cpu(const float* hidden, const float* weight, const std::int32_t* targets, const float* lse,
                           const float* dloss, const CrossEntropyShape& shape, float* dhidden, float* dweight,
                           void* workspace);

// The plain per-token cross-entropy over given fp32 logits [T, V] (row stride ld).
void cross_entropy_logits_fwd_cpu(const float* logits, std::int64_t ld, const std::int32_t* targets,
                                  std::int64_t tokens, std::int64_t vocab, float* loss, float* lse);
// dlogits may equal logits.
void cross_entropy_logits_bwd_cpu(const float* logits, std::int64_t ld, const std::int32_t* targets, const float* lse,
                                  const float* dloss, std::int64_t tokens, std::int64_t vocab, float* dlogits);

}  // namespace seqscale
