#include "kernels/bias_gelu/bias_gelu_cpu.h"

#include "kernels/bias_gelu/bias_gelu_math.h"

namespace seqscale {

void bias_gelu_fwd_cpu(const float* x, const float* bias, std::int64_t rows, std::int64_t cols, float* y) {
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t c = 0; c < cols; ++c) y[r * cols + c] = gelu::forward(x[r * cols + c] + bias[c]);
  }
}

void bias_gelu_bwd_cpu(const float* dy, const float* x, const float* bias, std::int64_t rows, std::int64_t cols,
                       float* dx, float* dbias) {
  if (dbias) for (std::int64_t c = 0; c < cols; ++c) dbias[c] = 0.f;
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t c = 0; c < cols; ++c) {
      const std::int64_t i = r * cols + c;
      dx[i] = dy[i] * gelu::derivative(x[i] + bias[c]);
      if (dbias) dbias[c] += dx[i];
    }
  }
}

}  // namespace seqscale
