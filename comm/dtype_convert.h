// fp16 / bf16 <-> fp32 on the host, for the MPI backend's reduction ops on half types and
// for the collective benchmark's data fill and check. Round to nearest even.
#pragma once
#include <cstdint>
#include <cstring>

#include "workloads/dtype.h"

namespace seqscale::comm {

inline float bf16_to_float(std::uint16_t h) {
  const std::uint32_t u = static_cast<std::uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline std::uint16_t float_to_bf16(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40);  // NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(u >> 16);
}

inline float fp16_to_float(std::uint16_t h) {
  const std::uint32_t sign = (h & 0x8000u) << 16;
  std::uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ffu, u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((man & 0x400u) == 0) {
        man <<= 1;
        --exp;
      }
      u = sign | (exp << 23) | ((man & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (man << 13);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline std::uint16_t float_to_fp16(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  const std::uint16_t sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
  const std::uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00u;                // NaN
  if (a >= 0x477ff000u) return sign | 0x7c00u;               // overflow -> inf
  if (a < 0x38800000u) {                                     // subnormal or zero
    if (a < 0x33000000u) return sign;
    const std::uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u;
    const int shift = 126 - static_cast<int>(e);             // 14..24
    std::uint32_t r = m >> shift;
    const std::uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return sign | static_cast<std::uint16_t>(r);
  }
  std::uint32_t r = ((a >> 13) - ((127 - 15) << 10));
  const std::uint32_t rem = a & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;
  return sign | static_cast<std::uint16_t>(r);
}

// Element i of a typed host buffer as double, and back (fill and check helpers).
inline double load_as_double(const void* p, std::int64_t i, DType t) {
  switch (t) {
    case DType::kFp32: return static_cast<const float*>(p)[i];
    case DType::kFp16: return fp16_to_float(static_cast<const std::uint16_t*>(p)[i]);
    case DType::kBf16: return bf16_to_float(static_cast<const std::uint16_t*>(p)[i]);
    case DType::kBool: return static_cast<const std::uint8_t*>(p)[i];
    case DType::kInt32: return static_cast<const std::int32_t*>(p)[i];
    case DType::kInt64: return static_cast<double>(static_cast<const std::int64_t*>(p)[i]);
  }
  return 0;
}
inline void store_from_double(void* p, std::int64_t i, DType t, double v) {
  switch (t) {
    case DType::kFp32: static_cast<float*>(p)[i] = static_cast<float>(v); break;
    case DType::kFp16: static_cast<std::uint16_t*>(p)[i] = float_to_fp16(static_cast<float>(v)); break;
    case DType::kBf16: static_cast<std::uint16_t*>(p)[i] = float_to_bf16(static_cast<float>(v)); break;
    case DType::kBool: static_cast<std::uint8_t*>(p)[i] = v != 0; break;
    case DType::kInt32: static_cast<std::int32_t*>(p)[i] = static_cast<std::int32_t>(v); break;
    case DType::kInt64: static_cast<std::int64_t*>(p)[i] = static_cast<std::int64_t>(v); break;
  }
}

}  // namespace seqscale::comm
