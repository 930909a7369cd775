#include "kernels/bias_gelu/bias_gelu_ref.h"

#include <cmath>

namespace seqscale {
namespace {

constexpr double kSqrt2OverPi = 0.79788456080286535588;  // sqrt(2 / pi)
constexpr double kCubic = 0.044715;

}  // namespace

double gelu_tanh_ref(double z) { return 0.5 * z * (1.0 + std::tanh(kSqrt2OverPi * (z + kCubic * z * z * z))); }

// d/dz of 0.5 z (1 + tanh(u(z))): 0.5 (1 + tanh u) + 0.5 z (1 - tanh^2 u) u'(z).
double gelu_tanh_grad_ref(double z) {
  const double t = std::tanh(kSqrt2OverPi * (z + kCubic * z * z * z));
  return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * kSqrt2OverPi * (1.0 + 3.0 * kCubic * z * z);
}

void bias_gelu_fwd_ref(const float* x, const float* bias, std::int64_t rows, std::int64_t cols, double* y) {
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t c = 0; c < cols; ++c) {
      y[r * cols + c] = gelu_tanh_ref(static_cast<double>(x[r * cols + c]) + bias[c]);
    }
  }
}

void bias_gelu_bwd_ref(const float* dy, const float* x, const float* bias, std::int64_t rows, std::int64_t cols,
                       double* dx, double* dbias) {
  if (dbias) for (std::int64_t c = 0; c < cols; ++c) dbias[c] = 0;
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t c = 0; c < cols; ++c) {
      const std::int64_t i = r * cols + c;
      const double g = static_cast<double>(dy[i]) * gelu_tanh_grad_ref(static_cast<double>(x[i]) + bias[c]);
      dx[i] = g;
      if (dbias) dbias[c] += g;
    }
  }
}

std::vector<double> bias_gelu_fwd_ref(const std::vector<float>& x, const std::vector<float>& bias, std::int64_t rows,
                                      std::int64_t cols) {
  std::vector<double> y(static_cast<std::size_t>(rows * cols));
  bias_gelu_fwd_ref(x.data(), bias.data(), rows, cols, y.data());
  return y;
}

BiasGeluRefGrads bias_gelu_bwd_ref(const std::vector<float>& dy, const std::vector<float>& x,
                                   const std::vector<float>& bias, std::int64_t rows, std::int64_t cols) {
  BiasGeluRefGrads g;
  g.dx.resize(static_cast<std::size_t>(rows * cols));
  g.dbias.resize(static_cast<std::size_t>(cols));
  bias_gelu_bwd_ref(dy.data(), x.data(), bias.data(), rows, cols, g.dx.data(), g.dbias.data());
  return g;
}

}  // namespace seqscale
