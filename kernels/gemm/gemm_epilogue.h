// What a GEMM may fuse after its product (gemm.cuh runs them in cuBLASLt's epilogue;
// gemm_ref.h is their reference). One value of `bias` or `bias_grad` per output column.
#pragma once
#include <cstdint>

namespace seqscale {

enum class GemmEpilogue : std::uint8_t {
  kNone,
  kBias,        // C = AB + bias
  kGeluAux,     // aux = AB + bias (bias optional), C = gelu(aux), tanh GELU
  kDGeluBgrad,  // C = AB * gelu'(aux), bias_grad = column sums of C (optional)
};

}  // namespace seqscale
