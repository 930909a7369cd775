// The Evoformer block's other modules: transitions, outer product mean and the triangle
// multiplicative updates.
// Out-of-line members of EvoformerBlock (evoformer_block_def.h, which includes this file
// at its end): what the block's modules store and free, in the order they run.
#pragma once
#include <cmath>
#include <cstdint>

#include "layers/evoformer_block/evoformer_block_def.h"

namespace seqscale {

// transitions

template <class Ops>
auto EvoformerBlock<Ops>::transition_fwd(TransW& w, const T& x, std::int64_t rows, std::int64_t c) -> TransSaved {
  TransSaved s;
  const std::int64_t hidden = d_.transition * c;
  ln_fwd(w.ln, x, rows, c, s.ln, s.mean, s.rstd);
  s.h = ops_.alloc(rows * hidden, MemoryKind::kActivations, "transition_hidden");
  linear_fwd(w.w1, s.ln, s.h, rows, c, hidden);
  ops_.relu(s.h, s.h, rows * hidden);
  s.out = ops_.alloc(rows * c, MemoryKind::kActivations, "transition_out");
  linear_fwd(w.w2, s.h, s.out, rows, hidden, c);
  return s;
}

template <class Ops>
void EvoformerBlock<Ops>::transition_bwd(TransW& w, TransSaved& s, const T& x, T& dx_acc, std::int64_t rows,
                                         std::int64_t c) {
  const std::int64_t hidden = d_.transition * c;
  T dh = ops_.alloc(rows * hidden, MemoryKind::kWorkspace, "d_transition_hidden");
  linear_bwd(w.w2, s.h, dx_acc, &dh, false, rows, hidden, c);
  ops_.relu_bwd(dh, s.h, dh, rows * hidden);
  release(s.h);
  T dln = ops_.alloc(rows * c, MemoryKind::kWorkspace, "d_layernorm_out");
  linear_bwd(w.w1, s.ln, dh, &dln, false, rows, c, hidden);
  release(dh);
  ln_bwd(w.ln, dln, x, s.mean, s.rstd, dx_acc, rows, c);
  release(dln);
  release(s.ln);
  release(s.mean);
  release(s.rstd);
}

// outer product mean

// outer[i, j, c1, c2] = (1/S) sum_s a[s, i, c1] b[s, j, c2]: one GEMM a'^T b' over S with
// a', b' viewed as [S, R*c], then [R, c, R, c] -> [R, R, c, c].
template <class Ops>
auto EvoformerBlock<Ops>::opm_fwd(const T& m) -> OpmSaved {
  OpmSaved s;
  const std::int64_t S = d_.n_seq, R = d_.n_res, cm = d_.c_m, c = d_.c_opm, cz = d_.c_z;
  ln_fwd(opm_w_.ln, m, S * R, cm, s.ln, s.mean, s.rstd);
  s.a = ops_.alloc(S * R * c, MemoryKind::kActivations, "opm_a");
  s.b = ops_.alloc(S * R * c, MemoryKind::kActivations, "opm_b");
  linear_fwd(opm_w_.a, s.ln, s.a, S * R, cm, c);
  linear_fwd(opm_w_.b, s.ln, s.b, S * R, cm, c);
  T prod = ops_.alloc(R * c * R * c, MemoryKind::kWorkspace, "opm_product");
  ops_.gemm(true, false, R * c, R * c, S, 1.0 / static_cast<double>(S), s.a, s.b, 0.0, prod, 1);
  s.outer = ops_.alloc(R * R * c * c, MemoryKind::kActivations, "opm_outer");
  ops_.permute_0213(prod, s.outer, R, c, R, c);
  release(prod);
  s.out = ops_.alloc(R * R * cz, MemoryKind::kActivations, "opm_out");
  linear_fwd(opm_w_.o, s.outer, s.out, R * R, c * c, cz);
  return s;
}

template <class Ops>
void EvoformerBlock<Ops>::opm_bwd(OpmSaved& s, const T& m, const T& dz, T& dm_acc) {
  const std::int64_t S = d_.n_seq, R = d_.n_res, cm = d_.c_m, c = d_.c_opm, cz = d_.c_z;
  T douter = ops_.alloc(R * R * c * c, MemoryKind::kWorkspace, "d_opm_outer");
  linear_bwd(opm_w_.o, s.outer, dz, &douter, false, R * R, c * c, cz);
  release(s.outer);
  T dprod = ops_.alloc(R * c * R * c, MemoryKind::kWorkspace, "d_opm_product");
  ops_.permute_0213(douter, dprod, R, R, c, c);
  release(douter);
  const double inv = 1.0 / static_cast<double>(S);
  T da = ops_.alloc(S * R * c, MemoryKind::kWorkspace, "d_opm_a");
  T db = ops_.alloc(S * R * c, MemoryKind::kWorkspace, "d_opm_b");
  ops_.gemm(false, true, S, R * c, R * c, inv, s.b, dprod, 0.0, da, 1);   // da = b' dP^T / S
  ops_.gemm(false, false, S, R * c, R * c, inv, s.a, dprod, 0.0, db, 1);  // db = a' dP / S
  release(dprod);
  T dln = ops_.alloc(S * R * cm, MemoryKind::kWorkspace, "d_layernorm_out");
  linear_bwd(opm_w_.a, s.ln, da, &dln, false, S * R, cm, c);
  linear_bwd(opm_w_.b, s.ln, db, &dln, true, S * R, cm, c);
  release(da);
  release(db);
  release(s.a);
  release(s.b);
  ln_bwd(opm_w_.ln, dln, m, s.mean, s.rstd, dm_acc, S * R, cm);
  release(dln);
  release(s.ln);
  release(s.mean);
  release(s.rstd);
}

// triangle multiplicative update

// a = sigmoid(ln Wag) * (ln Wap), b likewise, channel-first [c, R, R]; outgoing
// x_c = a_c b_c^T (sum over k of a_ik b_jk), incoming x_c = a_c^T b_c (a_ki b_kj);
// out = sigmoid(ln Wg) * (LayerNorm(x) Wp).
template <class Ops>
auto EvoformerBlock<Ops>::trimul_fwd(TriMulW& w, const T& z) -> TriMulSaved {
  TriMulSaved s;
  const std::int64_t R = d_.n_res, cz = d_.c_z, c = d_.c_tri_mul, n = R * R;
  ln_fwd(w.ln_in, z, n, cz, s.ln, s.mean, s.rstd);
  s.ag = ops_.alloc(n * c, MemoryKind::kActivations, "trimul_a_gate");
  s.ap = ops_.alloc(n * c, MemoryKind::kActivations, "trimul_a_proj");
  s.bg = ops_.alloc(n * c, MemoryKind::kActivations, "trimul_b_gate");
  s.bp = ops_.alloc(n * c, MemoryKind::kActivations, "trimul_b_proj");
  linear_fwd(w.ag, s.ln, s.ag, n, cz, c);
  linear_fwd(w.ap, s.ln, s.ap, n, cz, c);
  linear_fwd(w.bg, s.ln, s.bg, n, cz, c);
  linear_fwd(w.bp, s.ln, s.bp, n, cz, c);
  T a = ops_.alloc(n * c, MemoryKind::kWorkspace, "trimul_a");
  T b = ops_.alloc(n * c, MemoryKind::kWorkspace, "trimul_b");
  ops_.sigmoid_mul(s.ag, s.ap, a, n * c);
  ops_.sigmoid_mul(s.bg, s.bp, b, n * c);
  s.a = ops_.alloc(n * c, MemoryKind::kActivations, "trimul_a_channel_first");
  s.b = ops_.alloc(n * c, MemoryKind::kActivations, "trimul_b_channel_first");
  ops_.permute_0213(a, s.a, 1, n, c, 1);
  ops_.permute_0213(b, s.b, 1, n, c, 1);
  release(a);
  release(b);
  T xc = ops_.alloc(n * c, MemoryKind::kWorkspace, "trimul_x_channel_first");
  if (w.outgoing) {
    ops_.gemm(false, true, R, R, R, 1.0, s.a, s.b, 0.0, xc, c);
  } else {
    ops_.gemm(true, false, R, R, R, 1.0, s.a, s.b, 0.0, xc, c);
  }
  s.x = ops_.alloc(n * c, MemoryKind::kActivations, "trimul_x");
  ops_.permute_0213(xc, s.x, 1, c, n, 1);
  release(xc);
  ln_fwd(w.ln_out, s.x, n, c, s.xln, s.xmean, s.xrstd);
  s.p = ops_.alloc(n * cz, MemoryKind::kActivations, "trimul_proj");
  linear_fwd(w.p, s.xln, s.p, n, c, cz);
  s.g = ops_.alloc(n * cz, MemoryKind::kActivations, "trimul_gate");
  linear_fwd(w.g, s.ln, s.g, n, cz, cz);
  s.out = ops_.alloc(n * cz, MemoryKind::kActivations, "trimul_out");
  ops_.sigmoid_mul(s.g, s.p, s.out, n * cz);
  return s;
}

template <class Ops>
void EvoformerBlock<Ops>::trimul_bwd(TriMulW& w, TriMulSaved& s, const T& z, T& dz_acc) {
  const std::int64_t R = d_.n_res, cz = d_.c_z, c = d_.c_tri_mul, n = R * R;
  T dgp = ops_.alloc(n * cz, MemoryKind::kWorkspace, "d_trimul_gate");
  T dp = ops_.alloc(n * cz, MemoryKind::kWorkspace, "d_trimul_proj");
  ops_.sigmoid_mul_bwd(dz_acc, s.g, s.p, dgp, dp, n * cz);
  release(s.p);
  T dln = ops_.alloc(n * cz, MemoryKind::kWorkspace, "d_layernorm_out");
  linear_bwd(w.g, s.ln, dgp, &dln, false, n, cz, cz);
  release(dgp);
  release(s.g);
  T dxln = ops_.alloc(n * c, MemoryKind::kWorkspace, "d_trimul_x_layernorm");
  linear_bwd(w.p, s.xln, dp, &dxln, false, n, c, cz);
  release(dp);
  T dx = ops_.alloc(n * c, MemoryKind::kWorkspace, "d_trimul_x");
  layer_norm_bwd_write(w.ln_out, dxln, s.x, s.xmean, s.xrstd, dx, n, c);
  release(dxln);
  release(s.xln);
  release(s.xmean);
  release(s.xrstd);
  release(s.x);
  T dxc = ops_.alloc(n * c, MemoryKind::kWorkspace, "d_trimul_x_channel_first");
  ops_.permute_0213(dx, dxc, 1, n, c, 1);
  release(dx);
  T dac = ops_.alloc(n * c, MemoryKind::kWorkspace, "d_trimul_a_channel_first");
  T dbc = ops_.alloc(n * c, MemoryKind::kWorkspace, "d_trimul_b_channel_first");
  if (w.outgoing) {  // x = a b^T: da = dx b, db = dx^T a
    ops_.gemm(false, false, R, R, R, 1.0, dxc, s.b, 0.0, dac, c);
    ops_.gemm(true, false, R, R, R, 1.0, dxc, s.a, 0.0, dbc, c);
  } else {           // x = a^T b: da = b dx^T, db = a dx
    ops_.gemm(false, true, R, R, R, 1.0, s.b, dxc, 0.0, dac, c);
    ops_.gemm(false, false, R, R, R, 1.0, s.a, dxc, 0.0, dbc, c);
  }
  release(dxc);
  release(s.a);
  release(s.b);
  T da = ops_.alloc(n * c, MemoryKind::kWorkspace, "d_trimul_a");
  T db = ops_.alloc(n * c, MemoryKind::kWorkspace, "d_trimul_b");
  ops_.permute_0213(dac, da, 1, c, n, 1);
  ops_.permute_0213(dbc, db, 1, c, n, 1);
  release(dac);
  release(dbc);
  T dg = ops_.alloc(n * c, MemoryKind::kWorkspace, "d_trimul_side_gate");
  T dpr = ops_.alloc(n * c, MemoryKind::kWorkspace, "d_trimul_side_proj");
  ops_.sigmoid_mul_bwd(da, s.ag, s.ap, dg, dpr, n * c);
  linear_bwd(w.ag, s.ln, dg, &dln, true, n, cz, c);
  linear_bwd(w.ap, s.ln, dpr, &dln, true, n, cz, c);
  ops_.sigmoid_mul_bwd(db, s.bg, s.bp, dg, dpr, n * c);
  linear_bwd(w.bg, s.ln, dg, &dln, true, n, cz, c);
  linear_bwd(w.bp, s.ln, dpr, &dln, true, n, cz, c);
  release(dg);
  release(dpr);
  release(da);
  release(db);
  release(s.ag);
  release(s.ap);
  release(s.bg);
  release(s.bp);
  ln_bwd(w.ln_in, dln, z, s.mean, s.rstd, dz_acc, n, cz);
  release(dln);
  release(s.ln);
  release(s.mean);
  release(s.rstd);
}

template <class Ops>
void EvoformerBlock<Ops>::layer_norm_bwd_write(LayerNormW& l, const T& dy, const T& x, const T& mean, const T& rstd,
                                               T& dx, std::int64_t rows, std::int64_t c) {
  ops_.layernorm_bwd(dy, x, l.w.w, mean, rstd, dx, l.w.dw, l.b.dw, rows, c);
}

}  // namespace seqscale
