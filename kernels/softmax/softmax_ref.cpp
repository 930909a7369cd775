#include "kernels/softmax/softmax_ref.h"

#include <cmath>
#include <limits>

namespace seqscale {

std::vector<double> softmax_fwd_ref(const std::vector<float>& x, const float* mask, const float* bias,
                                    const SoftmaxShape& s, double scale) {
  std::vector<double> y(x.size());
  std::vector<double> logits(static_cast<size_t>(s.cols));
  for (std::int64_t b = 0; b < s.batch; ++b)
    for (std::int64_t n = 0; n < s.n; ++n)
      for (std::int64_t h = 0; h < s.heads; ++h)
        for (std::int64_t r = 0; r < s.rows; ++r) {
          const std::int64_t row = (((b * s.n + n) * s.heads + h) * s.rows + r);
          double mx = -std::numeric_limits<double>::infinity();
          for (std::int64_t c = 0; c < s.cols; ++c) {
            double v = scale * x[static_cast<size_t>(row * s.cols + c)];
            if (mask) v += mask[(b * s.n + n) * s.cols + c];
            if (bias) v += bias[((b * s.heads + h) * s.rows + r) * s.cols + c];
            logits[static_cast<size_t>(c)] = v;
            mx = std::max(mx, v);
          }
          double sum = 0;
          for (std::int64_t c = 0; c < s.cols; ++c) {
            const double e = std::isinf(mx) && mx < 0 ? 0.0 : std::exp(logits[static_cast<size_t>(c)] - mx);
            logits[static_cast<size_t>(c)] = e;
            sum += e;
          }
          for (std::int64_t c = 0; c < s.cols; ++c) {
            y[static_cast<size_t>(row * s.cols + c)] = sum > 0 ? logits[static_cast<size_t>(c)] / sum : 0.0;
          }
        }
  return y;
}

std::vector<double> softmax_bwd_ref(const std::vector<float>& y, const std::vector<float>& dy,
                                    const SoftmaxShape& s, double scale) {
  std::vector<double> dx(y.size());
  const std::int64_t rows = s.batch * s.n * s.heads * s.rows;
  for (std::int64_t row = 0; row < rows; ++row) {
    double dot = 0;
    for (std::int64_t c = 0; c < s.cols; ++c) dot += static_cast<double>(y[row * s.cols + c]) * dy[row * s.cols + c];
    for (std::int64_t c = 0; c < s.cols; ++c) {
      const size_t i = static_cast<size_t>(row * s.cols + c);
      dx[i] = scale * y[i] * (dy[i] - dot);
    }
  }
  return dx;
}

}  // namespace seqscale
