// The tiny transformer the comm strategies' test models correspond to (hidden h, heads,
// FFN 2h, vocab 64, fp32): shared by the model's comm-volume tests and the MPI priced-bytes test so
// both compare against the same description.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "workloads/specs.h"
#include "workloads/step_program.h"

namespace seqscale::testing_support {

inline TransformerSpec tiny_transformer(std::int64_t hidden, std::int64_t heads, std::int64_t layers = 1) {
  TransformerSpec t;
  t.layers = layers;
  t.hidden = hidden;
  t.heads = heads;
  t.kv_heads = heads;
  t.ffn_hidden = 2 * hidden;
  t.vocab = 64;
  t.dtype = DType::kFp32;
  return t;
}

// The layers' ops of a step: `ops` less one equal op (collective, group, phase, bytes) for
// each of `vocab` (model/comm_volume.h's vocab_parallel_comm, compared apart).
inline std::vector<CommOp> without(std::vector<CommOp> ops, const std::vector<CommOp>& vocab) {
  for (const CommOp& v : vocab) {
    const auto it = std::find_if(ops.begin(), ops.end(), [&](const CommOp& o) {
      return o.collective == v.collective && o.group == v.group && o.phase == v.phase && o.bytes == v.bytes;
    });
    if (it != ops.end()) ops.erase(it);
  }
  return ops;
}

}  // namespace seqscale::testing_support
