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
//   model/evoformer_block_program.cc that turns every call into a ComputeOp with its FLOPs
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
  struct TriMulSaved { T ln{}, mean{}, rstd{}, ag{}, ap{}, bg{}, bp{}, a{}, b{}, g{}, x{}, xln{}, xmean{}, xrstd{}, p{}, out{}; };

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
    t = TransW{make_ln(c, what), make_linear(c, d_.transition * c, true, what), make_linear(d_.transition * c, c, true, what)};
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

  // ---- gated self-attention (row, column, triangle start / end) -------------------------
  // x holds `rows` sequences of `len` positions with c channels: [rows, len, c], or, when
  // `transposed`, the transpose [len, rows, c] (column attention attends over N_seq; the
  // ending-node triangle attention attends over the first pair index).
  AttnSaved attention_fwd(AttnW& w, const T& x, std::int64_t rows, std::int64_t len, std::int64_t c, const T* z,
                          bool bias_from_self, bool transposed) {
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
  void attention_bwd(AttnW& w, AttnSaved& s, const T& x, T& dx_acc, T* dz_acc) {
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

  // ---- global column attention (extra-MSA stack, Algorithm 19) ---------------------------
  // x [len, rows, c] (len = N_extra): per column r, q_bar = mean_s q_s [heads, D]; one key
  // and value head k, v [len, D]; a = softmax(q_bar k^T / sqrt(D)) [heads, len];
  // o = a v [heads, D], broadcast over s and gated: out_s = (sigmoid(g_s) * o) Wo + bo.
  AttnSaved global_attention_fwd(AttnW& w, const T& x, std::int64_t rows, std::int64_t len, std::int64_t c) {
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

  void global_attention_bwd(AttnW& w, AttnSaved& s, T& dx_acc) {
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
    T dxt = ops_.alloc(n * c, MemoryKind::kWorkspace, "d_attention_input_transposed");
    ops_.permute_0213(dx_acc, dxt, 1, len, rows, c);
    ln_bwd(w.ln, dln, s.xt, s.mean, s.rstd, dxt, n, c);
    ops_.permute_0213(dxt, dx_acc, 1, rows, len, c);
    release(dxt);
    release(s.xt);
    release(dln);
    release(s.ln);
    release(s.mean);
    release(s.rstd);
  }

  // ---- transitions ------------------------------------------------------------------------
  TransSaved transition_fwd(TransW& w, const T& x, std::int64_t rows, std::int64_t c) {
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
  void transition_bwd(TransW& w, TransSaved& s, const T& x, T& dx_acc, std::int64_t rows, std::int64_t c) {
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

  // ---- outer product mean -------------------------------------------------------------------
  // outer[i, j, c1, c2] = (1/S) sum_s a[s, i, c1] b[s, j, c2]: one GEMM a'^T b' over S with
  // a', b' viewed as [S, R*c], then [R, c, R, c] -> [R, R, c, c].
  OpmSaved opm_fwd(const T& m) {
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
  void opm_bwd(OpmSaved& s, const T& m, const T& dz, T& dm_acc) {
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

  // ---- triangle multiplicative update ----------------------------------------------------
  // a = sigmoid(ln Wag) * (ln Wap), b likewise, channel-first [c, R, R]; outgoing
  // x_c = a_c b_c^T (sum over k of a_ik b_jk), incoming x_c = a_c^T b_c (a_ki b_kj);
  // out = sigmoid(ln Wg) * (LayerNorm(x) Wp).
  TriMulSaved trimul_fwd(TriMulW& w, const T& z) {
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
  void trimul_bwd(TriMulW& w, TriMulSaved& s, const T& z, T& dz_acc) {
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
  void layer_norm_bwd_write(LayerNormW& l, const T& dy, const T& x, const T& mean, const T& rstd, T& dx,
                            std::int64_t rows, std::int64_t c) {
    ops_.layernorm_bwd(dy, x, l.w.w, mean, rstd, dx, l.w.dw, l.b.dw, rows, c);
  }

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
