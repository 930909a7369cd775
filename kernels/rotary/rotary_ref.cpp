#include "kernels/rotary/rotary_ref.h"

#include <cmath>

namespace seqscale {

std::vector<double> rotary_rows_ref(const std::vector<float>& in, const std::vector<std::int64_t>& positions,
                                    const RotaryShape& shape, bool inverse) {
  const std::int64_t d = shape.head_dim, h = shape.rotary_dims / 2;
  std::vector<double> out(in.begin(), in.end());  // the pass-through dims
  for (std::size_t k = 0; k < positions.size(); ++k) {
    const std::int64_t base = static_cast<std::int64_t>(k) * d;
    for (std::int64_t i = 0; i < h; ++i) {
      const double theta = static_cast<double>(positions[k]) *
                           std::pow(shape.base, -2.0 * static_cast<double>(i) / static_cast<double>(shape.rotary_dims));
      const double c = std::cos(theta), s = inverse ? -std::sin(theta) : std::sin(theta);
      const double a = in[static_cast<std::size_t>(base + i)], b = in[static_cast<std::size_t>(base + h + i)];
      out[static_cast<std::size_t>(base + i)] = a * c - b * s;
      out[static_cast<std::size_t>(base + h + i)] = b * c + a * s;
    }
  }
  return out;
}

std::vector<double> rotary_ref(const std::vector<float>& in, const RotaryShape& shape, bool inverse) {
  std::vector<std::int64_t> positions(static_cast<std::size_t>(shape.rows()));
  for (std::int64_t r = 0; r < shape.rows(); ++r) positions[static_cast<std::size_t>(r)] = shape.position_of_row(r);
  return rotary_rows_ref(in, positions, shape, inverse);
}

}  // namespace seqscale
