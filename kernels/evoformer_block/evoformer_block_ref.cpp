#include "kernels/evoformer_block/evoformer_block_ref.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>

namespace seqscale {

using Ops = EvoformerBlockCpuOps;

Ops::Tensor Ops::alloc(std::int64_t n, MemoryKind, const char* what) {
  if (n <= 0) throw std::invalid_argument(std::string("evoformer block: empty tensor ") + what);
  auto buf = std::make_unique<double[]>(static_cast<std::size_t>(n));
  std::fill(buf.get(), buf.get() + n, 0.0);
  Tensor t{buf.get(), n};
  buffers_.emplace(t.p, std::move(buf));
  sizes_[t.p] = n;
  live_bytes_ += n * static_cast<std::int64_t>(sizeof(double));
  peak_bytes_ = std::max(peak_bytes_, live_bytes_);
  return t;
}

void Ops::release(Tensor& t) {
  if (!t.p) return;
  auto it = buffers_.find(t.p);
  if (it == buffers_.end()) throw std::logic_error("evoformer block: release of a tensor the backend does not own");
  live_bytes_ -= sizes_[t.p] * static_cast<std::int64_t>(sizeof(double));
  sizes_.erase(t.p);
  buffers_.erase(it);
  t = Tensor{};
}

void Ops::layernorm_fwd(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, Tensor& mean, Tensor& rstd,
                        std::int64_t rows, std::int64_t cols) {
  constexpr double kEps = 1e-5;
  for (std::int64_t r = 0; r < rows; ++r) {
    const double* xr = x.p + r * cols;
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

void Ops::layernorm_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                        Tensor& dx, Tensor& dw, Tensor& db, std::int64_t rows, std::int64_t cols) {
  std::fill(dw.p, dw.p + cols, 0.0);
  std::fill(db.p, db.p + cols, 0.0);
  const double inv_c = 1.0 / static_cast<double>(cols);
  for (std::int64_t r = 0; r < rows; ++r) {
    const double* xr = x.p + r * cols;
    const double* dyr = dy.p + r * cols;
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
}

void Ops::gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const Tensor& a,
               const Tensor& b, double beta, Tensor& c, std::int64_t batch) {
  std::vector<double> row(static_cast<std::size_t>(n));
  for (std::int64_t bi = 0; bi < batch; ++bi) {
    const double* A = a.p + bi * m * k;
    const double* B = b.p + bi * k * n;
    double* C = c.p + bi * m * n;
    for (std::int64_t i = 0; i < m; ++i) {
      std::fill(row.begin(), row.end(), 0.0);
      for (std::int64_t kk = 0; kk < k; ++kk) {
        const double av = ta ? A[kk * m + i] : A[i * k + kk];
        if (tb) {
          for (std::int64_t j = 0; j < n; ++j) row[static_cast<std::size_t>(j)] += av * B[j * k + kk];
        } else {
          const double* Br = B + kk * n;
          for (std::int64_t j = 0; j < n; ++j) row[static_cast<std::size_t>(j)] += av * Br[j];
        }
      }
      for (std::int64_t j = 0; j < n; ++j) {
        C[i * n + j] = alpha * row[static_cast<std::size_t>(j)] + (beta != 0.0 ? beta * C[i * n + j] : 0.0);
      }
    }
  }
}

void Ops::bias_add(Tensor& y, const Tensor& b, std::int64_t rows, std::int64_t cols) {
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) y.p[r * cols + c] += b.p[c];
}

void Ops::bias_grad(const Tensor& dy, Tensor& db, std::int64_t rows, std::int64_t cols) {
  std::fill(db.p, db.p + cols, 0.0);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) db.p[c] += dy.p[r * cols + c];
}

namespace {
double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
}  // namespace

void Ops::sigmoid_mul(const Tensor& g, const Tensor& x, Tensor& y, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) y.p[i] = sigmoid(g.p[i]) * x.p[i];
}

void Ops::sigmoid_mul_bwd(const Tensor& dy, const Tensor& g, const Tensor& x, Tensor& dg, Tensor& dx, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) {
    const double s = sigmoid(g.p[i]);
    const double d = dy.p[i];
    if (dg.p) dg.p[i] = d * x.p[i] * s * (1.0 - s);
    if (dx.p) dx.p[i] = d * s;
  }
}

void Ops::relu(const Tensor& x, Tensor& y, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) y.p[i] = x.p[i] > 0 ? x.p[i] : 0.0;
}

void Ops::relu_bwd(const Tensor& dy, const Tensor& y, Tensor& dx, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) dx.p[i] = y.p[i] > 0 ? dy.p[i] : 0.0;
}

void Ops::add(const Tensor& a, const Tensor& b, Tensor& y, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) y.p[i] = a.p[i] + b.p[i];
}

void Ops::accumulate(Tensor& y, const Tensor& x, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) y.p[i] += x.p[i];
}

void Ops::permute_0213(const Tensor& x, Tensor& y, std::int64_t d0, std::int64_t d1, std::int64_t d2, std::int64_t d3) {
  if (x.p == y.p) throw std::logic_error("permute_0213 cannot run in place");
  for (std::int64_t a = 0; a < d0; ++a)
    for (std::int64_t b = 0; b < d1; ++b)
      for (std::int64_t c = 0; c < d2; ++c) {
        const double* src = x.p + ((a * d1 + b) * d2 + c) * d3;
        double* dst = y.p + ((a * d2 + c) * d1 + b) * d3;
        std::copy(src, src + d3, dst);
      }
}

void Ops::sum_rows(const Tensor& x, Tensor& y, std::int64_t batch, std::int64_t rows, std::int64_t cols, double alpha) {
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t c = 0; c < cols; ++c) {
      double acc = 0;
      for (std::int64_t r = 0; r < rows; ++r) acc += x.p[(b * rows + r) * cols + c];
      y.p[b * cols + c] = alpha * acc;
    }
}

void Ops::broadcast_rows(const Tensor& x, Tensor& y, std::int64_t batch, std::int64_t rows, std::int64_t cols,
                         double alpha) {
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < cols; ++c) y.p[(b * rows + r) * cols + c] = alpha * x.p[b * cols + c];
}

void Ops::softmax_rows(const Tensor& x, Tensor& y, std::int64_t rows, std::int64_t cols) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const double* xr = x.p + r * cols;
    double* yr = y.p + r * cols;
    const double mx = *std::max_element(xr, xr + cols);
    double sum = 0;
    for (std::int64_t c = 0; c < cols; ++c) sum += (yr[c] = std::exp(xr[c] - mx));
    for (std::int64_t c = 0; c < cols; ++c) yr[c] /= sum;
  }
}

void Ops::softmax_rows_bwd(const Tensor& dy, const Tensor& y, Tensor& dx, std::int64_t rows, std::int64_t cols) {
  for (std::int64_t r = 0; r < rows; ++r) {
    double dot = 0;
    for (std::int64_t c = 0; c < cols; ++c) dot += dy.p[r * cols + c] * y.p[r * cols + c];
    for (std::int64_t c = 0; c < cols; ++c) dx.p[r * cols + c] = y.p[r * cols + c] * (dy.p[r * cols + c] - dot);
  }
}

// Attention on [rows, len, heads, head_dim]: P = softmax(q k^T / sqrt(D) + bias[h]) per
// (row, head); the probabilities are kept for backward (the reference has no memory goal).
Ops::Saved Ops::attention_fwd(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* bias, Tensor& o,
                              std::int64_t rows, std::int64_t len, std::int64_t heads, std::int64_t head_dim) {
  Saved s{q, k, v, bias ? *bias : Tensor{}, o, {}, rows, len, heads, head_dim, bias != nullptr};
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  s.probs.assign(static_cast<std::size_t>(rows * heads * len * len), 0.0);
  const std::int64_t hd = heads * head_dim;
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t h = 0; h < heads; ++h)
      for (std::int64_t i = 0; i < len; ++i) {
        double* p = s.probs.data() + ((r * heads + h) * len + i) * len;
        const double* qi = q.p + (r * len + i) * hd + h * head_dim;
        double mx = -std::numeric_limits<double>::infinity();
        for (std::int64_t j = 0; j < len; ++j) {
          const double* kj = k.p + (r * len + j) * hd + h * head_dim;
          double dot = 0;
          for (std::int64_t d = 0; d < head_dim; ++d) dot += qi[d] * kj[d];
          p[j] = dot * scale + (bias ? bias->p[(h * len + i) * len + j] : 0.0);
          mx = std::max(mx, p[j]);
        }
        double sum = 0;
        for (std::int64_t j = 0; j < len; ++j) sum += (p[j] = std::exp(p[j] - mx));
        for (std::int64_t j = 0; j < len; ++j) p[j] /= sum;
        double* oi = o.p + (r * len + i) * hd + h * head_dim;
        for (std::int64_t d = 0; d < head_dim; ++d) {
          double acc = 0;
          for (std::int64_t j = 0; j < len; ++j) acc += p[j] * v.p[(r * len + j) * hd + h * head_dim + d];
          oi[d] = acc;
        }
      }
  return s;
}

void Ops::attention_bwd(Saved& s, const Tensor& d_o, Tensor& dq, Tensor& dk, Tensor& dv, Tensor* dbias) {
  const std::int64_t rows = s.rows, len = s.len, heads = s.heads, D = s.head_dim, hd = heads * D;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  std::fill(dq.p, dq.p + dq.n, 0.0);
  std::fill(dk.p, dk.p + dk.n, 0.0);
  std::fill(dv.p, dv.p + dv.n, 0.0);
  if (dbias) std::fill(dbias->p, dbias->p + dbias->n, 0.0);
  std::vector<double> dp(static_cast<std::size_t>(len));
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t h = 0; h < heads; ++h)
      for (std::int64_t i = 0; i < len; ++i) {
        const double* p = s.probs.data() + ((r * heads + h) * len + i) * len;
        const double* doi = d_o.p + (r * len + i) * hd + h * D;
        double row_dot = 0;  // sum_j P_ij dP_ij
        for (std::int64_t j = 0; j < len; ++j) {
          const double* vj = s.v.p + (r * len + j) * hd + h * D;
          double acc = 0;
          for (std::int64_t d = 0; d < D; ++d) {
            acc += doi[d] * vj[d];
            dv.p[(r * len + j) * hd + h * D + d] += p[j] * doi[d];
          }
          dp[static_cast<std::size_t>(j)] = acc;
          row_dot += p[j] * acc;
        }
        const double* qi = s.q.p + (r * len + i) * hd + h * D;
        for (std::int64_t j = 0; j < len; ++j) {
          const double ds = p[j] * (dp[static_cast<std::size_t>(j)] - row_dot);  // d(logit)
          if (dbias) dbias->p[(h * len + i) * len + j] += ds;
          const double* kj = s.k.p + (r * len + j) * hd + h * D;
          for (std::int64_t d = 0; d < D; ++d) {
            dq.p[(r * len + i) * hd + h * D + d] += ds * scale * kj[d];
            dk.p[(r * len + j) * hd + h * D + d] += ds * scale * qi[d];
          }
        }
      }
}

void Ops::release_saved(Saved& s) {
  s.probs.clear();
  s.probs.shrink_to_fit();
}

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
