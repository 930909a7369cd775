// fp16 / bf16 <-> fp32 on the host, for the MPI backend's reduction ops on half types and
// for the collective benchmark's data fill and check. Round to nearest even.
#pragma once
#include <cstdint>

#include "common/half.h"
#include "workloads/dtype.h"

namespace seqscale::comm {

// The conversions themselves are the suite's one copy (common/half.h).
using ::seqscale::bf16_to_float;
using ::seqscale::float_to_bf16;
using ::seqscale::fp16_to_float;
using ::seqscale::float_to_fp16;

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
