// Device-side loads and stores that convert between the I/O dtype and fp32 (every kernel
// does its math in fp32), and the cuBLAS data type of a DType.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <library_types.h>

#include <cstdint>
#include <stdexcept>

#include "workloads/dtype.h"

namespace seqscale {

template <typename T> __device__ __forceinline__ float load_f32(const T* p, std::int64_t i) { return static_cast<float>(p[i]); }
template <> __device__ __forceinline__ float load_f32(const __half* p, std::int64_t i) { return __half2float(p[i]); }
template <> __device__ __forceinline__ float load_f32(const __nv_bfloat16* p, std::int64_t i) { return __bfloat162float(p[i]); }

template <typename T> __device__ __forceinline__ void store_f32(T* p, std::int64_t i, float v) { p[i] = static_cast<T>(v); }
template <> __device__ __forceinline__ void store_f32(__half* p, std::int64_t i, float v) { p[i] = __float2half_rn(v); }
template <> __device__ __forceinline__ void store_f32(__nv_bfloat16* p, std::int64_t i, float v) { p[i] = __float2bfloat16_rn(v); }

inline cudaDataType_t cuda_data_type(DType t) {
  switch (t) {
    case DType::kFp32: return CUDA_R_32F;
    case DType::kFp16: return CUDA_R_16F;
    case DType::kBf16: return CUDA_R_16BF;
    default: throw std::invalid_argument("dtype must be fp32, fp16 or bf16 for cuBLAS");
  }
}

}  // namespace seqscale
