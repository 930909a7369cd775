// Dynamic Axial Parallelism for the Evoformer (FastFold, Cheng et al. 2022; ANCHORS
// section 2) on the DAP ranks (the sequence axis, kSequence, of comm/groups.h). The MSA
// m [N_seq, N_res, c] is split along N_seq for row-wise ops and along N_res for column-wise ops; an
// all-to-all switches the split. The pair representation z [N_res, N_res, c_z] is split
// by rows; the pair bias b = z . w_b it feeds the MSA row op is all-gathered.
//   row op     m1[s,i,:] = sum_j softmax_j(b[i,j]) m[s,j,:]   (pair-biased row mixing)
//   column op  m2[s,r,c] = m1[s,r,c] + w[c] * mean_s' m1[s',r,c]
// The block is the stack's last: its output m and the pair z are all-gathered whole to
// every DAP rank, as FastFold's last EvoformerBlock and ExtraMSABlock gather both (the
// gather's backward, a split, is local).
// Backward: all-to-alls mirrored, the gradient of the all-gathered bias reduce-scattered
// back to the pair rows, and once per step the replicated weights' gradients, fused
// into one buffer [d(w) | d(w_b)], all-reduced. The MSA half of one block of
// workloads/parallel/dap_comm.h as the stack's last, so with its exit gathers; no pair
// stack and no outer product mean.
// The bias projection and the row op (and their backward) are GEMMs on the strategy's
// math; the softmax and the column op are host glue.
#include <cmath>

#include "comm/strategies/strategy.h"
#include "workloads/parallel/dap_comm.h"

namespace seqscale::comm {
namespace {

constexpr int kSeq = 8, kRes = 8, kC = 4, kCz = 4;  // kSeq, kRes % P == 0 for P <= 8
constexpr std::uint64_t kSeed = 700;

// The block as the emitter reads it: one pair-bias head, fp32.
EvoformerSpec spec() {
  EvoformerSpec e;
  e.n_seq = kSeq, e.n_res = kRes, e.c_m = kC, e.c_z = kCz;
  e.c_hidden_opm = 0, e.c_hidden_tri_mul = 0;
  e.msa = {1, kC};
  e.blocks = 1;
  e.dtype = DType::kFp32;
  return e;
}

CommOps emit(const RankLayout& l, int) {
  Plan p = toy_plan(l);
  p.dap = l.dims().seq;  // DAP runs on the sequence axis (comm/groups.h)
  const RunShape shape{kRes, 1, 1};
  CommOps ops;
  dap_msa_half(ops, spec(), p, shape, EvoformerStack::kMain, Phase::kForward);
  dap_stack_exit(ops, spec(), p, shape, EvoformerStack::kMain);
  dap_msa_half(ops, spec(), p, shape, EvoformerStack::kMain, Phase::kBackward);
  dap_weight_grads(ops, p, (kC + kCz) * 4.0);
  return ops;
}

struct Inputs {
  std::vector<float> m, z, w, wb, dout;
};
Inputs inputs() {
  return {random_vector(kSeq * kRes * kC, kSeed + 1), random_vector(kRes * kRes * kCz, kSeed + 2),
          random_vector(kC, kSeed + 3), random_vector(kCz, kSeed + 4), random_vector(kSeq * kRes * kC, kSeed + 5)};
}

// Pair bias rows [rows, kRes] from pair rows [rows, kRes, kCz]: b = z w_b, [rows kRes, kCz] x [kCz, 1].
std::vector<float> pair_bias(StrategyMath& math, const float* z, int rows, const std::vector<float>& wb) {
  std::vector<float> b(static_cast<std::size_t>(rows) * kRes);
  math.matmul(z, wb.data(), b.data(), rows * kRes, kCz, 1);
  return b;
}
std::vector<float> softmax_rows(const std::vector<float>& b) {
  std::vector<float> a(b.size());
  for (int i = 0; i < kRes; ++i) {
    double mx = -1e300, sum = 0;
    for (int j = 0; j < kRes; ++j) mx = std::max(mx, static_cast<double>(b[i * kRes + j]));
    for (int j = 0; j < kRes; ++j) sum += std::exp(b[i * kRes + j] - mx);
    for (int j = 0; j < kRes; ++j) a[i * kRes + j] = static_cast<float>(std::exp(b[i * kRes + j] - mx) / sum);
  }
  return a;
}
// Row op on `seqs` MSA rows [seqs, kRes, kC]: out[s] = A m[s].
std::vector<float> row_op(StrategyMath& math, const std::vector<float>& m, const std::vector<float>& a, int seqs) {
  std::vector<float> out(m.size());
  for (int s = 0; s < seqs; ++s) math.matmul(a.data(), &m[s * kRes * kC], &out[s * kRes * kC], kRes, kRes, kC);
  return out;
}
// Column op on all kSeq rows of `res` residues [kSeq, res, kC]; returns the column means too.
std::vector<float> col_op(const std::vector<float>& m1, const std::vector<float>& w, int res, std::vector<float>& mean) {
  mean.assign(static_cast<std::size_t>(res) * kC, 0.f);
  for (int s = 0; s < kSeq; ++s)
    for (int i = 0; i < res * kC; ++i) mean[i] += m1[s * res * kC + i] / kSeq;
  std::vector<float> out(m1.size());
  for (int s = 0; s < kSeq; ++s)
    for (int i = 0; i < res * kC; ++i) out[s * res * kC + i] = m1[s * res * kC + i] + w[i % kC] * mean[i];
  return out;
}
// Column-op backward: d(m1) and the partial d(w) over these residues.
std::vector<float> col_bwd(const std::vector<float>& g, const std::vector<float>& w, const std::vector<float>& mean,
                           int res, std::vector<float>& dw) {
  std::vector<float> colsum(static_cast<std::size_t>(res) * kC, 0.f), dm1(g.size());
  dw.assign(kC, 0.f);
  for (int s = 0; s < kSeq; ++s)
    for (int i = 0; i < res * kC; ++i) {
      colsum[i] += g[s * res * kC + i];
      dw[i % kC] += g[s * res * kC + i] * mean[i];
    }
  for (int s = 0; s < kSeq; ++s)
    for (int i = 0; i < res * kC; ++i) dm1[s * res * kC + i] = g[s * res * kC + i] + w[i % kC] / kSeq * colsum[i];
  return dm1;
}
// Row-op backward: d(m)[s] = A^T d(m1)[s], d(A) = sum_s d(m1)[s] m[s]^T, and the
// partial d(bias) [kRes, kRes] over these MSA rows.
std::vector<float> row_bwd(StrategyMath& math, const std::vector<float>& m, const std::vector<float>& a,
                           const std::vector<float>& dm1, int seqs, std::vector<float>& db) {
  std::vector<float> dm(m.size()), da(static_cast<std::size_t>(kRes) * kRes, 0.f);
  for (int s = 0; s < seqs; ++s) {
    const int off = s * kRes * kC;
    math.matmul_tn(a.data(), &dm1[off], &dm[off], kRes, kRes, kC);
    math.matmul_nt(&dm1[off], &m[off], da.data(), kRes, kC, kRes, true);
  }
  db.assign(da.size(), 0.f);
  for (int i = 0; i < kRes; ++i) {
    double dot = 0;
    for (int j = 0; j < kRes; ++j) dot += static_cast<double>(a[i * kRes + j]) * da[i * kRes + j];
    for (int j = 0; j < kRes; ++j) db[i * kRes + j] = static_cast<float>(a[i * kRes + j] * (da[i * kRes + j] - dot));
  }
  return dm;
}
// d(z) rows (outer product d(b) w_b^T) and partial d(w_b) = z^T d(b) from d(bias) rows.
void pair_bwd(StrategyMath& math, const float* z, const float* db, int rows, const std::vector<float>& wb,
              std::vector<float>& dz, std::vector<float>& dwb) {
  dz.assign(static_cast<std::size_t>(rows) * kRes * kCz, 0.f);
  dwb.assign(kCz, 0.f);
  math.matmul(db, wb.data(), dz.data(), rows * kRes, 1, kCz);
  math.matmul_tn(z, db, dwb.data(), rows * kRes, kCz, 1);
}

// [seqs/P rows, kRes, kC] split on N_seq <-> [kSeq, kRes/P, kC] split on N_res.
std::vector<float> seq_to_res(Communicator& c, const std::vector<float>& x, int n) {
  const int sl = kSeq / n, rl = kRes / n;
  std::vector<float> send(x.size()), recv(x.size());
  for (int j = 0; j < n; ++j)
    for (int s = 0; s < sl; ++s)
      for (int r = 0; r < rl; ++r)
        for (int ch = 0; ch < kC; ++ch)
          send[((j * sl + s) * rl + r) * kC + ch] = x[(s * kRes + j * rl + r) * kC + ch];
  c.all_to_all(GroupKind::kSequence, send.data(), recv.data(), sl * rl * kC, DType::kFp32);
  return recv;  // block j = rows of rank j: already [kSeq, rl, kC]
}
WorkPtr res_to_seq_async(Communicator& c, const std::vector<float>& x, std::vector<float>& recv, int n) {
  recv.resize(x.size());
  return c.iall_to_all(GroupKind::kSequence, x.data(), recv.data(), kSeq / n * (kRes / n) * kC, DType::kFp32);
}
std::vector<float> unpack_res_blocks(const std::vector<float>& recv, int n) {
  const int sl = kSeq / n, rl = kRes / n;
  std::vector<float> out(recv.size());
  for (int j = 0; j < n; ++j)
    for (int s = 0; s < sl; ++s)
      for (int r = 0; r < rl; ++r)
        for (int ch = 0; ch < kC; ++ch)
          out[(s * kRes + j * rl + r) * kC + ch] = recv[((j * sl + s) * rl + r) * kC + ch];
  return out;
}

Tensors run(Communicator& c, StrategyMath& math, const RankLayout& l) {
  const int n = l.group_size(GroupKind::kSequence), me = c.group_rank(GroupKind::kSequence);
  const int sl = kSeq / n, rl = kRes / n;
  const Inputs in = inputs();
  const auto m = slice_rows(in.m, kRes * kC, me * sl, (me + 1) * sl);
  const auto z = slice_rows(in.z, kRes * kCz, me * rl, (me + 1) * rl);
  const auto b_rows = pair_bias(math, z.data(), rl, in.wb);
  std::vector<float> b(static_cast<std::size_t>(kRes) * kRes);
  c.all_gather(GroupKind::kSequence, b_rows.data(), b.data(), rl * kRes, DType::kFp32);
  const auto a = softmax_rows(b);
  const auto m1 = row_op(math, m, a, sl);
  const auto m1c = seq_to_res(c, m1, n);
  std::vector<float> mean, tmp;
  const auto m2c = col_op(m1c, in.w, rl, mean);
  res_to_seq_async(c, m2c, tmp, n)->wait();
  Tensors out;
  out["out"] = unpack_res_blocks(tmp, n);
  // The stack's exit: m and z whole on every rank.
  out["m_exit"].resize(in.m.size());
  out["z_exit"].resize(in.z.size());
  c.all_gather(GroupKind::kSequence, out["out"].data(), out["m_exit"].data(), sl * kRes * kC, DType::kFp32);
  c.all_gather(GroupKind::kSequence, z.data(), out["z_exit"].data(), rl * kRes * kCz, DType::kFp32);

  c.set_phase(Phase::kBackward);
  const auto g = slice_rows(in.dout, kRes * kC, me * sl, (me + 1) * sl);
  const auto gc = seq_to_res(c, g, n);
  std::vector<float> dw;
  const auto dm1c = col_bwd(gc, in.w, mean, rl, dw);
  res_to_seq_async(c, dm1c, tmp, n)->wait();
  const auto dm1 = unpack_res_blocks(tmp, n);
  std::vector<float> db_partial, db_rows(static_cast<std::size_t>(rl) * kRes);
  out["dm"] = row_bwd(math, m, a, dm1, sl, db_partial);
  c.reduce_scatter(GroupKind::kSequence, db_partial.data(), db_rows.data(), rl * kRes, DType::kFp32);
  std::vector<float> dwb;
  pair_bwd(math, z.data(), db_rows.data(), rl, in.wb, out["dz"], dwb);
  // The step's weight gradients, partial sums over the DAP ranks' shards, in one buffer.
  std::vector<float> grads(dw);
  grads.insert(grads.end(), dwb.begin(), dwb.end());
  c.all_reduce(GroupKind::kSequence, grads.data(), grads.data(), kC + kCz, DType::kFp32);
  out["dw"].assign(grads.begin(), grads.begin() + kC);
  out["dwb"].assign(grads.begin() + kC, grads.end());
  return out;
}

Tensors reference(const RankLayout& l, int rank) {
  const int n = l.group_size(GroupKind::kSequence), me = l.group_rank(GroupKind::kSequence, rank);
  const int sl = kSeq / n, rl = kRes / n;
  const Inputs in = inputs();
  StrategyMath& host = host_strategy_math();
  const auto a = softmax_rows(pair_bias(host, in.z.data(), kRes, in.wb));
  const auto m1 = row_op(host, in.m, a, kSeq);
  std::vector<float> mean, dw, db, dz, dwb;
  const auto m2 = col_op(m1, in.w, kRes, mean);
  const auto dm1 = col_bwd(in.dout, in.w, mean, kRes, dw);
  const auto dm = row_bwd(host, in.m, a, dm1, kSeq, db);
  pair_bwd(host, in.z.data(), db.data(), kRes, in.wb, dz, dwb);
  return {{"out", slice_rows(m2, kRes * kC, me * sl, (me + 1) * sl)},
          {"m_exit", m2},
          {"z_exit", in.z},
          {"dm", slice_rows(dm, kRes * kC, me * sl, (me + 1) * sl)},
          {"dz", slice_rows(dz, kRes * kCz, me * rl, (me + 1) * rl)},
          {"dw", dw},
          {"dwb", dwb}};
}

}  // namespace

SEQSCALE_STRATEGY(dap, {"dap", "Evoformer DAP: all-to-all between N_seq and N_res splits, all-gathered pair bias",
                        [](int n) { return ParallelDims{.seq = n}; }, emit, run, reference, 1e-5});

}  // namespace seqscale::comm
