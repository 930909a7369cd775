#include "kernels/softmax/softmax_cpu.h"

#include <cmath>
#include <limits>
#include <vector>

namespace seqscale {

void softmax_fwd_cpu(const float* x, float* y, const float* mask, const float* bias, const SoftmaxShape& s,
                     float scale) {
  std::vector<float> logits(static_cast<std::size_t>(s.cols));
  for (std::int64_t b = 0; b < s.batch; ++b)
    for (std::int64_t n = 0; n < s.n; ++n)
      for (std::int64_t h = 0; h < s.heads; ++h)
        for (std::int64_t r = 0; r < s.rows; ++r) {
          const std::int64_t row = ((b * s.n + n) * s.heads + h) * s.rows + r;
          const float* mrow = mask ? mask + (b * s.n + n) * s.cols : nullptr;
          const float* brow = bias ? bias + ((b * s.heads + h) * s.rows + r) * s.cols : nullptr;
          float mx = -std::numeric_limits<float>::infinity();
          for (std::int64_t c = 0; c < s.cols; ++c) {
            float v = scale * x[row * s.cols + c];
            if (mrow) v += mrow[c];
            if (brow) v += brow[c];
            logits[static_cast<std::size_t>(c)] = v;
            mx = std::max(mx, v);
          }
          float sum = 0;
          for (std::int64_t c = 0; c < s.cols; ++c) {
            const float e = std::isinf(mx) && mx < 0 ? 0.f : std::exp(logits[static_cast<std::size_t>(c)] - mx);
            logits[static_cast<std::size_t>(c)] = e;
            sum += e;
          }
          const float inv = sum > 0 ? 1.f / sum : 0.f;
          for (std::int64_t c = 0; c < s.cols; ++c) y[row * s.cols + c] = logits[static_cast<std::size_t>(c)] * inv;
        }
}

}  // namespace seqscale
