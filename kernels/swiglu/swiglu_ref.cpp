#include "kernels/swiglu/swiglu_ref.h"

#include <cmath>

namespace seqscale {
namespace {

double sigmoid(double a) { return 1.0 / (1.0 + std::exp(-a)); }

}  // namespace

void swiglu_fwd_ref(const float* x, std::int64_t rows, std::int64_t ffn, double* y) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* a = x + r * 2 * ffn;
    const float* g = a + ffn;
    for (std::int64_t c = 0; c < ffn; ++c) y[r * ffn + c] = a[c] * sigmoid(a[c]) * g[c];
  }
}

void swiglu_bwd_ref(const float* dy, const float* x, std::int64_t rows, std::int64_t ffn, double* dx) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* a = x + r * 2 * ffn;
    const float* g = a + ffn;
    for (std::int64_t c = 0; c < ffn; ++c) {
      const double d = dy[r * ffn + c], s = sigmoid(a[c]);
      dx[r * 2 * ffn + c] = d * g[c] * s * (1.0 + a[c] * (1.0 - s));
      dx[r * 2 * ffn + ffn + c] = d * a[c] * s;
    }
  }
}

std::vector<double> swiglu_fwd_ref(const std::vector<float>& x, std::int64_t rows, std::int64_t ffn) {
  std::vector<double> y(static_cast<std::size_t>(rows * ffn));
  swiglu_fwd_ref(x.data(), rows, ffn, y.data());
  return y;
}

std::vector<double> swiglu_bwd_ref(const std::vector<float>& dy, const std::vector<float>& x, std::int64_t rows,
                                   std::int64_t ffn) {
  std::vector<double> dx(static_cast<std::size_t>(rows * 2 * ffn));
  swiglu_bwd_ref(dy.data(), x.data(), rows, ffn, dx.data());
  return dx;
}

}  // namespace seqscale
