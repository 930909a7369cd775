// One AlphaFold2 Evoformer block (Jumper et al. 2021, supplement Algorithm 6), forward and
// backward, written once over a backend `Ops`:
//   m1 = m0 + RowAttentionWithPairBias(m0, z0)    m2 = m1 + ColumnAttention(m1)
//   m3 = m2 + MsaTransition(m2)                   z1 = z0 + OuterProductMean(m3)
//   z2 = z1 + TriangleMultiplicationOutgoing(z1)  z3 = z2 + TriangleMultiplicationIncoming(z2)
//   z4 = z3 + TriangleAttentionStartingNode(z3)   z5 = z4 + TriangleAttentionEndingNode(z4)
//   z6 = z5 + PairTransition(z5)
// m [N_seq, N_res, c_m], z [N_res, N_res, c_z], row-major. With `global_column` the block
// is an extra-MSA stack block (Algorithm 18): m is the extra MSA [N_extra, N_res, c_e] and
// the column attention is MSAColumnGlobalAttention (Algorithm 19: one mean query per head,
// a single shared key and value head), so nothing of size N_extra^2 exists. Dropout is left out (it changes
// neither FLOPs nor what is stored) and OuterProductMean divides by N_seq (no MSA mask).
//
// The same text runs on three backends, so what is priced is what is run:
//   EvoformerBlockCpuOps (double, the reference), the CUDA backend (cuBLAS GEMMs, the
//   LayerNorm kernel, naive or fused Evoformer attention) and the recording backend in
//   layers/evoformer_block/evoformer_block_program.cc that turns every call into a ComputeOp with its FLOPs
//   and every alloc/release into a MemoryEvent.
//
// Backend contract (every tensor is a contiguous array of `numel` elements):
//   Tensor alloc(n, kind, what) / release(t)     kind: the MemoryKind the bytes count as
//   Tensor param(n, what) / param_grad(n, what)  weights (initialised by the backend owner)
//   layernorm_fwd(x, w, b, y, mean, rstd, rows, cols)
//   layernorm_bwd(dy, x, w, mean, rstd, dx, dw, db, rows, cols)            (writes dx dw db)
//   gemm(ta, tb, m, n, k, alpha, A, B, beta, C, batch)   row-major C = a op(A) op(B) + b C,
//       op(A) [m,k] (A stored [k,m] when ta), op(B) [k,n] (B stored [n,k] when tb),
//       `batch` matrices each, packed back to back
//   bias_add(y, b, rows, cols) / bias_grad(dy, db, rows, cols)  (db = column sums, written)
//   sigmoid_mul(g, x, y, n)        y = sigmoid(g) x
//   sigmoid_mul_bwd(dy, g, x, dg, dx, n)   (either output may be a null tensor)
//   relu(x, y, n) / relu_bwd(dy, y, dx, n)
//   add(a, b, y, n) y = a + b;  accumulate(y, x, n) y += x
//   sum_rows(x, y, batch, rows, cols, alpha)        y[b][c] = alpha sum_r x[b][r][c]
//   broadcast_rows(x, y, batch, rows, cols, alpha)  y[b][r][c] = alpha x[b][c]
//   softmax_rows(x, y, rows, cols) / softmax_rows_bwd(dy, y, dx, rows, cols)  (in place ok)
//   permute_0213(x, y, d0, d1, d2, d3)     y[a][c][b][d] = x[a][b][c][d]
//   Saved attention_fwd(q, k, v, bias_or_null, o, rows, len, heads, head_dim)
//       Evoformer attention (kernels/evoformer_attn) on [rows, len, heads, head_dim] with an
//       optional pair bias [heads, len, len] broadcast over rows; no mask
//   attention_bwd(saved, d_o, dq, dk, dv, dbias_or_null); release_saved(saved)
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "workloads/specs.h"
#include "workloads/step_program.h"

namespace seqscale {

// Mixed precision, as every backend stores it: weights and activations in the block's I/O
// dtype, parameter gradients in fp32, and the tensors the kernels keep in fp32 whatever
// the I/O dtype (LayerNorm statistics, the attention's d(pair bias) accumulator).
inline bool evoformer_block_fp32_tensor(const char* what, MemoryKind kind) {
  if (kind == MemoryKind::kGradients) return true;
  for (const char* t : {"layernorm_mean", "layernorm_rstd", "d_pair_bias"}) {
    const char* a = what;
    const char* b = t;
    while (*a && *a == *b) ++a, ++b;
    if (*a == 0 && *b == 0) return true;
  }
  return false;
}

struct EvoformerBlockDims {
  std::int64_t n_seq = 0, n_res = 0, c_m = 0, c_z = 0;
  std::int64_t msa_heads = 0, msa_head_dim = 0;  // row and column attention
  std::int64_t tri_heads = 0, tri_head_dim = 0;  // triangle attention
  std::int64_t c_opm = 32, c_tri_mul = 128, transition = 4;
  bool global_column = false;  // extra-MSA stack block

  static EvoformerBlockDims from_spec(const EvoformerSpec& e) {
    return {e.n_seq, e.n_res, e.c_m, e.c_z, e.msa.heads, e.msa.head_dim, e.triangle.heads, e.triangle.head_dim,
            e.c_hidden_opm, e.c_hidden_tri_mul, e.transition_factor, false};
  }
  // The extra-MSA stack's block at the same crop: N_extra rows of c_e channels.
  static EvoformerBlockDims extra_msa_from_spec(const EvoformerSpec& e) {
    return {e.n_extra, e.n_res, e.c_e, e.c_z, e.extra_msa.heads, e.extra_msa.head_dim, e.triangle.heads,
            e.triangle.head_dim, e.c_hidden_opm, e.c_hidden_tri_mul, e.transition_factor, true};
  }
};

template <class Ops>
class EvoformerBlock {
 public:
  using T = typename Ops::Tensor;
  struct Param { T w, dw; };
  struct LayerNormW { Param w, b; };
  struct Linear { Param w, b; bool has_bias = true; };  // w [in, out]

  EvoformerBlock(Ops& ops, const EvoformerBlockDims& d) : ops_(ops), d_(d) { declare(); }
  EvoformerBlock(const EvoformerBlock&) = delete;  // params() points into the members
  EvoformerBlock& operator=(const EvoformerBlock&) = delete;

  const EvoformerBlockDims& dims() const { return d_; }
  // Every weight with its gradient, in declaration order (the test and the GPU runner fill
  // them from one host array so that all backends see the same weights).
  std::vector<Param*>& params() { return params_; }

  // Forward of the block from m0, z0; keeps what backward needs. Outputs are m_out, z_out
  // (owned by the block until backward releases them).
  void forward(const T& m0, const T& z0) {
    const std::int64_t S = d_.n_seq, R = d_.n_res, cm = d_.c_m, cz = d_.c_z;
    const std::int64_t nm = S * R * cm, nz = R * R * cz;
    m0_ = m0;
    z0_ = z0;
    row_ = attention_fwd(row_w_, m0, S, R, cm, &z0, /*bias_from_self=*/false, /*transposed=*/false);
    m1_ = residual(m0, row_.out, nm, "m1");
    col_ = d_.global_column ? global_attention_fwd(col_w_, m1_, R, S, cm)
                            : attention_fwd(col_w_, m1_, R, S, cm, nullptr, false, /*transposed=*/true);
    m2_ = residual(m1_, col_.out, nm, "m2");
    msa_tr_ = transition_fwd(msa_tr_w_, m2_, S * R, cm);
    m_out = residual(m2_, msa_tr_.out, nm, "m3");
    opm_ = opm_fwd(m_out);
    z1_ = residual(z0, opm_.out, nz, "z1");
    tmo_ = trimul_fwd(tmo_w_, z1_);
    z2_ = residual(z1_, tmo_.out, nz, "z2");
    tmi_ = trimul_fwd(tmi_w_, z2_);
    z3_ = residual(z2_, tmi_.out, nz, "z3");
    tas_ = attention_fwd(tas_w_, z3_, R, R, cz, nullptr, /*bias_from_self=*/true, false);
    z4_ = residual(z3_, tas_.out, nz, "z4");
    tae_ = attention_fwd(tae_w_, z4_, R, R, cz, nullptr, true, /*transposed=*/true);
    z5_ = residual(z4_, tae_.out, nz, "z5");
    pair_tr_ = transition_fwd(pair_tr_w_, z5_, R * R, cz);
    z_out = residual(z5_, pair_tr_.out, nz, "z6");
  }

  // Backward from dm_out, dz_out; writes dm0, dz0 (allocated by the caller) and every
  // parameter gradient; releases everything forward kept, including m_out and z_out.
  void backward(const T& dm_out, const T& dz_out, T& dm0, T& dz0) {
    const std::int64_t S = d_.n_seq, R = d_.n_res, cm = d_.c_m, cz = d_.c_z;
    const std::int64_t nm = S * R * cm, nz = R * R * cz;
    // Residual stream gradients: dz carries d z_k as we walk back; each module adds its
    // input gradient into it.
    T dz = ops_.alloc(nz, MemoryKind::kActivations, "dz");
    T dm = ops_.alloc(nm, MemoryKind::kActivations, "dm");
    copy(dz_out, dz, nz);
    copy(dm_out, dm, nm);
    release(z_out);
    transition_bwd(pair_tr_w_, pair_tr_, z5_, dz, R * R, cz);
    release(z5_);
    attention_bwd(tae_w_, tae_, z4_, dz, nullptr);
    release(z4_);
    attention_bwd(tas_w_, tas_, z3_, dz, nullptr);
    release(z3_);
    trimul_bwd(tmi_w_, tmi_, z2_, dz);
    release(z2_);
    trimul_bwd(tmo_w_, tmo_, z1_, dz);
    release(z1_);
    opm_bwd(opm_, m_out, dz, dm);  // dz now is d z0 (residual); dm gains OPM's share
    copy(dz, dz0, nz);
    release(dz);
    release(m_out);
    transition_bwd(msa_tr_w_, msa_tr_, m2_, dm, S * R, cm);
    release(m2_);
    if (d_.global_column) {
      global_attention_bwd(col_w_, col_, dm);
    } else {
      attention_bwd(col_w_, col_, m1_, dm, nullptr);
    }
    release(m1_);
    attention_bwd(row_w_, row_, m0_, dm, &dz0);
    copy(dm, dm0, nm);
    release(dm);
  }

  T m_out{}, z_out{};

 private:
  struct AttnW {
    LayerNormW ln;
    Linear q, k, v, g, o;
    LayerNormW ln_bias;   // MSA row attention: LayerNorm of z for the pair bias
    Linear bias;          // [c_z, heads], no bias term
    bool pair_bias = false, ln_bias_separate = false, global = false;
    std::int64_t heads = 0, head_dim = 0, c_in = 0;
  };
  struct AttnSaved {
    T xt{}, ln{}, mean{}, rstd{}, q{}, k{}, v{}, g{}, o{}, og{}, out{};
    T zln{}, zmean{}, zrstd{}, bias_lin{}, bias{};
    T qbar{}, gprobs{}, obar{};  // global attention: mean query, [rows, heads, len], output
    typename Ops::Saved attn{};
    std::int64_t rows = 0, len = 0;
    bool transposed = false, bias_from_self = false, has_bias = false;
  };
  struct TransW { LayerNormW ln; Linear w1, w2; };
  struct TransSaved { T ln{}, mean{}, rstd{}, h{}, out{}; };
  struct OpmW { LayerNormW ln; Linear a, b, o; };
  struct OpmSaved { T ln{}, mean{}, rstd{}, a{}, b{}, outer{}, out{}; };
  struct TriMulW { LayerNormW ln_in, ln_out; Linear ag, ap, bg, bp, g, p; bool outgoing = true; };
  struct TriMulSaved {
    T ln{}, mean{}, rstd{}, ag{}, ap{}, bg{}, bp{}, a{}, b{}, g{}, x{}, xln{}, xmean{}, xrstd{}, p{}, out{};
  };

  Param make_param(std::int64_t n, const char* what) {
    Param p{ops_.param(n, what), ops_.param_grad(n, what)};
    return p;
  }
  LayerNormW make_ln(std::int64_t c, const char* what) { return {make_param(c, what), make_param(c, what)}; }
  Linear make_linear(std::int64_t in, std::int64_t out, bool bias, const char* what) {
    Linear l;
    l.w = make_param(in * out, what);
    l.has_bias = bias;
    if (bias) l.b = make_param(out, what);
    return l;
  }
  void collect(LayerNormW& l) { params_.push_back(&l.w); params_.push_back(&l.b); }
  void collect(Linear& l) {
    params_.push_back(&l.w);
    if (l.has_bias) params_.push_back(&l.b);
  }

  // Built in place: params_ keeps pointers into the members.
  void make_attention(AttnW& a, std::int64_t c_in, std::int64_t heads, std::int64_t head_dim, bool pair_bias,
                      bool ln_bias_separate, const char* what, bool global = false) {
    a.heads = heads;
    a.head_dim = head_dim;
    a.c_in = c_in;
    a.pair_bias = pair_bias;
    a.ln_bias_separate = ln_bias_separate;
    a.global = global;
    const std::int64_t hd = heads * head_dim, kv = global ? head_dim : hd;  // global: one key/value head
    a.ln = make_ln(c_in, what);
    a.q = make_linear(c_in, hd, false, what);
    a.k = make_linear(c_in, kv, false, what);
    a.v = make_linear(c_in, kv, false, what);
    a.g = make_linear(c_in, hd, true, what);
    a.o = make_linear(hd, c_in, true, what);
    collect(a.ln);
    collect(a.q);
    collect(a.k);
    collect(a.v);
    collect(a.g);
    collect(a.o);
    if (pair_bias) {
      if (ln_bias_separate) {
        a.ln_bias = make_ln(d_.c_z, what);
        collect(a.ln_bias);
      }
      a.bias = make_linear(ln_bias_separate ? d_.c_z : c_in, heads, false, what);
      collect(a.bias);
    }
  }
  void make_transition(TransW& t, std::int64_t c, const char* what) {
    t = TransW{make_ln(c, what), make_linear(c, d_.transition * c, true, what),
               make_linear(d_.transition * c, c, true, what)};
    collect(t.ln);
    collect(t.w1);
    collect(t.w2);
  }
  void make_trimul(TriMulW& t, bool outgoing, const char* what) {
    const std::int64_t cz = d_.c_z, c = d_.c_tri_mul;
    t = TriMulW{make_ln(cz, what), make_ln(c, what), make_linear(cz, c, true, what), make_linear(cz, c, true, what),
                make_linear(cz, c, true, what), make_linear(cz, c, true, what), make_linear(cz, cz, true, what),
                make_linear(c, cz, true, what), outgoing};
    collect(t.ln_in);
    collect(t.ag);
    collect(t.ap);
    collect(t.bg);
    collect(t.bp);
    collect(t.g);
    collect(t.ln_out);
    collect(t.p);
  }

  void declare() {
    make_attention(row_w_, d_.c_m, d_.msa_heads, d_.msa_head_dim, true, true, "msa_row_attention");
    make_attention(col_w_, d_.c_m, d_.msa_heads, d_.msa_head_dim, false, false,
                   d_.global_column ? "msa_column_global_attention" : "msa_column_attention", d_.global_column);
    make_transition(msa_tr_w_, d_.c_m, "msa_transition");
    opm_w_ = OpmW{make_ln(d_.c_m, "outer_product_mean"), make_linear(d_.c_m, d_.c_opm, true, "outer_product_mean"),
                  make_linear(d_.c_m, d_.c_opm, true, "outer_product_mean"),
                  make_linear(d_.c_opm * d_.c_opm, d_.c_z, true, "outer_product_mean")};
    collect(opm_w_.ln);
    collect(opm_w_.a);
    collect(opm_w_.b);
    collect(opm_w_.o);
    make_trimul(tmo_w_, true, "triangle_mul_outgoing");
    make_trimul(tmi_w_, false, "triangle_mul_incoming");
    make_attention(tas_w_, d_.c_z, d_.tri_heads, d_.tri_head_dim, true, false, "triangle_attention_start");
    make_attention(tae_w_, d_.c_z, d_.tri_heads, d_.tri_head_dim, true, false, "triangle_attention_end");
    make_transition(pair_tr_w_, d_.c_z, "pair_transition");
  }

  // ---- small helpers -------------------------------------------------------------------
  void release(T& t) { ops_.release(t); }
  void copy(const T& src, T& dst, std::int64_t n) {
    ops_.permute_0213(src, dst, 1, 1, 1, n);  // identity permutation: a device copy
  }
  T residual(const T& x, T& delta, std::int64_t n, const char* what) {
    T y = ops_.alloc(n, MemoryKind::kActivations, what);
    ops_.add(x, delta, y, n);
    release(delta);
    return y;
  }
  // y [rows, out] = x [rows, in] W (+ b)
  void linear_fwd(const Linear& l, const T& x, T& y, std::int64_t rows, std::int64_t in, std::int64_t out) {
    ops_.gemm(false, false, rows, out, in, 1.0, x, l.w.w, 0.0, y, 1);
    if (l.has_bias) ops_.bias_add(y, l.b.w, rows, out);
  }
  // dW = x^T dy, db = colsum(dy); dx (= or +=) dy W^T when dx is given.
  void linear_bwd(Linear& l, const T& x, const T& dy, T* dx, bool dx_accumulate, std::int64_t rows, std::int64_t in,
                  std::int64_t out) {
    ops_.gemm(true, false, in, out, rows, 1.0, x, dy, 0.0, l.w.dw, 1);
    if (l.has_bias) ops_.bias_grad(dy, l.b.dw, rows, out);
    if (dx) ops_.gemm(false, true, rows, in, out, 1.0, dy, l.w.w, dx_accumulate ? 1.0 : 0.0, *dx, 1);
  }
  void ln_fwd(const LayerNormW& l, const T& x, std::int64_t rows, std::int64_t c, T& y, T& mean, T& rstd) {
    y = ops_.alloc(rows * c, MemoryKind::kActivations, "layernorm_out");
    mean = ops_.alloc(rows, MemoryKind::kActivations, "layernorm_mean");
    rstd = ops_.alloc(rows, MemoryKind::kActivations, "layernorm_rstd");
    ops_.layernorm_fwd(x, l.w.w, l.b.w, y, mean, rstd, rows, c);
  }
  // Adds LayerNorm's input gradient into dx_acc.
  void ln_bwd(LayerNormW& l, const T& dy, const T& x, const T& mean, const T& rstd, T& dx_acc, std::int64_t rows,
              std::int64_t c) {
    T dx = ops_.alloc(rows * c, MemoryKind::kWorkspace, "layernorm_dx");
    ops_.layernorm_bwd(dy, x, l.w.w, mean, rstd, dx, l.w.dw, l.b.dw, rows, c);
    ops_.accumulate(dx_acc, dx, rows * c);
    release(dx);
  }

  // Modules (definitions in evoformer_block_attention.h and evoformer_block_pair.h).
  AttnSaved attention_fwd(AttnW& w, const T& x, std::int64_t rows, std::int64_t len, std::int64_t c, const T* z,
                          bool bias_from_self, bool transposed);
  void attention_bwd(AttnW& w, AttnSaved& s, const T& x, T& dx_acc, T* dz_acc);
  AttnSaved global_attention_fwd(AttnW& w, const T& x, std::int64_t rows, std::int64_t len, std::int64_t c);
  void global_attention_bwd(AttnW& w, AttnSaved& s, T& dx_acc);
  void input_ln_bwd(AttnW& w, AttnSaved& s, const T& x, T& dln, T& dx_acc);
  TransSaved transition_fwd(TransW& w, const T& x, std::int64_t rows, std::int64_t c);
  void transition_bwd(TransW& w, TransSaved& s, const T& x, T& dx_acc, std::int64_t rows, std::int64_t c);
  OpmSaved opm_fwd(const T& m);
  void opm_bwd(OpmSaved& s, const T& m, const T& dz, T& dm_acc);
  TriMulSaved trimul_fwd(TriMulW& w, const T& z);
  void trimul_bwd(TriMulW& w, TriMulSaved& s, const T& z, T& dz_acc);
  void layer_norm_bwd_write(LayerNormW& l, const T& dy, const T& x, const T& mean, const T& rstd, T& dx,
                            std::int64_t rows, std::int64_t c);

  Ops& ops_;
  EvoformerBlockDims d_;
  std::vector<Param*> params_;
  AttnW row_w_, col_w_, tas_w_, tae_w_;
  TransW msa_tr_w_, pair_tr_w_;
  OpmW opm_w_;
  TriMulW tmo_w_, tmi_w_;
  T m0_{}, z0_{}, m1_{}, m2_{}, z1_{}, z2_{}, z3_{}, z4_{}, z5_{};
  AttnSaved row_, col_, tas_, tae_;
  TransSaved msa_tr_, pair_tr_;
  OpmSaved opm_;
  TriMulSaved tmo_, tmi_;
};

}  // namespace seqscale

#include "layers/evoformer_block/evoformer_block_attention.h"
#include "layers/evoformer_block/evoformer_block_pair.h"
