// What every causal attention .cu file shares: the device view of a strided [B, S, H, D]
// operand, its construction from the parameters, and the run-time dispatch over the I/O
// dtype and the head size.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels/causal_attention/causal_attention_params.h"

namespace seqscale::causal_attention_detail {

// One [B, S, H, D] operand with element strides (head-dim stride 1); slice(b, h) points at
// its row 0, row i of the slice is slice(b, h) + i * ss.
template <typename T>
struct View {
  T* ptr;
  std::int64_t sb, ss, sh;
  __host__ __device__ T* slice(std::int64_t b, std::int64_t h) const { return ptr + b * sb + h * sh; }
};

template <typename T, typename P>
View<T> make_view(P* ptr, const BshdStrides& given, const CausalAttentionShape& s) {
  const BshdStrides st = resolve_strides(given, s);
  return {static_cast<T*>(ptr), st.batch, st.seq, st.head};
}

// f(T{}) for the I/O dtype (validated before); fp32 only where the kernel family has it
// (a compile-time choice, so the tensor-core kernels are never instantiated for float).
template <bool kAllowFp32, typename F>
void by_dtype(DType io, F&& f) {
  switch (io) {
    case DType::kFp16: return f(__half{});
    case DType::kBf16: return f(__nv_bfloat16{});
    case DType::kFp32:
      if constexpr (kAllowFp32) return f(float{});
      break;
    default: break;
  }
  throw std::invalid_argument("causal_attention: io dtype not supported by this kernel family");
}

// f(std::integral_constant<int, D>{}) for the head size (validated before).
template <typename F>
void by_head_dim(std::int64_t d, F&& f) {
  switch (d) {
    case 64: return f(std::integral_constant<int, 64>{});
    case 96: return f(std::integral_constant<int, 96>{});
    case 128: return f(std::integral_constant<int, 128>{});
    default: throw std::invalid_argument("causal_attention: shape.head_dim must be 64, 96 or 128, got " + std::to_string(d));
  }
}

}  // namespace seqscale::causal_attention_detail
