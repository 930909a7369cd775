#include "layers/transformer_layer/transformer_layer_cpu.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace seqscale {

namespace {
constexpr double kNormEps = 1e-5;
constexpr double kRotaryBase = 10000.0;               // GPT-NeoX rotary_emb_base
constexpr double kGeluC = 0.7978845608028654;         // sqrt(2 / pi)
double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
}  // namespace

template <typename S>
TransformerCpuOpsT<S>::TransformerCpuOpsT(AllocFn alloc, FreeFn free, HostCollectives* comm)
    : alloc_(std::move(alloc)), free_(std::move(free)), comm_(comm) {
  if (comm_ && !std::is_same_v<S, float>) {
    throw std::invalid_argument("transformer layer: the double reference runs on one process (no collectives)");
  }
}

template <typename S>
TransformerCpuOpsT<S>::~TransformerCpuOpsT() {
  for (const auto& [p, bytes] : sizes_) {
    if (free_) free_(p);
    else ::operator delete(p);
  }
}

template <typename S>
auto TransformerCpuOpsT<S>::alloc(std::int64_t n, Elem elem, MemoryKind, const char* what) -> Tensor {
  if (n <= 0) throw std::invalid_argument(std::string("transformer layer: empty tensor ") + what);
  const std::int64_t bytes = n * elem_bytes(elem);
  void* raw = alloc_ ? alloc_(static_cast<std::size_t>(bytes)) : ::operator new(static_cast<std::size_t>(bytes));
  // Zeroed: Adam's moments start at zero and a few outputs are accumulated into.
  std::fill_n(static_cast<unsigned char*>(raw), bytes, 0);
  sizes_[raw] = bytes;
  live_bytes_ += bytes;
  peak_bytes_ = std::max(peak_bytes_, live_bytes_);
  Tensor t;
  t.raw = raw;
  t.p = elem == Elem::kIo || elem == Elem::kFp32 ? static_cast<S*>(raw) : nullptr;
  t.n = n;
  t.elem = elem;
  return t;
}

template <typename S>
void TransformerCpuOpsT<S>::release(Tensor& t) {
  auto it = sizes_.find(t.raw);
  if (it == sizes_.end()) throw std::logic_error("transformer layer: release of a tensor the backend does not own");
  live_bytes_ -= it->second;
  sizes_.erase(it);
  if (free_) free_(t.raw);
  else ::operator delete(t.raw);
  t = Tensor{};
}

// ---- norms -----------------------------------------------------------------------------------

template <typename S>
void TransformerCpuOpsT<S>::layernorm_fwd(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, Tensor& mean,
                                          Tensor& rstd, std::int64_t rows, std::int64_t cols) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const S* xr = x.p + r * cols;
    double mu = 0, var = 0;
    for (std::int64_t c = 0; c < cols; ++c) mu += xr[c];
    mu /= static_cast<double>(cols);
    for (std::int64_t c = 0; c < cols; ++c) var += (xr[c] - mu) * (xr[c] - mu);
    const double rs = 1.0 / std::sqrt(var / static_cast<double>(cols) + kNormEps);
    mean.p[r] = static_cast<S>(mu);
    rstd.p[r] = static_cast<S>(rs);
    for (std::int64_t c = 0; c < cols; ++c) y.p[r * cols + c] = static_cast<S>((xr[c] - mu) * rs * w.p[c] + b.p[c]);
  }
}

template <typename S>
void TransformerCpuOpsT<S>::layernorm_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& mean,
                                          const Tensor& rstd, Tensor& dx, Tensor& dw, Tensor& db, std::int64_t rows,
                                          std::int64_t cols) {
  std::fill_n(dw.p, cols, S{0});
  std::fill_n(db.p, cols, S{0});
  const double inv_c = 1.0 / static_cast<double>(cols);
  for (std::int64_t r = 0; r < rows; ++r) {
    const S* xr = x.p + r * cols;
    const S* dyr = dy.p + r * cols;
    const double mu = mean.p[r], rs = rstd.p[r];
    double sum_g = 0, sum_gx = 0;
    for (std::int64_t c = 0; c < cols; ++c) {
      const double xhat = (xr[c] - mu) * rs, g = static_cast<double>(dyr[c]) * w.p[c];
      sum_g += g;
      sum_gx += g * xhat;
      dw.p[c] += static_cast<S>(dyr[c] * xhat);
      db.p[c] += dyr[c];
    }
    for (std::int64_t c = 0; c < cols; ++c) {
      const double xhat = (xr[c] - mu) * rs;
      dx.p[r * cols + c] = static_cast<S>(rs * (static_cast<double>(dyr[c]) * w.p[c] - inv_c * sum_g - xhat * inv_c * sum_gx));
    }
  }
}

template <typename S>
void TransformerCpuOpsT<S>::rmsnorm_fwd(const Tensor& x, const Tensor& w, Tensor& y, Tensor& rstd, std::int64_t rows,
                                        std::int64_t cols) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const S* xr = x.p + r * cols;
    double ms = 0;
    for (std::int64_t c = 0; c < cols; ++c) ms += static_cast<double>(xr[c]) * xr[c];
    const double rs = 1.0 / std::sqrt(ms / static_cast<double>(cols) + kNormEps);
    rstd.p[r] = static_cast<S>(rs);
    for (std::int64_t c = 0; c < cols; ++c) y.p[r * cols + c] = static_cast<S>(xr[c] * rs * w.p[c]);
  }
}

template <typename S>
void TransformerCpuOpsT<S>::rmsnorm_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd,
                                        Tensor& dx, Tensor& dw, std::int64_t rows, std::int64_t cols) {
  std::fill_n(dw.p, cols, S{0});
  const double inv_c = 1.0 / static_cast<double>(cols);
  for (std::int64_t r = 0; r < rows; ++r) {
    const S* xr = x.p + r * cols;
    const S* dyr = dy.p + r * cols;
    const double rs = rstd.p[r];
    double sum_gx = 0;  // sum of (dy w) xhat
    for (std::int64_t c = 0; c < cols; ++c) {
      const double xhat = xr[c] * rs;
      sum_gx += static_cast<double>(dyr[c]) * w.p[c] * xhat;
      dw.p[c] += static_cast<S>(dyr[c] * xhat);
    }
    for (std::int64_t c = 0; c < cols; ++c) {
      const double xhat = xr[c] * rs;
      dx.p[r * cols + c] = static_cast<S>(rs * (static_cast<double>(dyr[c]) * w.p[c] - xhat * inv_c * sum_gx));
    }
  }
}

// ---- GEMM: loop orders that keep the innermost loop contiguous (vectorisable) ---------------

template <typename S>
void TransformerCpuOpsT<S>::gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha,
                                 const Tensor& a, const Tensor& b, double beta, Tensor& c) {
  S* C = c.p;
  const S* A = a.p;
  const S* B = b.p;
  if (beta == 0.0) std::fill_n(C, m * n, S{0});
  else if (beta != 1.0) for (std::int64_t i = 0; i < m * n; ++i) C[i] = static_cast<S>(C[i] * beta);
  const S al = static_cast<S>(alpha);
  if (!tb) {
    // C[i, :] += alpha op(A)[i, kk] B[kk, :]; with ta, kk outer so A's rows stream once.
    if (!ta) {
      for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t kk = 0; kk < k; ++kk) {
          const S av = al * A[i * k + kk];
          const S* Br = B + kk * n;
          S* Cr = C + i * n;
          for (std::int64_t j = 0; j < n; ++j) Cr[j] += av * Br[j];
        }
    } else {
      for (std::int64_t kk = 0; kk < k; ++kk)
        for (std::int64_t i = 0; i < m; ++i) {
          const S av = al * A[kk * m + i];
          const S* Br = B + kk * n;
          S* Cr = C + i * n;
          for (std::int64_t j = 0; j < n; ++j) Cr[j] += av * Br[j];
        }
    }
    return;
  }
  // B stored [n, k]: dot products along k.
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      S acc = 0;
      const S* Bj = B + j * k;
      if (!ta) {
        const S* Ai = A + i * k;
        for (std::int64_t kk = 0; kk < k; ++kk) acc += Ai[kk] * Bj[kk];
      } else {
        for (std::int64_t kk = 0; kk < k; ++kk) acc += A[kk * m + i] * Bj[kk];
      }
      C[i * n + j] += al * acc;
    }
}

// ---- elementwise -----------------------------------------------------------------------------

template <typename S>
void TransformerCpuOpsT<S>::bias_add(Tensor& y, const Tensor& b, std::int64_t rows, std::int64_t cols) {
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) y.p[r * cols + c] += b.p[c];
}

template <typename S>
void TransformerCpuOpsT<S>::bias_grad(const Tensor& dy, Tensor& db, std::int64_t rows, std::int64_t cols) {
  std::fill_n(db.p, cols, S{0});
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) db.p[c] += dy.p[r * cols + c];
}

// The fused GEMMs: the GEMM into the output, then the epilogue in place, element by element
// (each element read before it is written), so nothing beyond the def's tensors is held.
template <typename S>
void TransformerCpuOpsT<S>::gemm_bias(std::int64_t m, std::int64_t n, std::int64_t k, const Tensor& a, const Tensor& w,
                                      const Tensor& b, Tensor& c) {
  gemm(false, false, m, n, k, 1.0, a, w, 0.0, c);
  bias_add(c, b, m, n);
}

template <typename S>
void TransformerCpuOpsT<S>::gemm_gelu(std::int64_t m, std::int64_t n, std::int64_t k, const Tensor& a, const Tensor& w,
                                      const Tensor* b, Tensor& u, Tensor& out) {
  gemm(false, false, m, n, k, 1.0, a, w, 0.0, u);
  if (b) bias_add(u, *b, m, n);
  for (std::int64_t i = 0; i < m * n; ++i) {
    const double z = u.p[i];
    out.p[i] = static_cast<S>(0.5 * z * (1.0 + std::tanh(kGeluC * (z + 0.044715 * z * z * z))));
  }
}

template <typename S>
void TransformerCpuOpsT<S>::gemm_dgelu(std::int64_t m, std::int64_t n, std::int64_t k, const Tensor& da,
                                       const Tensor& w, const Tensor& u, Tensor& du, Tensor* db) {
  gemm(false, true, m, n, k, 1.0, da, w, 0.0, du);
  for (std::int64_t i = 0; i < m * n; ++i) {
    const double z = u.p[i];
    const double t = std::tanh(kGeluC * (z + 0.044715 * z * z * z));
    const double g = 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * kGeluC * (1.0 + 3.0 * 0.044715 * z * z);
    du.p[i] = static_cast<S>(du.p[i] * g);
  }
  if (db) bias_grad(du, *db, m, n);
}

template <typename S>
void TransformerCpuOpsT<S>::swiglu_fwd(const Tensor& gu, Tensor& a, std::int64_t rows, std::int64_t f) {
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < f; ++c) {
      const double g = gu.p[r * 2 * f + c], up = gu.p[r * 2 * f + f + c];
      a.p[r * f + c] = static_cast<S>(g * sigmoid(g) * up);
    }
}

template <typename S>
void TransformerCpuOpsT<S>::swiglu_bwd(const Tensor& da, const Tensor& gu, Tensor& dgu, std::int64_t rows, std::int64_t f) {
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < f; ++c) {
      const double g = gu.p[r * 2 * f + c], up = gu.p[r * 2 * f + f + c], d = da.p[r * f + c];
      const double sg = sigmoid(g);
      dgu.p[r * 2 * f + c] = static_cast<S>(d * up * sg * (1.0 + g * (1.0 - sg)));
      dgu.p[r * 2 * f + f + c] = static_cast<S>(d * g * sg);
    }
}

template <typename S>
void TransformerCpuOpsT<S>::add(const Tensor& a, const Tensor& b, Tensor& y, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) y.p[i] = a.p[i] + b.p[i];
}

template <typename S>
void TransformerCpuOpsT<S>::accumulate(Tensor& y, const Tensor& x, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) y.p[i] += x.p[i];
}

template <typename S>
void TransformerCpuOpsT<S>::copy(const Tensor& x, Tensor& y, std::int64_t n) {
  std::copy_n(x.p, n, y.p);
}

// GPT-NeoX rotate_half on the first rot_dims of each head: pairs (i, i + rot/2) rotated by
// pos * base^(-2i/rot). The inverse (backward) rotates by the opposite angle.
template <typename S>
void TransformerCpuOpsT<S>::rotary(Tensor& x, std::int64_t batch, std::int64_t seq, std::int64_t heads,
                                   std::int64_t head_dim, std::int64_t rot_dims, bool inverse) {
  const std::int64_t half = rot_dims / 2;
  std::vector<double> cs(static_cast<std::size_t>(half)), sn(static_cast<std::size_t>(half));
  for (std::int64_t pos = 0; pos < seq; ++pos) {
    for (std::int64_t i = 0; i < half; ++i) {
      const double theta = static_cast<double>(pos) * std::pow(kRotaryBase, -2.0 * static_cast<double>(i) / static_cast<double>(rot_dims));
      cs[static_cast<std::size_t>(i)] = std::cos(theta);
      sn[static_cast<std::size_t>(i)] = inverse ? -std::sin(theta) : std::sin(theta);
    }
    for (std::int64_t b = 0; b < batch; ++b)
      for (std::int64_t h = 0; h < heads; ++h) {
        S* xh = x.p + ((b * seq + pos) * heads + h) * head_dim;
        for (std::int64_t i = 0; i < half; ++i) {
          const double x1 = xh[i], x2 = xh[i + half];
          const double c = cs[static_cast<std::size_t>(i)], s = sn[static_cast<std::size_t>(i)];
          xh[i] = static_cast<S>(x1 * c - x2 * s);
          xh[i + half] = static_cast<S>(x2 * c + x1 * s);
        }
      }
  }
}

// ---- attention -------------------------------------------------------------------------------
// [b, s, heads, d] layout; query head h reads key/value head h / (heads / kv_heads).

template <typename S>
void TransformerCpuOpsT<S>::attention_fwd(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& o, Tensor& lse,
                                          std::int64_t batch, std::int64_t seq, std::int64_t heads,
                                          std::int64_t kv_heads, std::int64_t d) {
  const std::int64_t g = heads / kv_heads;
  const S scale = static_cast<S>(1.0 / std::sqrt(static_cast<double>(d)));
  std::vector<S> p(static_cast<std::size_t>(seq));
  std::vector<S> acc(static_cast<std::size_t>(d));
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t h = 0; h < heads; ++h) {
      const std::int64_t kh = h / g;
      for (std::int64_t i = 0; i < seq; ++i) {
        const S* qi = q.p + ((b * seq + i) * heads + h) * d;
        S mx = -std::numeric_limits<S>::infinity();
        for (std::int64_t j = 0; j <= i; ++j) {  // causal: keys after the query are never read
          const S* kj = k.p + ((b * seq + j) * kv_heads + kh) * d;
          S dot = 0;
          for (std::int64_t t = 0; t < d; ++t) dot += qi[t] * kj[t];
          p[static_cast<std::size_t>(j)] = dot * scale;
          mx = std::max(mx, p[static_cast<std::size_t>(j)]);
        }
        S sum = 0;
        for (std::int64_t j = 0; j <= i; ++j) sum += (p[static_cast<std::size_t>(j)] = std::exp(p[static_cast<std::size_t>(j)] - mx));
        std::fill(acc.begin(), acc.end(), S{0});
        for (std::int64_t j = 0; j <= i; ++j) {
          const S* vj = v.p + ((b * seq + j) * kv_heads + kh) * d;
          const S pj = p[static_cast<std::size_t>(j)];
          for (std::int64_t t = 0; t < d; ++t) acc[static_cast<std::size_t>(t)] += pj * vj[t];
        }
        S* oi = o.p + ((b * seq + i) * heads + h) * d;
        for (std::int64_t t = 0; t < d; ++t) oi[t] = acc[static_cast<std::size_t>(t)] / sum;
        lse.p[(b * heads + h) * seq + i] = mx + std::log(sum);
      }
    }
}

// FlashAttention-2's backward: D_i = dO_i . O_i into row_dot first, then per (i, j <= i)
// P_ij recomputed from the log-sum-exp, dS_ij = P_ij (dO_i . V_j - D_i).
template <typename S>
void TransformerCpuOpsT<S>::attention_bwd(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                                          const Tensor& lse, const Tensor& d_o, Tensor& row_dot, Tensor& dq, Tensor& dk,
                                          Tensor& dv, std::int64_t batch, std::int64_t seq, std::int64_t heads,
                                          std::int64_t kv_heads, std::int64_t d) {
  const std::int64_t g = heads / kv_heads;
  const S scale = static_cast<S>(1.0 / std::sqrt(static_cast<double>(d)));
  std::fill_n(dq.p, dq.n, S{0});
  std::fill_n(dk.p, dk.n, S{0});
  std::fill_n(dv.p, dv.n, S{0});
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t h = 0; h < heads; ++h)
      for (std::int64_t i = 0; i < seq; ++i) {
        const S* doi = d_o.p + ((b * seq + i) * heads + h) * d;
        const S* oi = o.p + ((b * seq + i) * heads + h) * d;
        S acc = 0;
        for (std::int64_t t = 0; t < d; ++t) acc += doi[t] * oi[t];
        row_dot.p[(b * heads + h) * seq + i] = acc;
      }
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t h = 0; h < heads; ++h) {
      const std::int64_t kh = h / g;
      for (std::int64_t i = 0; i < seq; ++i) {
        const S* qi = q.p + ((b * seq + i) * heads + h) * d;
        const S* doi = d_o.p + ((b * seq + i) * heads + h) * d;
        S* dqi = dq.p + ((b * seq + i) * heads + h) * d;
        const S l = lse.p[(b * heads + h) * seq + i], di = row_dot.p[(b * heads + h) * seq + i];
        for (std::int64_t j = 0; j <= i; ++j) {
          const std::int64_t kv_off = ((b * seq + j) * kv_heads + kh) * d;
          const S* kj = k.p + kv_off;
          const S* vj = v.p + kv_off;
          S qk = 0, dp = 0;
          for (std::int64_t t = 0; t < d; ++t) {
            qk += qi[t] * kj[t];
            dp += doi[t] * vj[t];
          }
          const S pij = std::exp(qk * scale - l);
          const S ds = pij * (dp - di) * scale;
          S* dkj = dk.p + kv_off;
          S* dvj = dv.p + kv_off;
          for (std::int64_t t = 0; t < d; ++t) {
            dqi[t] += ds * kj[t];
            dkj[t] += ds * qi[t];
            dvj[t] += pij * doi[t];
          }
        }
      }
    }
}

template <typename S>
void TransformerCpuOpsT<S>::head_scores(const Tensor& x, const Tensor& y, Tensor& out, std::int64_t batch,
                                        std::int64_t seq, std::int64_t heads, std::int64_t y_heads, std::int64_t d,
                                        double alpha) {
  const std::int64_t g = heads / y_heads;
  const S al = static_cast<S>(alpha);
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t h = 0; h < heads; ++h)
      for (std::int64_t i = 0; i < seq; ++i) {
        const S* xi = x.p + ((b * seq + i) * heads + h) * d;
        S* row = out.p + ((b * heads + h) * seq + i) * seq;
        for (std::int64_t j = 0; j < seq; ++j) {
          const S* yj = y.p + ((b * seq + j) * y_heads + h / g) * d;
          S dot = 0;
          for (std::int64_t t = 0; t < d; ++t) dot += xi[t] * yj[t];
          row[j] = al * dot;
        }
      }
}

template <typename S>
void TransformerCpuOpsT<S>::head_probs_times(const Tensor& p, const Tensor& y, Tensor& out, std::int64_t batch,
                                             std::int64_t seq, std::int64_t heads, std::int64_t y_heads, std::int64_t d,
                                             double alpha) {
  const std::int64_t g = heads / y_heads;
  const S al = static_cast<S>(alpha);
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t h = 0; h < heads; ++h)
      for (std::int64_t i = 0; i < seq; ++i) {
        const S* row = p.p + ((b * heads + h) * seq + i) * seq;
        S* oi = out.p + ((b * seq + i) * heads + h) * d;
        std::fill_n(oi, d, S{0});
        for (std::int64_t j = 0; j < seq; ++j) {
          const S pj = al * row[j];
          const S* yj = y.p + ((b * seq + j) * y_heads + h / g) * d;
          for (std::int64_t t = 0; t < d; ++t) oi[t] += pj * yj[t];
        }
      }
}

template <typename S>
void TransformerCpuOpsT<S>::head_probs_t_times(const Tensor& p, const Tensor& x, Tensor& out, std::int64_t batch,
                                               std::int64_t seq, std::int64_t heads, std::int64_t out_heads,
                                               std::int64_t d, double alpha) {
  const std::int64_t g = heads / out_heads;
  const S al = static_cast<S>(alpha);
  std::fill_n(out.p, out.n, S{0});
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t h = 0; h < heads; ++h)
      for (std::int64_t i = 0; i < seq; ++i) {
        const S* row = p.p + ((b * heads + h) * seq + i) * seq;
        const S* xi = x.p + ((b * seq + i) * heads + h) * d;
        for (std::int64_t j = 0; j < seq; ++j) {
          const S pj = al * row[j];
          S* oj = out.p + ((b * seq + j) * out_heads + h / g) * d;
          for (std::int64_t t = 0; t < d; ++t) oj[t] += pj * xi[t];
        }
      }
}

template <typename S>
void TransformerCpuOpsT<S>::masked_softmax(const Tensor& scores, const Tensor* mask, Tensor& probs, std::int64_t batch,
                                           std::int64_t heads, std::int64_t seq) {
  const auto keep = [&](std::int64_t i, std::int64_t j) {
    if (!mask) return j <= i;
    return mask->elem == Elem::kBool ? mask->u8()[i * seq + j] != 0 : mask->p[i * seq + j] > S(0.5);
  };
  for (std::int64_t r = 0; r < batch * heads; ++r)
    for (std::int64_t i = 0; i < seq; ++i) {
      const S* x = scores.p + (r * seq + i) * seq;
      S* y = probs.p + (r * seq + i) * seq;
      double mx = -std::numeric_limits<double>::infinity();
      for (std::int64_t j = 0; j < seq; ++j)
        if (keep(i, j)) mx = std::max(mx, static_cast<double>(x[j]));
      double sum = 0;
      for (std::int64_t j = 0; j < seq; ++j) {
        const double e = keep(i, j) ? std::exp(x[j] - mx) : 0.0;
        y[j] = static_cast<S>(e);
        sum += e;
      }
      for (std::int64_t j = 0; j < seq; ++j) y[j] = static_cast<S>(y[j] / sum);
    }
}

template <typename S>
void TransformerCpuOpsT<S>::softmax_bwd(const Tensor& dp, const Tensor& p, Tensor& ds, std::int64_t rows, std::int64_t cols) {
  for (std::int64_t r = 0; r < rows; ++r) {
    double dot = 0;
    for (std::int64_t c = 0; c < cols; ++c) dot += static_cast<double>(dp.p[r * cols + c]) * p.p[r * cols + c];
    for (std::int64_t c = 0; c < cols; ++c) ds.p[r * cols + c] = static_cast<S>(p.p[r * cols + c] * (dp.p[r * cols + c] - dot));
  }
}

// ---- collectives ---------------------------------------------------------------------------------

template <typename S>
void TransformerCpuOpsT<S>::collective(const CommOp& op, const Tensor& send, Tensor& recv, Reduction reduction) {
  (void)reduction;  // a copy on one process reduces nothing
  const std::int64_t g = op.group_size;
  // The element count the op's bytes stand for (comm_ops.h's convention) and what the
  // tensors hold must agree: the definition took this op from the emitter the model
  // prices, so a difference is the two drifting apart.
  const std::int64_t moved = op.collective == Collective::kAllGather ? recv.n : send.n;
  const std::int64_t expected_recv = op.collective == Collective::kAllGather       ? send.n * g
                                     : op.collective == Collective::kReduceScatter ? send.n / g
                                                                                   : send.n;
  const bool blocks = op.collective == Collective::kReduceScatter || op.collective == Collective::kAllToAll;
  if (moved * dtype_bytes(io_dtype()) != op.bytes || recv.n != expected_recv || (blocks && send.n % g != 0)) {
    throw std::logic_error("transformer layer: " + std::string(collective_name(op.collective)) + " of " +
                           std::to_string(op.bytes) + " B on " + std::to_string(g) + " ranks does not fit tensors of " +
                           std::to_string(send.n) + " -> " + std::to_string(recv.n) + " elements");
  }
  if (comm_) {
    if (comm_->group_size(op.group) != g) {
      throw std::logic_error("transformer layer: the communicator's " + std::string(group_name(op.group)) + " group has " +
                             std::to_string(comm_->group_size(op.group)) + " ranks, the plan " + std::to_string(g));
    }
    if constexpr (std::is_same_v<S, float>) {
      comm_->run(op, send.p, recv.p, send.n, recv.n, reduction);
      return;
    }
  }
  // One process, one rank's shard: what the rank would hold after the call if every rank
  // held what it holds (sums over one rank, its block everywhere).
  switch (op.collective) {
    case Collective::kAllReduce:
    case Collective::kAllToAll:
      if (send.p != recv.p) std::copy_n(send.p, send.n, recv.p);
      return;
    case Collective::kAllGather:
      for (std::int64_t r = 0; r < g; ++r) std::copy_n(send.p, send.n, recv.p + r * send.n);
      return;
    case Collective::kReduceScatter: std::copy_n(send.p, recv.n, recv.p); return;
    default: break;
  }
  throw std::logic_error("transformer layer: no collective " + std::string(collective_name(op.collective)));
}

template <typename S>
void TransformerCpuOpsT<S>::transpose_blocks(const Tensor& x, Tensor& y, std::int64_t outer, std::int64_t blocks,
                                             std::int64_t inner, bool inverse) {
  for (std::int64_t o = 0; o < outer; ++o)
    for (std::int64_t j = 0; j < blocks; ++j) {
      const std::int64_t a = (o * blocks + j) * inner, b = (j * outer + o) * inner;  // [o][j], [j][o]
      if (inverse) std::copy_n(x.p + b, inner, y.p + a);
      else std::copy_n(x.p + a, inner, y.p + b);
    }
}

// ---- the stack's -----------------------------------------------------------------------------

template <typename S>
void TransformerCpuOpsT<S>::embedding_fwd(const Tensor& table, const Tensor* pos, const Tensor& tokens, Tensor& x,
                                          std::int64_t rows, std::int64_t seq_local, std::int64_t h,
                                          std::int64_t vocab_start) {
  const std::int64_t table_rows = table.n / h;
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t id = static_cast<std::int64_t>(tokens.i32()[r]) - vocab_start;
    const S* e = id >= 0 && id < table_rows ? table.p + id * h : nullptr;  // another rank's slice: zero
    for (std::int64_t c = 0; c < h; ++c) {
      x.p[r * h + c] = (e ? e[c] : S{0}) + (pos ? pos->p[(r % seq_local) * h + c] : S{0});
    }
  }
}

template <typename S>
void TransformerCpuOpsT<S>::embedding_bwd(const Tensor& dx, const Tensor& tokens, Tensor& dtable, Tensor* dpos,
                                          std::int64_t rows, std::int64_t seq_local, std::int64_t h,
                                          std::int64_t vocab_start) {
  if (dpos) std::fill_n(dpos->p, dpos->n, S{0});
  const std::int64_t table_rows = dtable.n / h;
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t id = static_cast<std::int64_t>(tokens.i32()[r]) - vocab_start;
    S* de = id >= 0 && id < table_rows ? dtable.p + id * h : nullptr;
    for (std::int64_t c = 0; c < h; ++c) {
      if (de) de[c] += dx.p[r * h + c];
      if (dpos) dpos->p[(r % seq_local) * h + c] += dx.p[r * h + c];
    }
  }
}

template <typename S>
void TransformerCpuOpsT<S>::fill_causal_mask(Tensor& mask, std::int64_t seq) {
  for (std::int64_t i = 0; i < seq; ++i)
    for (std::int64_t j = 0; j < seq; ++j) {
      if (mask.elem == Elem::kBool) mask.u8()[i * seq + j] = j <= i;
      else mask.p[i * seq + j] = j <= i ? S{1} : S{0};
    }
}

template <typename S>
void TransformerCpuOpsT<S>::ce_chunk_fwd(const Tensor& logits, const Tensor& targets, Tensor& run_max, Tensor& run_sum,
                                         Tensor& target_logit, std::int64_t rows, std::int64_t cols, std::int64_t col0,
                                         bool first) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const S* z = logits.p + r * cols;
    double mx = first ? -std::numeric_limits<double>::infinity() : static_cast<double>(run_max.p[r]);
    double sum = first ? 0.0 : static_cast<double>(run_sum.p[r]);
    const double chunk_max = *std::max_element(z, z + cols);
    if (chunk_max > mx) {  // rescale what was summed under the old maximum
      sum *= std::exp(mx - chunk_max);
      mx = chunk_max;
    }
    for (std::int64_t c = 0; c < cols; ++c) sum += std::exp(z[c] - mx);
    run_max.p[r] = static_cast<S>(mx);
    run_sum.p[r] = static_cast<S>(sum);
    const std::int64_t t = targets.i32()[r] - col0;
    if (t >= 0 && t < cols) target_logit.p[r] = z[t];
  }
}

template <typename S>
void TransformerCpuOpsT<S>::ce_rescale(const Tensor& local_max, const Tensor& global_max, Tensor& run_sum,
                                       std::int64_t rows) {
  for (std::int64_t r = 0; r < rows; ++r) {
    run_sum.p[r] = static_cast<S>(run_sum.p[r] * std::exp(static_cast<double>(local_max.p[r]) - global_max.p[r]));
  }
}

template <typename S>
void TransformerCpuOpsT<S>::ce_finish(const Tensor& run_max, const Tensor& run_sum, const Tensor& target_logit,
                                      Tensor& lse, Tensor& loss, std::int64_t rows) {
  double total = 0;
  for (std::int64_t r = 0; r < rows; ++r) {
    const double l = static_cast<double>(run_max.p[r]) + std::log(static_cast<double>(run_sum.p[r]));
    lse.p[r] = static_cast<S>(l);
    total += l - target_logit.p[r];
  }
  loss.p[0] = static_cast<S>(total / static_cast<double>(rows));
}

template <typename S>
void TransformerCpuOpsT<S>::ce_chunk_bwd(Tensor& logits, const Tensor& targets, const Tensor& lse, std::int64_t rows,
                                         std::int64_t cols, std::int64_t col0, double scale) {
  for (std::int64_t r = 0; r < rows; ++r) {
    S* z = logits.p + r * cols;
    const double l = lse.p[r];
    const std::int64_t t = targets.i32()[r] - col0;
    for (std::int64_t c = 0; c < cols; ++c) {
      z[c] = static_cast<S>(scale * (std::exp(z[c] - l) - (c == t ? 1.0 : 0.0)));
    }
  }
}

template <typename S>
void TransformerCpuOpsT<S>::adam(Tensor& w, const Tensor& dw, Tensor& master, Tensor& m, Tensor& v, std::int64_t n,
                                 std::int64_t step) {
  const double c1 = 1.0 - std::pow(kAdamBeta1, static_cast<double>(step));
  const double c2 = 1.0 - std::pow(kAdamBeta2, static_cast<double>(step));
  for (std::int64_t i = 0; i < n; ++i) {
    const double g = dw.p[i];
    const double mi = kAdamBeta1 * m.p[i] + (1.0 - kAdamBeta1) * g;
    const double vi = kAdamBeta2 * v.p[i] + (1.0 - kAdamBeta2) * g * g;
    m.p[i] = static_cast<S>(mi);
    v.p[i] = static_cast<S>(vi);
    master.p[i] = static_cast<S>(master.p[i] - kAdamLr * (mi / c1) / (std::sqrt(vi / c2) + kAdamEps));
    w.p[i] = master.p[i];
  }
}

template class TransformerCpuOpsT<double>;
template class TransformerCpuOpsT<float>;

CheckResult compare_transformer_grads(const std::vector<std::vector<double>>& got,
                                      const std::vector<std::vector<double>>& want, const CheckTolerance& tol) {
  const auto max_abs = [](const std::vector<double>& v) {
    double m = 0;
    for (double x : v) m = std::max(m, std::fabs(x));
    return m;
  };
  double scale = 0;
  for (const auto& w : want) scale = std::max(scale, max_abs(w));
  CheckResult r;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const bool zero_by_symmetry = max_abs(want[i]) < 1e-9 * scale;
    const CheckTolerance t = zero_by_symmetry ? CheckTolerance{tol.rel_to_max * scale, 0, 0} : tol;
    r.merge(compare_values("param_grad[" + std::to_string(i) + "]", got[i], want[i], t));
  }
  return r;
}

// ---- whole runs on the reference ---------------------------------------------------------------

namespace {

using Ref = TransformerRefOps;

std::vector<double> uniform(std::int64_t n, double lo, double hi, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> v(static_cast<std::size_t>(n));
  for (double& x : v) x = dist(rng);
  return v;
}
void load(Ref::Tensor& t, const std::vector<double>& v) { std::copy(v.begin(), v.end(), t.p); }
std::vector<double> dump(const Ref::Tensor& t) { return {t.p, t.p + t.n}; }

// Norm gains near 1 (so no channel is switched off), everything else in [-w, w).
template <class Params>
std::vector<std::vector<double>> draw_params(Params& params, std::mt19937_64& rng) {
  std::vector<std::vector<double>> out;
  for (auto* p : params) out.push_back(uniform(p->w.n, -kTransformerWeightRange, kTransformerWeightRange, rng));
  return out;
}

struct RefLayerRun {
  Ref ops;
  TransformerLayer<Ref> layer;
  Ref::Tensor x, y, mask;
  RefLayerRun(const TransformerLayerDims& d, MaskKind mk, const TransformerLayerInputs& in) : layer(ops, d) {
    auto& params = layer.params();
    if (params.size() != in.params.size()) throw std::invalid_argument("transformer layer: parameter list mismatch");
    for (std::size_t i = 0; i < params.size(); ++i) load(params[i]->w, in.params[i]);
    x = ops.alloc(static_cast<std::int64_t>(in.x.size()), Elem::kIo, MemoryKind::kActivations, "x");
    load(x, in.x);
    if (mk != MaskKind::kNone) {
      mask = ops.alloc(d.seq * d.seq, mk == MaskKind::kBool ? Elem::kBool : Elem::kFp32, MemoryKind::kActivations, "mask");
      ops.fill_causal_mask(mask, d.seq);
    }
    y = layer.forward(x, mk != MaskKind::kNone ? &mask : nullptr);
  }
};

}  // namespace

TransformerLayerInputs make_transformer_layer_inputs(const TransformerLayerDims& d, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  TransformerLayerInputs in;
  in.x = uniform(d.rows_out() * d.hidden, -1, 1, rng);
  in.dy = uniform(d.rows_out() * d.hidden, -1, 1, rng);
  Ref ops;
  TransformerLayer<Ref> layer(ops, d);
  in.params = draw_params(layer.params(), rng);
  return in;
}

TransformerLayerRun run_transformer_layer_ref(const TransformerLayerDims& d, MaskKind mask,
                                              const TransformerLayerInputs& in) {
  RefLayerRun run(d, mask, in);
  TransformerLayerRun out;
  out.y = dump(run.y);
  Ref::Tensor dy = run.ops.alloc(static_cast<std::int64_t>(in.dy.size()), Elem::kIo, MemoryKind::kActivations, "dy");
  Ref::Tensor dx = run.ops.alloc(static_cast<std::int64_t>(in.x.size()), Elem::kIo, MemoryKind::kActivations, "dx");
  load(dy, in.dy);
  run.layer.backward(dy, dx);
  out.dx = dump(dx);
  for (auto* p : run.layer.params()) out.param_grads.push_back(dump(p->dw));
  return out;
}

double transformer_layer_ref_loss(const TransformerLayerDims& d, MaskKind mask, const TransformerLayerInputs& in) {
  RefLayerRun run(d, mask, in);
  double loss = 0;
  for (std::size_t i = 0; i < in.dy.size(); ++i) loss += in.dy[i] * run.y.p[i];
  return loss;
}

TransformerStackInputs make_transformer_stack_inputs(const TransformerStackDims& d, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  TransformerStackInputs in;
  std::uniform_int_distribution<std::int32_t> tok(0, static_cast<std::int32_t>(d.vocab - 1));
  for (std::int64_t r = 0; r < d.tokens(); ++r) {
    in.tokens.push_back(tok(rng));
    in.targets.push_back(tok(rng));
  }
  Ref ops;
  TransformerStack<Ref> stack(ops, d);
  in.params = draw_params(stack.params(), rng);
  return in;
}

TransformerStackRun run_transformer_stack_ref(const TransformerStackDims& d, const TransformerStackInputs& in) {
  Ref ops;
  TransformerStack<Ref> stack(ops, d);
  auto& params = stack.params();
  if (params.size() != in.params.size()) throw std::invalid_argument("transformer stack: parameter list mismatch");
  for (std::size_t i = 0; i < params.size(); ++i) load(params[i]->w, in.params[i]);
  stack.sync_master();
  Ref::Tensor tokens = ops.alloc(d.tokens(), Elem::kInt32, MemoryKind::kActivations, "tokens");
  Ref::Tensor targets = ops.alloc(d.tokens(), Elem::kInt32, MemoryKind::kActivations, "targets");
  Ref::Tensor loss = ops.alloc(1, Elem::kFp32, MemoryKind::kActivations, "loss");
  std::copy(in.tokens.begin(), in.tokens.end(), tokens.i32());
  std::copy(in.targets.begin(), in.targets.end(), targets.i32());
  stack.step(tokens, targets, loss, /*update=*/false);
  TransformerStackRun out;
  out.loss = loss.p[0];
  for (auto* p : params) out.param_grads.push_back(dump(p->dw));
  return out;
}

}  // namespace seqscale
