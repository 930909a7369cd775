#include "layers/evoformer_block/evoformer_block_ref.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>

#include "kernels/layernorm/layernorm_cost.h"

namespace seqscale {

namespace {
double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
}  // namespace

template <typename S>
EvoformerBlockCpuOpsT<S>::EvoformerBlockCpuOpsT(bool fused_attention, AllocFn alloc, FreeFn free)
    : fused_(fused_attention), alloc_(std::move(alloc)), free_(std::move(free)) {}

template <typename S>
EvoformerBlockCpuOpsT<S>::~EvoformerBlockCpuOpsT() {
  for (const auto& [p, n] : sizes_) {
    if (free_) {
      free_(p);
    } else {
      delete[] p;
    }
  }
}

template <typename S>
auto EvoformerBlockCpuOpsT<S>::alloc(std::int64_t n, MemoryKind, const char* what) -> Tensor {
  if (n <= 0) throw std::invalid_argument(std::string("evoformer block: empty tensor ") + what);
  S* p = alloc_ ? static_cast<S*>(alloc_(static_cast<std::size_t>(n) * sizeof(S))) : new S[static_cast<std::size_t>(n)]();
  sizes_[p] = n;
  live_bytes_ += n * static_cast<std::int64_t>(sizeof(S));
  allocated_bytes_ += n * static_cast<std::int64_t>(sizeof(S));
  peak_bytes_ = std::max(peak_bytes_, live_bytes_);
  return Tensor{p, n};
}

template <typename S>
void EvoformerBlockCpuOpsT<S>::release(Tensor& t) {
  if (!t.p) return;
  auto it = sizes_.find(t.p);
  if (it == sizes_.end()) throw std::logic_error("evoformer block: release of a tensor the backend does not own");
  live_bytes_ -= it->second * static_cast<std::int64_t>(sizeof(S));
  sizes_.erase(it);
  if (free_) {
    free_(t.p);
  } else {
    delete[] t.p;
  }
  t = Tensor{};
}


template <typename S>
void EvoformerBlockCpuOpsT<S>::layernorm_fwd(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, Tensor& mean, Tensor& rstd,
                        std::int64_t rows, std::int64_t cols) {
  constexpr double kEps = 1e-5;
  for (std::int64_t r = 0; r < rows; ++r) {
    const S* xr = x.p + r * cols;
    double mu = 0;
    for (std::int64_t c = 0; c < cols; ++c) mu += xr[c];
    mu /= static_cast<double>(cols);
    double var = 0;
    for (std::int64_t c = 0; c < cols; ++c) var += (xr[c] - mu) * (xr[c] - mu);
    const double rs = 1.0 / std::sqrt(var / static_cast<double>(cols) + kEps);
    mean.p[r] = mu;
    rstd.p[r] = rs;
    for (std::int64_t c = 0; c < cols; ++c) y.p[r * cols + c] = (xr[c] - mu) * rs * w.p[c] + b.p[c];
  }
}

template <typename S>
void EvoformerBlockCpuOpsT<S>::layernorm_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& mean,
                                             const Tensor& rstd, Tensor& dx, Tensor& dw, Tensor& db, std::int64_t rows,
                                             std::int64_t cols) {
  // The GPU kernel's per-chunk fp32 partials of dweight/dbias: held for the call, as the
  // memory model counts them (an fp32 executor then allocates what the model declares).
  const std::int64_t ws_bytes = layernorm_bwd_cost(rows, cols, DType::kFp32).workspace_bytes;
  Tensor ws{};
  if (ws_bytes > 0) ws = alloc((ws_bytes + static_cast<std::int64_t>(sizeof(S)) - 1) / static_cast<std::int64_t>(sizeof(S)),
                               MemoryKind::kWorkspace, "layernorm_bwd_partials");
  std::fill(dw.p, dw.p + cols, 0.0);
  std::fill(db.p, db.p + cols, 0.0);
  const double inv_c = 1.0 / static_cast<double>(cols);
  for (std::int64_t r = 0; r < rows; ++r) {
    const S* xr = x.p + r * cols;
    const S* dyr = dy.p + r * cols;
    double sum_g = 0, sum_gx = 0;  // sums of g = dy * w and g * xhat
    for (std::int64_t c = 0; c < cols; ++c) {
      const double xhat = (xr[c] - mean.p[r]) * rstd.p[r];
      const double g = dyr[c] * w.p[c];
      sum_g += g;
      sum_gx += g * xhat;
      dw.p[c] += dyr[c] * xhat;
      db.p[c] += dyr[c];
    }
    for (std::int64_t c = 0; c < cols; ++c) {
      const double xhat = (xr[c] - mean.p[r]) * rstd.p[r];
      dx.p[r * cols + c] = rstd.p[r] * (dyr[c] * w.p[c] - inv_c * sum_g - xhat * inv_c * sum_gx);
    }
  }
  release(ws);
}

template <typename S>
void EvoformerBlockCpuOpsT<S>::gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const Tensor& a,
               const Tensor& b, double beta, Tensor& c, std::int64_t batch) {
  std::vector<double> row(static_cast<std::size_t>(n));
  for (std::int64_t bi = 0; bi < batch; ++bi) {
    const S* A = a.p + bi * m * k;
    const S* B = b.p + bi * k * n;
    S* C = c.p + bi * m * n;
    for (std::int64_t i = 0; i < m; ++i) {
      std::fill(row.begin(), row.end(), 0.0);
      for (std::int64_t kk = 0; kk < k; ++kk) {
        const double av = ta ? A[kk * m + i] : A[i * k + kk];
        if (tb) {
          for (std::int64_t j = 0; j < n; ++j) row[static_cast<std::size_t>(j)] += av * B[j * k + kk];
        } else {
          const S* Br = B + kk * n;
          for (std::int64_t j = 0; j < n; ++j) row[static_cast<std::size_t>(j)] += av * Br[j];
        }
      }
      for (std::int64_t j = 0; j < n; ++j) {
        C[i * n + j] = alpha * row[static_cast<std::size_t>(j)] + (beta != 0.0 ? beta * C[i * n + j] : 0.0);
      }
    }
  }
}

template <typename S>
void EvoformerBlockCpuOpsT<S>::bias_add(Tensor& y, const Tensor& b, std::int64_t rows, std::int64_t cols) {
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) y.p[r * cols + c] += b.p[c];
}

template <typename S>
void EvoformerBlockCpuOpsT<S>::bias_grad(const Tensor& dy, Tensor& db, std::int64_t rows, std::int64_t cols) {
  std::fill(db.p, db.p + cols, 0.0);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) db.p[c] += dy.p[r * cols + c];
}


template <typename S>
void EvoformerBlockCpuOpsT<S>::sigmoid_mul(const Tensor& g, const Tensor& x, Tensor& y, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) y.p[i] = sigmoid(g.p[i]) * x.p[i];
}

template <typename S>
void EvoformerBlockCpuOpsT<S>::sigmoid_mul_bwd(const Tensor& dy, const Tensor& g, const Tensor& x, Tensor& dg, Tensor& dx, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) {
    const double s = sigmoid(g.p[i]);
    const double d = dy.p[i];
    if (dg.p) dg.p[i] = d * x.p[i] * s * (1.0 - s);
    if (dx.p) dx.p[i] = d * s;
  }
}

template <typename S>
void EvoformerBlockCpuOpsT<S>::relu(const Tensor& x, Tensor& y, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) y.p[i] = x.p[i] > 0 ? x.p[i] : 0.0;
}

template <typename S>
void EvoformerBlockCpuOpsT<S>::relu_bwd(const Tensor& dy, const Tensor& y, Tensor& dx, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) dx.p[i] = y.p[i] > 0 ? dy.p[i] : 0.0;
}

template <typename S>
void EvoformerBlockCpuOpsT<S>::add(const Tensor& a, const Tensor& b, Tensor& y, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) y.p[i] = a.p[i] + b.p[i];
}

template <typename S>
void EvoformerBlockCpuOpsT<S>::accumulate(Tensor& y, const Tensor& x, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) y.p[i] += x.p[i];
}

template <typename S>
void EvoformerBlockCpuOpsT<S>::permute_0213(const Tensor& x, Tensor& y, std::int64_t d0, std::int64_t d1, std::int64_t d2, std::int64_t d3) {
  if (x.p == y.p) throw std::logic_error("permute_0213 cannot run in place");
  for (std::int64_t a = 0; a < d0; ++a)
    for (std::int64_t b = 0; b < d1; ++b)
      for (std::int64_t c = 0; c < d2; ++c) {
        const S* src = x.p + ((a * d1 + b) * d2 + c) * d3;
        S* dst = y.p + ((a * d2 + c) * d1 + b) * d3;
        std::copy(src, src + d3, dst);
      }
}

template <typename S>
void EvoformerBlockCpuOpsT<S>::sum_rows(const Tensor& x, Tensor& y, std::int64_t batch, std::int64_t rows, std::int64_t cols, double alpha) {
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t c = 0; c < cols; ++c) {
      double acc = 0;
      for (std::int64_t r = 0; r < rows; ++r) acc += x.p[(b * rows + r) * cols + c];
      y.p[b * cols + c] = alpha * acc;
    }
}

template <typename S>
void EvoformerBlockCpuOpsT<S>::broadcast_rows(const Tensor& x, Tensor& y, std::int64_t batch, std::int64_t rows, std::int64_t cols,
                         double alpha) {
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < cols; ++c) y.p[(b * rows + r) * cols + c] = alpha * x.p[b * cols + c];
}

template <typename S>
void EvoformerBlockCpuOpsT<S>::softmax_rows(const Tensor& x, Tensor& y, std::int64_t rows, std::int64_t cols) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const S* xr = x.p + r * cols;
    S* yr = y.p + r * cols;
    const double mx = *std::max_element(xr, xr + cols);
    double sum = 0;
    for (std::int64_t c = 0; c < cols; ++c) sum += (yr[c] = std::exp(xr[c] - mx));
    for (std::int64_t c = 0; c < cols; ++c) yr[c] /= sum;
  }
}

template <typename S>
void EvoformerBlockCpuOpsT<S>::softmax_rows_bwd(const Tensor& dy, const Tensor& y, Tensor& dx, std::int64_t rows, std::int64_t cols) {
  for (std::int64_t r = 0; r < rows; ++r) {
    double dot = 0;
    for (std::int64_t c = 0; c < cols; ++c) dot += dy.p[r * cols + c] * y.p[r * cols + c];
    for (std::int64_t c = 0; c < cols; ++c) dx.p[r * cols + c] = y.p[r * cols + c] * (dy.p[r * cols + c] - dot);
  }
}

template <typename S>
double EvoformerBlockCpuOpsT<S>::logit(const Saved& s, std::int64_t r, std::int64_t h, std::int64_t i,
                                       std::int64_t j) const {
  const std::int64_t hd = s.heads * s.head_dim;
  const S* qi = s.q.p + (r * s.len + i) * hd + h * s.head_dim;
  const S* kj = s.k.p + (r * s.len + j) * hd + h * s.head_dim;
  double dot = 0;
  for (std::int64_t d = 0; d < s.head_dim; ++d) dot += static_cast<double>(qi[d]) * static_cast<double>(kj[d]);
  return dot / std::sqrt(static_cast<double>(s.head_dim)) + (s.has_bias ? static_cast<double>(s.bias.p[(h * s.len + i) * s.len + j]) : 0.0);
}

// Attention on [rows, len, heads, head_dim]: P = softmax(q k^T / sqrt(D) + bias[h]) per
// (row, head). Naive keeps P (an allocated [rows, heads, len, len] tensor) for backward;
// fused keeps the log-sum-exp [rows, heads, len] and recomputes P there, as the GPU
// kernels do, so an fp32 executor allocates exactly what the memory model declares.
template <typename S>
auto EvoformerBlockCpuOpsT<S>::attention_fwd(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* bias,
                                             Tensor& o, std::int64_t rows, std::int64_t len, std::int64_t heads,
                                             std::int64_t head_dim) -> Saved {
  Saved s{q, k, v, bias ? *bias : Tensor{}, o, {}, rows, len, heads, head_dim, bias != nullptr};
  s.kept = fused_ ? alloc(rows * heads * len, MemoryKind::kActivations, "attention_lse")
                  : alloc(rows * heads * len * len, MemoryKind::kActivations, "attention_probabilities");
  const std::int64_t hd = heads * head_dim;
  std::vector<double> p(static_cast<std::size_t>(len));
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t h = 0; h < heads; ++h)
      for (std::int64_t i = 0; i < len; ++i) {
        double mx = -std::numeric_limits<double>::infinity();
        for (std::int64_t j = 0; j < len; ++j) mx = std::max(mx, p[static_cast<std::size_t>(j)] = logit(s, r, h, i, j));
        double sum = 0;
        for (double& x : p) sum += (x = std::exp(x - mx));
        for (double& x : p) x /= sum;
        if (fused_) {
          s.kept.p[(r * heads + h) * len + i] = static_cast<S>(mx + std::log(sum));
        } else {
          std::copy(p.begin(), p.end(), s.kept.p + ((r * heads + h) * len + i) * len);
        }
        S* oi = o.p + (r * len + i) * hd + h * head_dim;
        for (std::int64_t d = 0; d < head_dim; ++d) {
          double acc = 0;
          for (std::int64_t j = 0; j < len; ++j) acc += p[static_cast<std::size_t>(j)] * v.p[(r * len + j) * hd + h * head_dim + d];
          oi[d] = static_cast<S>(acc);
        }
      }
  return s;
}

template <typename S>
void EvoformerBlockCpuOpsT<S>::attention_bwd(Saved& s, const Tensor& d_o, Tensor& dq, Tensor& dk, Tensor& dv,
                                             Tensor* dbias) {
  const std::int64_t rows = s.rows, len = s.len, heads = s.heads, D = s.head_dim, hd = heads * D;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  // The backward's working tensor, as on the GPU: naive dP [rows, heads, len, len],
  // fused row_dot D_i = dO_i . O_i [rows, heads, len].
  Tensor work = fused_ ? alloc(rows * heads * len, MemoryKind::kWorkspace, "attention_row_dot")
                       : alloc(rows * heads * len * len, MemoryKind::kWorkspace, "attention_d_probabilities");
  std::fill(dq.p, dq.p + dq.n, S{0});
  std::fill(dk.p, dk.p + dk.n, S{0});
  std::fill(dv.p, dv.p + dv.n, S{0});
  if (dbias) std::fill(dbias->p, dbias->p + dbias->n, S{0});
  std::vector<double> p(static_cast<std::size_t>(len));
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t h = 0; h < heads; ++h)
      for (std::int64_t i = 0; i < len; ++i) {
        const std::int64_t row = (r * heads + h) * len + i;
        for (std::int64_t j = 0; j < len; ++j) {
          p[static_cast<std::size_t>(j)] = fused_ ? std::exp(logit(s, r, h, i, j) - static_cast<double>(s.kept.p[row]))
                                                   : static_cast<double>(s.kept.p[row * len + j]);
        }
        const S* doi = d_o.p + (r * len + i) * hd + h * D;
        double row_dot = 0;  // sum_j P_ij dP_ij = dO_i . O_i
        S* dp = fused_ ? nullptr : work.p + row * len;
        std::vector<double> dpv(static_cast<std::size_t>(len));
        for (std::int64_t j = 0; j < len; ++j) {
          const S* vj = s.v.p + (r * len + j) * hd + h * D;
          double acc = 0;
          for (std::int64_t d = 0; d < D; ++d) {
            acc += static_cast<double>(doi[d]) * static_cast<double>(vj[d]);
            dv.p[(r * len + j) * hd + h * D + d] += static_cast<S>(p[static_cast<std::size_t>(j)] * static_cast<double>(doi[d]));
          }
          dpv[static_cast<std::size_t>(j)] = acc;
          if (dp) dp[j] = static_cast<S>(acc);
          row_dot += p[static_cast<std::size_t>(j)] * acc;
        }
        if (fused_) work.p[row] = static_cast<S>(row_dot);
        const S* qi = s.q.p + (r * len + i) * hd + h * D;
        for (std::int64_t j = 0; j < len; ++j) {
          const double ds = p[static_cast<std::size_t>(j)] * (dpv[static_cast<std::size_t>(j)] - row_dot);  // d(logit)
          if (dbias) dbias->p[(h * len + i) * len + j] += static_cast<S>(ds);
          const S* kj = s.k.p + (r * len + j) * hd + h * D;
          for (std::int64_t d = 0; d < D; ++d) {
            dq.p[(r * len + i) * hd + h * D + d] += static_cast<S>(ds * scale * static_cast<double>(kj[d]));
            dk.p[(r * len + j) * hd + h * D + d] += static_cast<S>(ds * scale * static_cast<double>(qi[d]));
          }
        }
      }
  release(work);
}

template <typename S>
void EvoformerBlockCpuOpsT<S>::release_saved(Saved& s) {
  release(s.kept);
}

template class EvoformerBlockCpuOpsT<double>;
template class EvoformerBlockCpuOpsT<float>;

using Ops = EvoformerBlockCpuOps;

// ---- whole-block runs --------------------------------------------------------------------

namespace {

std::vector<double> uniform(std::int64_t n, double lo, double hi, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> v(static_cast<std::size_t>(n));
  for (double& x : v) x = dist(rng);
  return v;
}

void load(Ops::Tensor& t, const std::vector<double>& v) { std::copy(v.begin(), v.end(), t.p); }
std::vector<double> dump(const Ops::Tensor& t) { return std::vector<double>(t.p, t.p + t.n); }

}  // namespace

EvoformerBlockInputs make_evoformer_block_inputs(const EvoformerBlockDims& d, unsigned seed) {
  std::mt19937_64 rng(seed);
  EvoformerBlockInputs in;
  const std::int64_t nm = d.n_seq * d.n_res * d.c_m, nz = d.n_res * d.n_res * d.c_z;
  in.m0 = uniform(nm, -1, 1, rng);
  in.z0 = uniform(nz, -1, 1, rng);
  in.dm_out = uniform(nm, -1, 1, rng);
  in.dz_out = uniform(nz, -1, 1, rng);
  Ops ops;
  EvoformerBlock<Ops> block(ops, d);
  // Small weights keep every module's output O(1) at the test sizes; LayerNorm gains stay
  // near 1 so no channel is switched off.
  for (auto* p : block.params()) in.params.push_back(uniform(p->w.n, -0.3, 0.3, rng));
  return in;
}

EvoformerBlockRefRun run_evoformer_block_ref(const EvoformerBlockDims& d, const EvoformerBlockInputs& in) {
  Ops ops;
  EvoformerBlock<Ops> block(ops, d);
  auto& params = block.params();
  if (params.size() != in.params.size()) throw std::invalid_argument("evoformer block: parameter list mismatch");
  for (std::size_t i = 0; i < params.size(); ++i) load(params[i]->w, in.params[i]);
  const std::int64_t nm = static_cast<std::int64_t>(in.m0.size()), nz = static_cast<std::int64_t>(in.z0.size());
  Ops::Tensor m0 = ops.alloc(nm, MemoryKind::kActivations, "m0"), z0 = ops.alloc(nz, MemoryKind::kActivations, "z0");
  load(m0, in.m0);
  load(z0, in.z0);
  block.forward(m0, z0);
  EvoformerBlockRefRun run;
  run.m_out = dump(block.m_out);
  run.z_out = dump(block.z_out);
  Ops::Tensor dm_out = ops.alloc(nm, MemoryKind::kActivations, "dm_out");
  Ops::Tensor dz_out = ops.alloc(nz, MemoryKind::kActivations, "dz_out");
  Ops::Tensor dm0 = ops.alloc(nm, MemoryKind::kActivations, "dm0"), dz0 = ops.alloc(nz, MemoryKind::kActivations, "dz0");
  load(dm_out, in.dm_out);
  load(dz_out, in.dz_out);
  block.backward(dm_out, dz_out, dm0, dz0);
  run.dm0 = dump(dm0);
  run.dz0 = dump(dz0);
  for (auto* p : params) run.param_grads.push_back(dump(p->dw));
  run.peak_bytes = ops.peak_bytes();
  return run;
}

double evoformer_block_ref_loss(const EvoformerBlockDims& d, const EvoformerBlockInputs& in) {
  Ops ops;
  EvoformerBlock<Ops> block(ops, d);
  auto& params = block.params();
  for (std::size_t i = 0; i < params.size(); ++i) load(params[i]->w, in.params[i]);
  Ops::Tensor m0 = ops.alloc(static_cast<std::int64_t>(in.m0.size()), MemoryKind::kActivations, "m0");
  Ops::Tensor z0 = ops.alloc(static_cast<std::int64_t>(in.z0.size()), MemoryKind::kActivations, "z0");
  load(m0, in.m0);
  load(z0, in.z0);
  block.forward(m0, z0);
  double loss = 0;
  for (std::size_t i = 0; i < in.dm_out.size(); ++i) loss += in.dm_out[i] * block.m_out.p[i];
  for (std::size_t i = 0; i < in.dz_out.size(); ++i) loss += in.dz_out[i] * block.z_out.p[i];
  return loss;
}

}  // namespace seqscale
