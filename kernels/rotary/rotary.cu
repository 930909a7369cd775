// rotary: RoPE in the rotate-half convention on x [batch, seq, heads, head_dim] (rotary.cuh).
// One CTA per tile of kTokens tokens (every head of each):
//   1. the tile's (token, pair) angles: theta = p * inv_freq[i] in double, reduced to
//      [-pi, pi] in double (exact to ~1e-10 rad up to p ~ 1e6), then fp32 sincosf, into
//      shared memory; once per token, not once per head (GenSLM: 64x fewer);
//   2. every (row, pack) of the tile: a pack of kVec pairs (i, i + h) is rotated, or,
//      out of place, a pack of pass-through dims is copied. Consecutive threads take
//      consecutive packs of a row, then the next row: coalesced within the rotated span.
// kVec: the largest of 8, 4, 2, 1 elements (16 bytes at most) dividing h, the pass-through
// width and head_dim, with aligned pointers: GenSLM's h = 12 takes 4 (8-byte accesses),
// Llama's h = 64 takes 8. Floor: 1 read + 1 write of each touched element ->
// bandwidth-bound (rotary_cost.h); in place touches only the rotated dims.
#include "kernels/rotary/rotary.cuh"

#include <algorithm>
#include <cmath>

#include "common/check_cuda.h"
#include "kernels/common/launch.cuh"
#include "kernels/common/pack.cuh"

namespace seqscale {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxPairs = 128;  // head_dim <= 256
constexpr int kMaxTokensPerBlock = 16;
constexpr double kTwoPi = 6.283185307179586476925;
constexpr double kInvTwoPi = 0.159154943091895335769;

// base^(-2i / r) for i < r / 2, computed once on the host in double; 1 KB of kernel parameters.
struct InvFreq {
  double v[kMaxPairs];
};

struct Shape {
  std::int64_t tokens;  // batch * seq
  std::int64_t seq, heads, position_offset;
  int head_dim, half, pass;  // half = rotary_dims / 2; pass = head_dim - rotary_dims
  int tokens_per_block;
  float sin_sign;  // +1 forward, -1 backward (rotation by -theta)
};

// ---- kernels ----------------------------------------------------------------------------

// in and out may alias (in place): no __restrict__ on them. Grid: ceil(tokens / tokens_per_block).
template <typename T, int kVec, bool kCopyPass>
__global__ void __launch_bounds__(kThreads) rotary_kernel(const T* in, T* out, Shape sh, InvFreq inv_freq) {
  __shared__ float2 cos_sin[kMaxTokensPerBlock * kMaxPairs];
  const std::int64_t t0 = static_cast<std::int64_t>(blockIdx.x) * sh.tokens_per_block;
  const int tile_tokens = static_cast<int>(sh.tokens - t0 < sh.tokens_per_block ? sh.tokens - t0 : sh.tokens_per_block);

  for (int k = threadIdx.x; k < tile_tokens * sh.half; k += kThreads) {
    const int i = k % sh.half;
    const std::int64_t pos = (t0 + k / sh.half) % sh.seq + sh.position_offset;
    const double theta = static_cast<double>(pos) * inv_freq.v[i];
    const float r = static_cast<float>(fma(-rint(theta * kInvTwoPi), kTwoPi, theta));
    float s, c;
    sincosf(r, &s, &c);
    cos_sin[k] = make_float2(c, sh.sin_sign * s);
  }
  __syncthreads();

  const int pair_packs = sh.half / kVec;
  const int packs_per_row = pair_packs + (kCopyPass ? sh.pass / kVec : 0);
  const int tile_items = tile_tokens * static_cast<int>(sh.heads) * packs_per_row;
  for (int item = threadIdx.x; item < tile_items; item += kThreads) {
    const int local_row = item / packs_per_row, j = item - local_row * packs_per_row;
    const std::int64_t base = (t0 * sh.heads + local_row) * sh.head_dim;
    if (j < pair_packs) {
      const int i0 = j * kVec;
      const float2* cs = cos_sin + (local_row / sh.heads) * sh.half + i0;
      float x1[kVec], x2[kVec];
      load_pack<T, kVec>(in + base + i0, x1);
      load_pack<T, kVec>(in + base + sh.half + i0, x2);
#pragma unroll
      for (int k = 0; k < kVec; ++k) {
        const float c = cs[k].x, s = cs[k].y, a = x1[k], b = x2[k];
        x1[k] = a * c - b * s;
        x2[k] = b * c + a * s;
      }
      store_pack<T, kVec>(out + base + i0, x1);
      store_pack<T, kVec>(out + base + sh.half + i0, x2);
    } else if constexpr (kCopyPass) {
      const std::int64_t at = base + 2 * sh.half + (j - pair_packs) * kVec;
      float v[kVec];
      load_pack<T, kVec>(in + at, v);
      store_pack<T, kVec>(out + at, v);
    }
  }
}

// ---- launcher (validates params, picks the variant) --------------------------------------

template <typename T, int kVec>
void launch(const RotaryParams& p, const Shape& sh, const InvFreq& f, cudaStream_t s) {
  const auto blocks = static_cast<unsigned>((sh.tokens + sh.tokens_per_block - 1) / sh.tokens_per_block);
  const auto* in = static_cast<const T*>(p.in);
  auto* out = static_cast<T*>(p.out);
  if (p.in == p.out) rotary_kernel<T, kVec, false><<<blocks, kThreads, 0, s>>>(in, out, sh, f);
  else rotary_kernel<T, kVec, true><<<blocks, kThreads, 0, s>>>(in, out, sh, f);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void run_typed(const RotaryParams& p, const Shape& sh, const InvFreq& f, cudaStream_t s) {
  // The pass-through width counts only when it is copied (out of place).
  const std::int64_t pass = p.in == p.out ? 0 : sh.pass;
  switch (max_pack(sizeof(T), {sh.head_dim, sh.half, pass}, {p.in, p.out})) {
    case 8:
      if constexpr (kMaxPack<T> >= 8) return launch<T, 8>(p, sh, f, s);
      break;
    case 4: return launch<T, 4>(p, sh, f, s);
    case 2: return launch<T, 2>(p, sh, f, s);
    default: break;
  }
  launch<T, 1>(p, sh, f, s);
}

void run(const char* op, const RotaryParams& p, float sin_sign, cudaStream_t stream) {
  const RotaryShape& r = p.shape;
  require_range(op, "batch", r.batch, 0, std::int64_t{1} << 31);
  require_range(op, "seq", r.seq, 0, std::int64_t{1} << 31);
  require_range(op, "heads", r.heads, 1, 1 << 16);
  require_range(op, "head_dim", r.head_dim, 1, 2 * kMaxPairs);
  require_range(op, "rotary_dims", r.rotary_dims, 0, r.head_dim);
  if (r.rotary_dims % 2 != 0) {
    throw std::invalid_argument(std::string(op) + ": rotary_dims must be even (rotate-half), got " +
                                std::to_string(r.rotary_dims));
  }
  require_range(op, "position_offset", r.position_offset, 0, std::int64_t{1} << 40);
  if (!(r.base > 1.0) || !std::isfinite(r.base)) {
    throw std::invalid_argument(std::string(op) + ": base must be finite and > 1, got " + std::to_string(r.base));
  }
  require_io(op, p.io);
  const std::int64_t tokens = r.batch * r.seq;
  require_range(op, "batch * seq", tokens, 0, (std::int64_t{1} << 31) - 1);
  if (tokens == 0) return;
  require(op, p.in, "in");
  require(op, p.out, "out");
  const bool in_place = p.in == p.out;
  if (r.rotary_dims == 0 && in_place) return;  // nothing rotated, nothing to copy
  Shape sh{};
  sh.tokens = tokens;
  sh.seq = r.seq;
  sh.heads = r.heads;
  sh.position_offset = r.position_offset;
  sh.head_dim = static_cast<int>(r.head_dim);
  sh.half = static_cast<int>(r.rotary_dims / 2);
  sh.pass = static_cast<int>(r.head_dim - r.rotary_dims);
  sh.sin_sign = sin_sign;
  // ~16 touched elements per thread and tile: GenSLM in place (64 heads x 24 dims) takes
  // 2 tokens a CTA, out of place (64 x 96) 1; small problems up to 16 tokens.
  const std::int64_t touched_per_token = r.heads * (in_place ? r.rotary_dims : r.head_dim);
  sh.tokens_per_block = static_cast<int>(std::clamp<std::int64_t>(16 * kThreads / touched_per_token, 1, kMaxTokensPerBlock));
  InvFreq f{};
  for (int i = 0; i < sh.half; ++i) f.v[i] = std::pow(r.base, -2.0 * i / static_cast<double>(r.rotary_dims));
  dispatch_io(p.io, [&](auto tag) { run_typed<decltype(tag)>(p, sh, f, stream); });
}

}  // namespace

void rotary_fwd(const RotaryParams& p, cudaStream_t stream) { run("rotary_fwd", p, 1.f, stream); }
void rotary_bwd(const RotaryParams& p, cudaStream_t stream) { run("rotary_bwd", p, -1.f, stream); }

}  // namespace seqscale
