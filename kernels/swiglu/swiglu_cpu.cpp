#include "kernels/swiglu/swiglu_cpu.h"

#include "kernels/swiglu/swiglu_math.h"

namespace seqscale {

void swiglu_fwd_cpu(const float* x, std::int64_t rows, std::int64_t ffn, float* y) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* a = x + r * 2 * ffn;
    for (std::int64_t c = 0; c < ffn; ++c) y[r * ffn + c] = swiglu::forward(a[c], a[ffn + c]);
  }
}

void swiglu_bwd_cpu(const float* dy, const float* x, std::int64_t rows, std::int64_t ffn, float* dx) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * 2 * ffn;
    float* dxr = dx + r * 2 * ffn;
    for (std::int64_t c = 0; c < ffn; ++c) {
      const float a = xr[c], g = xr[ffn + c], d = dy[r * ffn + c];
      dxr[c] = d * g * swiglu::silu_derivative(a);
      dxr[ffn + c] = d * a * swiglu::sigmoid(a);
    }
  }
}

}  // namespace seqscale
