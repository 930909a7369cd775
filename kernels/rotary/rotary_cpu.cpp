#include "kernels/rotary/rotary_cpu.h"

#include <cmath>
#include <vector>

namespace seqscale {

void rotary_cpu(const float* in, float* out, const RotaryShape& shape, bool inverse) {
  constexpr double kTwoPi = 6.283185307179586476925;
  const std::int64_t d = shape.head_dim, h = shape.rotary_dims / 2;
  std::vector<double> inv_freq(static_cast<std::size_t>(h));
  for (std::int64_t i = 0; i < h; ++i) {
    inv_freq[static_cast<std::size_t>(i)] = std::pow(shape.base, -2.0 * static_cast<double>(i) / static_cast<double>(shape.rotary_dims));
  }
  std::vector<float> cs(static_cast<std::size_t>(2 * h));
  for (std::int64_t token = 0; token < shape.batch * shape.seq; ++token) {
    const auto pos = static_cast<double>(token % shape.seq + shape.position_offset);
    for (std::int64_t i = 0; i < h; ++i) {
      const double theta = pos * inv_freq[static_cast<std::size_t>(i)];
      const auto r = static_cast<float>(theta - std::nearbyint(theta / kTwoPi) * kTwoPi);
      cs[static_cast<std::size_t>(2 * i)] = std::cos(r);
      cs[static_cast<std::size_t>(2 * i + 1)] = inverse ? -std::sin(r) : std::sin(r);
    }
    for (std::int64_t head = 0; head < shape.heads; ++head) {
      const std::int64_t base = (token * shape.heads + head) * d;
      for (std::int64_t i = 0; i < h; ++i) {
        const float c = cs[static_cast<std::size_t>(2 * i)], s = cs[static_cast<std::size_t>(2 * i + 1)];
        const float a = in[base + i], b = in[base + h + i];
        out[base + i] = a * c - b * s;
        out[base + h + i] = b * c + a * s;
      }
      if (out != in) for (std::int64_t j = 2 * h; j < d; ++j) out[base + j] = in[base + j];
    }
  }
}

}  // namespace seqscale
