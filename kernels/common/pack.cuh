// Packed global loads and stores: kN elements of T in one access of kN * sizeof(T) bytes
// (16 bytes at most: one LDG.128 / STG.128), converted to and from fp32 registers. The
// bandwidth-bound kernels (bias_gelu, swiglu, rmsnorm, rotary, cross_entropy) take kN as a
// template parameter and fall back to kN = 1 when a row length or a pointer does not
// allow it: max_pack() says which. Why: a bf16 kernel moving 2 bytes per load instruction
// needs 8x the instructions, and 8x the threads, to keep the same bytes in flight that
// HBM3's bandwidth-latency product asks for (Little's law).
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include "kernels/common/convert.cuh"

namespace seqscale {

template <typename T, int kN>
struct alignas(sizeof(T) * kN) Pack {
  T v[kN];
};

// Largest kN the hardware moves in one access for T: 16 B.
template <typename T> inline constexpr int kMaxPack = static_cast<int>(16 / sizeof(T));

template <typename T, int kN>
__device__ __forceinline__ void load_pack(const T* p, float (&out)[kN]) {
  const Pack<T, kN> pk = *reinterpret_cast<const Pack<T, kN>*>(p);
#pragma unroll
  for (int i = 0; i < kN; ++i) out[i] = load_f32(pk.v, i);
}

template <typename T, int kN>
__device__ __forceinline__ void store_pack(T* p, const float (&in)[kN]) {
  Pack<T, kN> pk;
#pragma unroll
  for (int i = 0; i < kN; ++i) store_f32(pk.v, i, in[i]);
  *reinterpret_cast<Pack<T, kN>*>(p) = pk;
}

// Largest pack (a power of two <= kMaxPack<T>, in elements) that divides every length in
// `lengths` (row lengths and offsets, in elements) and to whose byte size every pointer
// in `ptrs` is aligned (nullptrs ignored). 1 when nothing larger fits.
inline int max_pack(std::size_t elem_bytes, std::initializer_list<std::int64_t> lengths,
                    std::initializer_list<const void*> ptrs) {
  int n = static_cast<int>(16 / elem_bytes);
  for (; n > 1; n /= 2) {
    bool ok = true;
    for (std::int64_t len : lengths) ok = ok && len % n == 0;
    for (const void* p : ptrs) ok = ok && (p == nullptr || reinterpret_cast<std::uintptr_t>(p) % (n * elem_bytes) == 0);
    if (ok) break;
  }
  return n;
}

}  // namespace seqscale
