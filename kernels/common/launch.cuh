// What every launcher of the transformer row kernels does before it launches: validate
// its params with one-line std::invalid_argument messages that name the op and the
// field, and dispatch on the I/O dtype to a typed body:
//   require_io(op, p.io);  require(op, p.x, "x");  require_range(op, "cols", p.cols, 1, 1 << 30);
//   dispatch_io(p.io, [&](auto tag) { fwd_typed<decltype(tag)>(p, stream); });
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "workloads/dtype.h"

namespace seqscale {

inline void require(const char* op, const void* p, const char* field) {
  if (p == nullptr) throw std::invalid_argument(std::string(op) + ": " + field + " is null");
}

inline void require_range(const char* op, const char* field, std::int64_t v, std::int64_t lo, std::int64_t hi) {
  if (v < lo || v > hi) {
    throw std::invalid_argument(std::string(op) + ": " + field + " must be in [" + std::to_string(lo) + ", " +
                                std::to_string(hi) + "], got " + std::to_string(v));
  }
}

inline void require_io(const char* op, DType io) {
  if (io != DType::kFp32 && io != DType::kFp16 && io != DType::kBf16) {
    throw std::invalid_argument(std::string(op) + ": io must be fp32, fp16 or bf16, got " + std::string(dtype_name(io)));
  }
}

// fn(T{}) with T the storage type of io (float, __half, __nv_bfloat16); io checked first.
template <typename Fn>
void dispatch_io(DType io, Fn&& fn) {
  switch (io) {
    case DType::kFp32: fn(float{}); return;
    case DType::kFp16: fn(__half{}); return;
    case DType::kBf16: fn(__nv_bfloat16{}); return;
    default: throw std::invalid_argument("io must be fp32, fp16 or bf16, got " + std::string(dtype_name(io)));
  }
}

}  // namespace seqscale
