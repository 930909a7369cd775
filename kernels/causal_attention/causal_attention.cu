// Status: compiles for sm_80/sm_90; not yet run on a GPU (its tests skip without one).
// causal_attention entry points: validate (one line naming the field, before any launch),
// compute D_i = dO_i . O_i for a backward, and hand over to the tensor-core or SIMT
// kernels (causal_attention.cuh says which runs when).
#include "kernels/causal_attention/causal_attention.cuh"

#include <algorithm>

#include "kernels/causal_attention/causal_attention_view.cuh"
#include "common/check_cuda.h"
#include "kernels/common/convert.cuh"

namespace seqscale {
namespace {

using causal_attention_detail::View;

// D_i = dO_i . O_i in fp32 from the stored (rounded) O, as FlashAttention does; one warp per
// row (b, h, i), grid-stride; lanes read D / 32 strided elements each.
template <typename T>
__global__ void row_dot_kernel(View<const T> d_o, View<const T> o, float* __restrict__ out, std::int64_t heads,
                               std::int64_t seq, int dim, std::int64_t rows) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  const std::int64_t warps = static_cast<std::int64_t>(gridDim.x) * (blockDim.x / 32);
  for (std::int64_t row = blockIdx.x * static_cast<std::int64_t>(blockDim.x / 32) + threadIdx.x / 32; row < rows;
       row += warps) {
    const std::int64_t i = row % seq, bh = row / seq, b = bh / heads, h = bh % heads;
    const T* a = d_o.slice(b, h) + i * d_o.ss;
    const T* c = o.slice(b, h) + i * o.ss;
    float s = 0.f;
    for (int d = lane; d < dim; d += 32) s += load_f32(a, d) * load_f32(c, d);
    for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
    if (lane == 0) out[row] = s;  // [B, H, S]: row = (b * H + h) * S + i
  }
}

}  // namespace

void causal_attention_row_dot(const CausalAttentionParams& p, const CausalAttentionGrads& g, cudaStream_t stream) {
  const CausalAttentionShape& s = p.shape;
  const std::int64_t rows = s.rows();
  const auto grid = static_cast<unsigned>(std::min<std::int64_t>((rows + 7) / 8, 1 << 20));
  causal_attention_detail::by_dtype</*kAllowFp32=*/true>(p.io, [&](auto t) {
    using T = decltype(t);
    using causal_attention_detail::make_view;
    row_dot_kernel<T><<<grid, 256, 0, stream>>>(make_view<const T>(g.d_o, g.d_o_strides, s),
                                                make_view<const T>(p.o, p.o_strides, s), g.row_dot, s.heads, s.seq,
                                                static_cast<int>(s.head_dim), rows);
    CUDA_CHECK_LAUNCH();
  });
}

void causal_attention_fwd(const CausalAttentionParams& p, cudaStream_t stream) {
  causal_attention_validate_fwd(p);
  if (causal_attention_uses_tc(p)) {
    causal_attention_fwd_tc(p, stream);
  } else {
    causal_attention_fwd_simt(p, stream);
  }
}

void causal_attention_bwd(const CausalAttentionParams& p, const CausalAttentionGrads& g, cudaStream_t stream) {
  causal_attention_validate_bwd(p, g);
  causal_attention_row_dot(p, g, stream);
  if (causal_attention_uses_tc(p)) {
    causal_attention_bwd_tc(p, g, stream);
  } else {
    causal_attention_bwd_simt(p, g, stream);
  }
}

}  // namespace seqscale
