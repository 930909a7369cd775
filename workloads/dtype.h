// Element types shared by workloads, kernels' cost declarations and the model.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace seqscale {

enum class DType : std::uint8_t { kFp32, kFp16, kBf16, kBool, kInt32, kInt64 };

constexpr std::int64_t dtype_bytes(DType t) {
  switch (t) {
    case DType::kFp32: return 4;
    case DType::kFp16: return 2;
    case DType::kBf16: return 2;
    case DType::kBool: return 1;
    case DType::kInt32: return 4;
    case DType::kInt64: return 8;
  }
  return 0;
}

std::string_view dtype_name(DType t);
// Returns false for an unknown name; callers turn that into a field-naming error.
bool parse_dtype(std::string_view name, DType* out);

}  // namespace seqscale
