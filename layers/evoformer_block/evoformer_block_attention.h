// The Evoformer block's attention modules: gated self-attention with pair bias (MSA row,
// MSA column, triangle start / end) and the extra-MSA stack's global column attention.
// Out-of-line members of EvoformerBlock (evoformer_block_def.h, which includes this file
// at its end): what the block's modules store and free, in the order they run.
#pragma once
#include <cmath>
#include <cstdint>

#include "layers/evoformer_block/evoformer_block_def.h"

namespace seqscale {

// gated self-attention (row, column, triangle start / end)

// x holds `rows` sequences of `len` positions with c channels: [rows, len, c], or, when
// `transposed`, the transpose [len, rows, c] (column attention attends over N_seq; the
// ending-node triangle attention attends over the first pair index).
template <class Ops>
auto EvoformerBlock<Ops>::attention_fwd(AttnW& w, const T& x, std::int64_t rows, std::int64_t len, std::int64_t c,
                                        const T* z, bool bias_from_self, bool transposed) -> AttnSaved {
  AttnSaved s;
  s.rows = rows;
  s.len = len;
  s.transposed = transposed;
  s.bias_from_self = bias_from_self;
  s.has_bias = w.pair_bias;
  const std::int64_t n = rows * len, hd = w.heads * w.head_dim;
  const T* xin = &x;
  if (transposed) {
    s.xt = ops_.alloc(n * c, MemoryKind::kActivations, "attention_input_transposed");
    ops_.permute_0213(x, s.xt, 1, len, rows, c);
    xin = &s.xt;
  }
  ln_fwd(w.ln, *xin, n, c, s.ln, s.mean, s.rstd);
  s.q = ops_.alloc(n * hd, MemoryKind::kActivations, "q");
  s.k = ops_.alloc(n * hd, MemoryKind::kActivations, "k");
  s.v = ops_.alloc(n * hd, MemoryKind::kActivations, "v");
  s.g = ops_.alloc(n * hd, MemoryKind::kActivations, "gate");
  linear_fwd(w.q, s.ln, s.q, n, c, hd);
  linear_fwd(w.k, s.ln, s.k, n, c, hd);
  linear_fwd(w.v, s.ln, s.v, n, c, hd);
  linear_fwd(w.g, s.ln, s.g, n, c, hd);
  if (w.pair_bias) {
    // Pair bias b[h, i, j] from the pair representation [len, len, c_bias]: its own
    // LayerNorm of z (MSA row attention) or the attention's LayerNorm of x (triangle).
    const std::int64_t cb = bias_from_self ? c : d_.c_z;
    const T* src = &s.ln;
    if (!bias_from_self) {
      ln_fwd(w.ln_bias, *z, len * len, cb, s.zln, s.zmean, s.zrstd);
      src = &s.zln;
    }
    s.bias_lin = ops_.alloc(len * len * w.heads, MemoryKind::kActivations, "pair_bias_linear");
    // Triangle attention: the bias for row i is b[j, k] from the same pair matrix, so
    // the projection runs over all len*len pairs of the (possibly transposed) input.
    linear_fwd(w.bias, *src, s.bias_lin, len * len, cb, w.heads);
    s.bias = ops_.alloc(w.heads * len * len, MemoryKind::kActivations, "pair_bias");
    ops_.permute_0213(s.bias_lin, s.bias, 1, len * len, w.heads, 1);
    release(s.bias_lin);
  }
  s.o = ops_.alloc(n * hd, MemoryKind::kActivations, "attention_out");
  s.attn = ops_.attention_fwd(s.q, s.k, s.v, w.pair_bias ? &s.bias : nullptr, s.o, rows, len, w.heads, w.head_dim);
  s.og = ops_.alloc(n * hd, MemoryKind::kActivations, "gated_out");
  ops_.sigmoid_mul(s.g, s.o, s.og, n * hd);
  T y = ops_.alloc(n * c, MemoryKind::kActivations, "attention_projection");
  linear_fwd(w.o, s.og, y, n, hd, c);
  if (transposed) {
    s.out = ops_.alloc(n * c, MemoryKind::kActivations, "attention_module_out");
    ops_.permute_0213(y, s.out, 1, rows, len, c);
    release(y);
  } else {
    s.out = y;
  }
  return s;
}

// dx_acc: the residual stream gradient, d(out) on entry; the module's input gradient is
// added to it. dz_acc: where MSA row attention's pair-bias gradient goes (dz0).
template <class Ops>
void EvoformerBlock<Ops>::attention_bwd(AttnW& w, AttnSaved& s, const T& x, T& dx_acc, T* dz_acc) {
  const std::int64_t rows = s.rows, len = s.len, n = rows * len, c = w.c_in, hd = w.heads * w.head_dim;
  T dy = ops_.alloc(n * c, MemoryKind::kWorkspace, "d_attention_out");
  if (s.transposed) {
    ops_.permute_0213(dx_acc, dy, 1, len, rows, c);
  } else {
    copy(dx_acc, dy, n * c);
  }
  T dog = ops_.alloc(n * hd, MemoryKind::kWorkspace, "d_gated_out");
  linear_bwd(w.o, s.og, dy, &dog, false, n, hd, c);
  release(dy);
  release(s.og);
  T dg = ops_.alloc(n * hd, MemoryKind::kWorkspace, "d_gate");
  T d_o = ops_.alloc(n * hd, MemoryKind::kWorkspace, "d_attention");
  ops_.sigmoid_mul_bwd(dog, s.g, s.o, dg, d_o, n * hd);
  release(dog);
  T dq = ops_.alloc(n * hd, MemoryKind::kWorkspace, "dq");
  T dk = ops_.alloc(n * hd, MemoryKind::kWorkspace, "dk");
  T dv = ops_.alloc(n * hd, MemoryKind::kWorkspace, "dv");
  T dbias{};
  if (w.pair_bias) dbias = ops_.alloc(w.heads * len * len, MemoryKind::kWorkspace, "d_pair_bias");
  ops_.attention_bwd(s.attn, d_o, dq, dk, dv, w.pair_bias ? &dbias : nullptr);
  ops_.release_saved(s.attn);
  release(d_o);
  release(s.o);  // the fused backward reads O (row_dot = dO . O)
  // d(LayerNorm output) = dq Wq^T + dk Wk^T + dv Wv^T + dg Wg^T (+ the bias share).
  T dln = ops_.alloc(n * c, MemoryKind::kWorkspace, "d_layernorm_out");
  linear_bwd(w.q, s.ln, dq, &dln, false, n, c, hd);
  linear_bwd(w.k, s.ln, dk, &dln, true, n, c, hd);
  linear_bwd(w.v, s.ln, dv, &dln, true, n, c, hd);
  linear_bwd(w.g, s.ln, dg, &dln, true, n, c, hd);
  release(dq);
  release(dk);
  release(dv);
  release(dg);
  release(s.q);
  release(s.k);
  release(s.v);
  release(s.g);
  if (w.pair_bias) {
    T dbl = ops_.alloc(len * len * w.heads, MemoryKind::kWorkspace, "d_pair_bias_linear");
    ops_.permute_0213(dbias, dbl, 1, w.heads, len * len, 1);
    release(dbias);
    release(s.bias);
    if (s.bias_from_self) {
      // The triangle bias reads the same LayerNorm output over all len*len pairs.
      linear_bwd(w.bias, s.ln, dbl, &dln, true, len * len, c, w.heads);
    } else {
      const std::int64_t cz = d_.c_z;
      T dzln = ops_.alloc(len * len * cz, MemoryKind::kWorkspace, "d_pair_layernorm_out");
      linear_bwd(w.bias, s.zln, dbl, &dzln, false, len * len, cz, w.heads);
      ln_bwd(w.ln_bias, dzln, z0_, s.zmean, s.zrstd, *dz_acc, len * len, cz);
      release(dzln);
      release(s.zln);
      release(s.zmean);
      release(s.zrstd);
    }
    release(dbl);
  }
  // LayerNorm backward into the (transposed) input gradient, then back to x's layout.
  input_ln_bwd(w, s, x, dln, dx_acc);
}

// global column attention (extra-MSA stack, Algorithm 19)

// x [len, rows, c] (len = N_extra): per column r, q_bar = mean_s q_s [heads, D]; one key
// and value head k, v [len, D]; a = softmax(q_bar k^T / sqrt(D)) [heads, len];
// o = a v [heads, D], broadcast over s and gated: out_s = (sigmoid(g_s) * o) Wo + bo.
template <class Ops>
auto EvoformerBlock<Ops>::global_attention_fwd(AttnW& w, const T& x, std::int64_t rows, std::int64_t len,
                                               std::int64_t c) -> AttnSaved {
  AttnSaved s;
  s.rows = rows;
  s.len = len;
  s.transposed = true;
  const std::int64_t n = rows * len, H = w.heads, D = w.head_dim, hd = H * D;
  s.xt = ops_.alloc(n * c, MemoryKind::kActivations, "attention_input_transposed");
  ops_.permute_0213(x, s.xt, 1, len, rows, c);
  ln_fwd(w.ln, s.xt, n, c, s.ln, s.mean, s.rstd);
  s.q = ops_.alloc(n * hd, MemoryKind::kActivations, "q");
  s.k = ops_.alloc(n * D, MemoryKind::kActivations, "k");
  s.v = ops_.alloc(n * D, MemoryKind::kActivations, "v");
  s.g = ops_.alloc(n * hd, MemoryKind::kActivations, "gate");
  linear_fwd(w.q, s.ln, s.q, n, c, hd);
  linear_fwd(w.k, s.ln, s.k, n, c, D);
  linear_fwd(w.v, s.ln, s.v, n, c, D);
  linear_fwd(w.g, s.ln, s.g, n, c, hd);
  s.qbar = ops_.alloc(rows * hd, MemoryKind::kActivations, "global_query");
  ops_.sum_rows(s.q, s.qbar, rows, len, hd, 1.0 / static_cast<double>(len));
  s.gprobs = ops_.alloc(rows * H * len, MemoryKind::kActivations, "global_attention_probs");
  ops_.gemm(false, true, H, len, D, 1.0 / std::sqrt(static_cast<double>(D)), s.qbar, s.k, 0.0, s.gprobs, rows);
  ops_.softmax_rows(s.gprobs, s.gprobs, rows * H, len);
  s.obar = ops_.alloc(rows * hd, MemoryKind::kActivations, "global_attention_out");
  ops_.gemm(false, false, H, D, len, 1.0, s.gprobs, s.v, 0.0, s.obar, rows);
  T ob = ops_.alloc(n * hd, MemoryKind::kWorkspace, "global_attention_out_broadcast");
  ops_.broadcast_rows(s.obar, ob, rows, len, hd, 1.0);
  s.og = ops_.alloc(n * hd, MemoryKind::kActivations, "gated_out");
  ops_.sigmoid_mul(s.g, ob, s.og, n * hd);
  release(ob);
  T y = ops_.alloc(n * c, MemoryKind::kActivations, "attention_projection");
  linear_fwd(w.o, s.og, y, n, hd, c);
  s.out = ops_.alloc(n * c, MemoryKind::kActivations, "attention_module_out");
  ops_.permute_0213(y, s.out, 1, rows, len, c);
  release(y);
  return s;
}

template <class Ops>
void EvoformerBlock<Ops>::global_attention_bwd(AttnW& w, AttnSaved& s, T& dx_acc) {
  const std::int64_t rows = s.rows, len = s.len, n = rows * len, c = w.c_in, H = w.heads, D = w.head_dim, hd = H * D;
  const double inv_sqrt_d = 1.0 / std::sqrt(static_cast<double>(D));
  T dy = ops_.alloc(n * c, MemoryKind::kWorkspace, "d_attention_out");
  ops_.permute_0213(dx_acc, dy, 1, len, rows, c);
  T dog = ops_.alloc(n * hd, MemoryKind::kWorkspace, "d_gated_out");
  linear_bwd(w.o, s.og, dy, &dog, false, n, hd, c);
  release(dy);
  release(s.og);
  T ob = ops_.alloc(n * hd, MemoryKind::kWorkspace, "global_attention_out_broadcast");
  ops_.broadcast_rows(s.obar, ob, rows, len, hd, 1.0);
  T dg = ops_.alloc(n * hd, MemoryKind::kWorkspace, "d_gate");
  T dob = ops_.alloc(n * hd, MemoryKind::kWorkspace, "d_global_attention_out_broadcast");
  ops_.sigmoid_mul_bwd(dog, s.g, ob, dg, dob, n * hd);
  release(dog);
  release(ob);
  T dobar = ops_.alloc(rows * hd, MemoryKind::kWorkspace, "d_global_attention_out");
  ops_.sum_rows(dob, dobar, rows, len, hd, 1.0);
  release(dob);
  T dprobs = ops_.alloc(rows * H * len, MemoryKind::kWorkspace, "d_global_attention_probs");
  ops_.gemm(false, true, H, len, D, 1.0, dobar, s.v, 0.0, dprobs, rows);
  T dv = ops_.alloc(n * D, MemoryKind::kWorkspace, "dv");
  ops_.gemm(true, false, len, D, H, 1.0, s.gprobs, dobar, 0.0, dv, rows);
  release(dobar);
  release(s.obar);
  ops_.softmax_rows_bwd(dprobs, s.gprobs, dprobs, rows * H, len);
  release(s.gprobs);
  T dqbar = ops_.alloc(rows * hd, MemoryKind::kWorkspace, "d_global_query");
  ops_.gemm(false, false, H, D, len, inv_sqrt_d, dprobs, s.k, 0.0, dqbar, rows);
  T dk = ops_.alloc(n * D, MemoryKind::kWorkspace, "dk");
  ops_.gemm(true, false, len, D, H, inv_sqrt_d, dprobs, s.qbar, 0.0, dk, rows);
  release(dprobs);
  release(s.qbar);
  T dq = ops_.alloc(n * hd, MemoryKind::kWorkspace, "dq");
  ops_.broadcast_rows(dqbar, dq, rows, len, hd, 1.0 / static_cast<double>(len));
  release(dqbar);
  T dln = ops_.alloc(n * c, MemoryKind::kWorkspace, "d_layernorm_out");
  linear_bwd(w.q, s.ln, dq, &dln, false, n, c, hd);
  linear_bwd(w.k, s.ln, dk, &dln, true, n, c, D);
  linear_bwd(w.v, s.ln, dv, &dln, true, n, c, D);
  linear_bwd(w.g, s.ln, dg, &dln, true, n, c, hd);
  release(dq);
  release(dk);
  release(dv);
  release(dg);
  release(s.q);
  release(s.k);
  release(s.v);
  release(s.g);
  input_ln_bwd(w, s, s.xt, dln, dx_acc);
}

// The input LayerNorm's backward, added into the residual stream gradient dx_acc (in x's
// layout: through the transpose when the module attended over the first axis); releases
// dln and everything the LayerNorm kept.
template <class Ops>
void EvoformerBlock<Ops>::input_ln_bwd(AttnW& w, AttnSaved& s, const T& x, T& dln, T& dx_acc) {
  const std::int64_t rows = s.rows, len = s.len, n = rows * len, c = w.c_in;
  if (s.transposed) {
    T dxt = ops_.alloc(n * c, MemoryKind::kWorkspace, "d_attention_input_transposed");
    ops_.permute_0213(dx_acc, dxt, 1, len, rows, c);  // residual share, transposed
    ln_bwd(w.ln, dln, s.xt, s.mean, s.rstd, dxt, n, c);
    ops_.permute_0213(dxt, dx_acc, 1, rows, len, c);
    release(dxt);
    release(s.xt);
  } else {
    ln_bwd(w.ln, dln, x, s.mean, s.rstd, dx_acc, n, c);
  }
  release(dln);
  release(s.ln);
  release(s.mean);
  release(s.rstd);
}

}  // namespace seqscale
