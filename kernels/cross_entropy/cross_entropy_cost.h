// Declared cost of the vocabulary cross-entropy of a language model's head: loss per
// token from hidden states [T, h] and the output projection W [V, h], chunked over the
// vocabulary (cross_entropy.cuh), and of the plain cross-entropy over given logits.
//
// Compute-bound: the logits GEMM is 2 T V h FLOPs forward and three such GEMMs backward
// (recomputed logits, dW, d hidden); the row work (max, exp, sums) adds ~5 T V. The bytes
// are the compulsory traffic: hidden and W read once, per-token fp32 loss / lse / dloss,
// targets (int32), d hidden and an fp32 dW. The chunked implementation moves more: each
// chunk's GEMM re-reads hidden, and the fp32 logits chunk is written and read back (8 T V
// bytes forward; backward also writes and re-reads dlogits): GenSLM's head at T = 32768
// (h 6144, V 50304) is 2.0e13 FLOPs (~20 ms at 1 PFLOP/s) against ~13 GB of chunk traffic
// (~3 ms at 4.8 TB/s, overlappable in principle, serial here).
//
// Workspace (the point of chunking): one chunk of logits [T, Vc] in fp32 (+ two fp32
// per-token running statistics forward; backward, for fp16/bf16 I/O, the chunk's dlogits
// in the I/O dtype for the tensor-core GEMMs and an fp32 accumulator for d hidden [T, h]).
// GenSLM at T = 32768, Vc = 1024, bf16: 134 MB forward, 1.0 GB backward, against 6.6 GB
// for the whole sequence's fp32 logits [T, V].
#pragma once
#include <algorithm>
#include <cstdint>

#include "workloads/dtype.h"
#include "workloads/step_program.h"

namespace seqscale {

struct CrossEntropyShape {
  std::int64_t tokens = 0;         // T
  std::int64_t hidden = 0;         // h
  std::int64_t vocab = 0;          // V
  std::int64_t vocab_chunk = 1024; // Vc: columns of logits live at once (clamped to V)
  std::int64_t chunk() const { return std::min(vocab_chunk, vocab); }
  std::int64_t chunks() const { return (vocab + chunk() - 1) / chunk(); }
};

// Byte offsets into the workspace; regions 256-byte aligned. `dlogits` and `dhidden_acc`
// exist only backward with fp16/bf16 I/O (fp32 I/O: dlogits overwrite the logits chunk
// and d hidden accumulates in its output).
struct CrossEntropyWorkspace {
  std::int64_t logits = 0;       // [T, Vc] fp32, row stride Vc
  std::int64_t run_max = -1;     // forward: [T] fp32
  std::int64_t run_sum = -1;     // forward: [T] fp32
  std::int64_t dlogits = -1;     // backward, half I/O: [T, Vc] in the I/O dtype
  std::int64_t dhidden_acc = -1; // backward, half I/O: [T, h] fp32
  std::int64_t bytes = 0;
};

inline CrossEntropyWorkspace cross_entropy_workspace(const CrossEntropyShape& s, DType io, bool backward) {
  const auto aligned = [](std::int64_t b) { return (b + 255) / 256 * 256; };
  CrossEntropyWorkspace w;
  std::int64_t at = aligned(s.tokens * s.chunk() * 4);
  if (!backward) {
    w.run_max = at;
    at += aligned(s.tokens * 4);
    w.run_sum = at;
    at += aligned(s.tokens * 4);
  } else if (io != DType::kFp32) {
    w.dlogits = at;
    at += aligned(s.tokens * s.chunk() * dtype_bytes(io));
    w.dhidden_acc = at;
    at += aligned(s.tokens * s.hidden * 4);
  }
  w.bytes = at;
  return w;
}

inline KernelCost cross_entropy_fwd_cost(const CrossEntropyShape& s, DType io) {
  const double t = static_cast<double>(s.tokens), h = static_cast<double>(s.hidden), v = static_cast<double>(s.vocab);
  const double es = static_cast<double>(dtype_bytes(io));
  KernelCost c;
  c.flops = 2.0 * t * v * h + 5.0 * t * v;
  c.bytes = (t * h + v * h) * es + 4.0 * t + 8.0 * t;  // hidden, W; targets; loss and lse
  c.workspace_bytes = cross_entropy_workspace(s, io, false).bytes;
  return c;
}

inline KernelCost cross_entropy_bwd_cost(const CrossEntropyShape& s, DType io) {
  const double t = static_cast<double>(s.tokens), h = static_cast<double>(s.hidden), v = static_cast<double>(s.vocab);
  const double es = static_cast<double>(dtype_bytes(io));
  KernelCost c;
  c.flops = 6.0 * t * v * h + 5.0 * t * v;  // logits again, dW, d hidden; softmax - one-hot
  // hidden, W; targets, lse, dloss; write d hidden (I/O dtype) and dW (fp32)
  c.bytes = (t * h + v * h) * es + 12.0 * t + t * h * es + 4.0 * v * h;
  c.workspace_bytes = cross_entropy_workspace(s, io, true).bytes;
  return c;
}

// The plain per-token cross-entropy over given logits [T, V] (the materialised path):
// bandwidth-bound, read the logits once (and write dlogits backward).
inline KernelCost cross_entropy_logits_fwd_cost(std::int64_t tokens, std::int64_t vocab, DType io) {
  const double t = static_cast<double>(tokens), v = static_cast<double>(vocab);
  return KernelCost{5.0 * t * v, t * v * static_cast<double>(dtype_bytes(io)) + 12.0 * t, 0};
}

inline KernelCost cross_entropy_logits_bwd_cost(std::int64_t tokens, std::int64_t vocab, DType io) {
  const double t = static_cast<double>(tokens), v = static_cast<double>(vocab);
  return KernelCost{4.0 * t * v, 2.0 * t * v * static_cast<double>(dtype_bytes(io)) + 12.0 * t, 0};
}

}  // namespace seqscale
