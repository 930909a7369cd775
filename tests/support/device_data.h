// GPU tests: move float data to the device in a kernel's I/O dtype and back. upload()
// also returns the values as the kernel sees them (rounded to the dtype), which is what a
// CPU reference must be fed for a fair comparison.
#pragma once
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "common/half.h"
#include "workloads/dtype.h"

namespace seqscale::testing_support {

inline void* upload(const std::vector<float>& v, DType t, std::vector<float>* rounded) {
  const auto es = static_cast<size_t>(dtype_bytes(t));
  std::vector<std::uint8_t> bytes(v.size() * es);
  rounded->resize(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    float r = v[i];
    if (t == DType::kFp32) {
      std::memcpy(&bytes[i * 4], &r, 4);
    } else {
      const std::uint16_t h = t == DType::kFp16 ? float_to_fp16(r) : float_to_bf16(r);
      r = t == DType::kFp16 ? fp16_to_float(h) : bf16_to_float(h);
      std::memcpy(&bytes[i * 2], &h, 2);
    }
    (*rounded)[i] = r;
  }
  void* d = nullptr;
  EXPECT_EQ(cudaMalloc(&d, bytes.size() + 16), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(d, bytes.data(), bytes.size(), cudaMemcpyHostToDevice), cudaSuccess);
  return d;
}

inline std::vector<float> download(const void* d, size_t n, DType t) {
  const auto es = static_cast<size_t>(dtype_bytes(t));
  std::vector<std::uint8_t> bytes(n * es);
  EXPECT_EQ(cudaMemcpy(bytes.data(), d, bytes.size(), cudaMemcpyDeviceToHost), cudaSuccess);
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) {
    if (t == DType::kFp32) {
      std::memcpy(&out[i], &bytes[i * 4], 4);
    } else {
      std::uint16_t h;
      std::memcpy(&h, &bytes[i * 2], 2);
      out[i] = t == DType::kFp16 ? fp16_to_float(h) : bf16_to_float(h);
    }
  }
  return out;
}

}  // namespace seqscale::testing_support
