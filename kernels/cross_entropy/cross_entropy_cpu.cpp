#include "kernels/cross_entropy/cross_entropy_cpu.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace seqscale {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// One chunk of a token's logits (columns [col0, col0 + cols)) folded into its running
// (max, sum of exp) by the rule of the kernel's ce_chunk_stats (two passes here, one
// online pass there); the last chunk writes lse and loss.
void chunk_stats(const float* row, std::int64_t cols, std::int64_t col0, std::int64_t vocab, std::int32_t tgt,
                 bool first, bool last, float* run_max, float* run_sum, float* loss, float* lse) {
  float mx = -kInf;
  for (std::int64_t c = 0; c < cols; ++c) mx = std::max(mx, row[c]);
  float sum = 0.f;
  if (mx != -kInf) for (std::int64_t c = 0; c < cols; ++c) sum += std::exp(row[c] - mx);
  if (tgt >= col0 && tgt < col0 + cols) *loss = row[tgt - col0];  // the target logit, until the last chunk
  if (!first) {
    const float mn = std::max(*run_max, mx);
    sum = (*run_max == -kInf ? 0.f : *run_sum * std::exp(*run_max - mn)) + (mx == -kInf ? 0.f : sum * std::exp(mx - mn));
    mx = mn;
  }
  if (!last) {
    *run_max = mx;
    *run_sum = sum;
    return;
  }
  *lse = mx + std::log(sum);
  *loss = tgt < 0 ? 0.f : (tgt >= vocab ? kNaN : *lse - *loss);
}

float token_grad_scale(std::int32_t tgt, std::int64_t vocab, float dloss) {
  return tgt < 0 ? 0.f : (tgt >= vocab ? kNaN : dloss);
}

// logits [T, nc] (row stride ld) = hidden [T, h] x W_c [nc, h]^T
void logits_chunk(const float* hidden, const float* w_c, std::int64_t tokens, std::int64_t nc, std::int64_t h,
                  float* logits, std::int64_t ld) {
  for (std::int64_t t = 0; t < tokens; ++t) {
    const float* x = hidden + t * h;
    for (std::int64_t v = 0; v < nc; ++v) {
      const float* w = w_c + v * h;
      float acc = 0.f;
      for (std::int64_t k = 0; k < h; ++k) acc += x[k] * w[k];
      logits[t * ld + v] = acc;
    }
  }
}

}  // namespace

void cross_entropy_logits_fwd_cpu(const float* logits, std::int64_t ld, const std::int32_t* targets,
                                  std::int64_t tokens, std::int64_t vocab, float* loss, float* lse) {
  for (std::int64_t t = 0; t < tokens; ++t) {
    chunk_stats(logits + t * ld, vocab, 0, vocab, targets[t], true, true, nullptr, nullptr, loss + t, lse + t);
  }
}

void cross_entropy_logits_bwd_cpu(const float* logits, std::int64_t ld, const std::int32_t* targets, const float* lse,
                                  const float* dloss, std::int64_t tokens, std::int64_t vocab, float* dlogits) {
  for (std::int64_t t = 0; t < tokens; ++t) {
    const float g = token_grad_scale(targets[t], vocab, dloss[t]);
    for (std::int64_t v = 0; v < vocab; ++v) {
      const float p = std::exp(logits[t * ld + v] - lse[t]);
      dlogits[t * ld + v] = g * (v == targets[t] ? p - 1.f : p);
    }
  }
}

void cross_entropy_fwd_cpu(const float* hidden, const float* weight, const std::int32_t* targets,
                           const CrossEntropyShape& s, float* loss, float* lse, void* workspace) {
  const CrossEntropyWorkspace w = cross_entropy_workspace(s, DType::kFp32, false);
  auto* ws = static_cast<unsigned char*>(workspace);
  auto* logits = reinterpret_cast<float*>(ws + w.logits);
  auto* run_max = reinterpret_cast<float*>(ws + w.run_max);
  auto* run_sum = reinterpret_cast<float*>(ws + w.run_sum);
  const std::int64_t vc = s.chunk(), chunks = s.chunks();
  for (std::int64_t c = 0; c < chunks; ++c) {
    const std::int64_t v0 = c * vc, nc = std::min(vc, s.vocab - v0);
    logits_chunk(hidden, weight + v0 * s.hidden, s.tokens, nc, s.hidden, logits, vc);
    for (std::int64_t t = 0; t < s.tokens; ++t) {
      chunk_stats(logits + t * vc, nc, v0, s.vocab, targets[t], c == 0, c == chunks - 1, run_max + t, run_sum + t,
                  loss + t, lse + t);
    }
  }
}

void cross_entropy_bwd_cpu(const float* hidden, const float* weight, const std::int32_t* targets, const float* lse,
                           const float* dloss, const CrossEntropyShape& s, float* dhidden, float* dweight,
                           void* workspace) {
  const CrossEntropyWorkspace w = cross_entropy_workspace(s, DType::kFp32, true);
  auto* logits = reinterpret_cast<float*>(static_cast<unsigned char*>(workspace) + w.logits);
  const std::int64_t vc = s.chunk(), chunks = s.chunks(), h = s.hidden;
  std::fill(dhidden, dhidden + s.tokens * h, 0.f);
  for (std::int64_t c = 0; c < chunks; ++c) {
    const std::int64_t v0 = c * vc, nc = std::min(vc, s.vocab - v0);
    const float* w_c = weight + v0 * h;
    logits_chunk(hidden, w_c, s.tokens, nc, h, logits, vc);
    for (std::int64_t t = 0; t < s.tokens; ++t) {  // d logits in place
      const float g = token_grad_scale(targets[t], s.vocab, dloss[t]);
      for (std::int64_t v = 0; v < nc; ++v) {
        const float p = std::exp(logits[t * vc + v] - lse[t]);
        logits[t * vc + v] = g * (v0 + v == targets[t] ? p - 1.f : p);
      }
    }
    float* dw_c = dweight + v0 * h;
    std::fill(dw_c, dw_c + nc * h, 0.f);
    for (std::int64_t t = 0; t < s.tokens; ++t) {
      const float* x = hidden + t * h;
      float* dh = dhidden + t * h;
      for (std::int64_t v = 0; v < nc; ++v) {
        const float d = logits[t * vc + v];
        const float* wv = w_c + v * h;
        float* dwv = dw_c + v * h;
        for (std::int64_t k = 0; k < h; ++k) {
          dwv[k] += d * x[k];
          dh[k] += d * wv[k];
        }
      }
    }
  }
}

}  // namespace seqscale
