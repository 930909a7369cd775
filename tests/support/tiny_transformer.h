// The tiny transformer the comm strategies' test models correspond to (hidden h, heads,
// FFN 2h, fp32): shared by the model's comm-volume tests and the MPI priced-bytes test so
// both compare against the same description.
#pragma once
#include <cstdint>

#include "workloads/specs.h"

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

}  // namespace seqscale::testing_support
