#include "workloads/parallel/dap_comm.h"

#include <array>

namespace seqscale {

namespace {

struct Coll {
  Collective c = Collective::kAllGather;
  double bytes = 0;
  bool overlappable = false;
};
// A half block's forward collectives, in order (at most 8: the pair half).
struct Half {
  std::array<Coll, 8> ops{};
  int n = 0;
  void add(Collective c, double bytes, bool overlappable = false) { ops[n++] = {c, bytes, overlappable}; }
};

// The tensors' sizes of one block of `stack` at this crop.
struct BlockDims {
  double es, b, n_res, rows, c_msa, bias_heads;
  double pair_channel() const { return es * b * n_res * n_res; }  // one channel of z, all rows
};
BlockDims dims(const EvoformerSpec& e, const RunShape& shape, EvoformerStack stack) {
  const bool main = stack == EvoformerStack::kMain;
  return {static_cast<double>(dtype_bytes(e.dtype)), static_cast<double>(shape.micro_batch),
          static_cast<double>(shape.seq > 0 ? shape.seq : e.n_res), static_cast<double>(main ? e.n_seq : e.n_extra),
          static_cast<double>(main ? e.c_m : e.c_e), static_cast<double>(main ? e.msa.heads : e.extra_msa.heads)};
}

Half msa_half(const EvoformerSpec& e, const Plan& p, const BlockDims& d) {
  const double msa_a2a = d.es * d.b * d.rows * d.n_res * d.c_msa / p.dap;
  Half h;
  h.add(Collective::kAllGather, d.pair_channel() * d.bias_heads);                                    // row attention's pair bias
  h.add(Collective::kAllToAll, msa_a2a);                                                             // m rows -> columns
  h.add(Collective::kAllGather, d.es * d.b * d.rows * d.n_res * static_cast<double>(e.c_hidden_opm));  // outer product mean
  h.add(Collective::kAllToAll, msa_a2a, true);                                                       // m columns -> rows
  return h;
}

Half pair_half(const EvoformerSpec& e, const Plan& p, const BlockDims& d) {
  const double pair_a2a = d.pair_channel() * static_cast<double>(e.c_z) / p.dap;
  const double tri_mul = d.pair_channel() * static_cast<double>(e.c_hidden_tri_mul);
  const double tri_bias = d.pair_channel() * static_cast<double>(e.triangle.heads);
  Half h;
  for (double gathered : {tri_mul, tri_mul, tri_bias, tri_bias}) {  // outgoing, incoming, starting, ending
    h.add(Collective::kAllGather, gathered);
    h.add(Collective::kAllToAll, pair_a2a);
  }
  return h;
}

void emit_half(CommOps& ops, const Half& h, const Plan& p, Phase ph) {
  auto add = [&](const Coll& c, Collective kind) {
    if (c.bytes > 0) emit(ops, kind, GroupKind::kSequence, p.dap, c.bytes, ph, c.overlappable);
  };
  if (ph != Phase::kBackward) {
    for (int i = 0; i < h.n; ++i) add(h.ops[i], h.ops[i].c);
    return;
  }
  for (int i = h.n - 1; i >= 0; --i)
    add(h.ops[i], h.ops[i].c == Collective::kAllGather ? Collective::kReduceScatter : h.ops[i].c);
}

}  // namespace

void dap_block(CommOps& ops, const EvoformerSpec& e, const Plan& p, const RunShape& shape, EvoformerStack stack,
               Phase ph) {
  if (p.dap <= 1) return;
  const BlockDims d = dims(e, shape, stack);
  const Half msa = msa_half(e, p, d), pair = pair_half(e, p, d);
  const bool backward = ph == Phase::kBackward;
  emit_half(ops, backward ? pair : msa, p, ph);
  emit_half(ops, backward ? msa : pair, p, ph);
}

void dap_msa_half(CommOps& ops, const EvoformerSpec& e, const Plan& p, const RunShape& shape, EvoformerStack stack,
                  Phase ph) {
  if (p.dap <= 1) return;
  emit_half(ops, msa_half(e, p, dims(e, shape, stack)), p, ph);
}

void dap_stack_exit(CommOps& ops, const EvoformerSpec& e, const Plan& p, const RunShape& shape, EvoformerStack stack) {
  if (p.dap <= 1) return;
  const BlockDims d = dims(e, shape, stack);
  Half h;
  h.add(Collective::kAllGather, d.es * d.b * d.rows * d.n_res * d.c_msa);          // m
  h.add(Collective::kAllGather, d.pair_channel() * static_cast<double>(e.c_z));  // z
  emit_half(ops, h, p, Phase::kForward);
}

void dap_weight_grads(CommOps& ops, const Plan& p, double grad_bytes) {
  if (p.dap <= 1) return;
  emit(ops, Collective::kAllReduce, GroupKind::kSequence, p.dap, grad_bytes, Phase::kBackward, true);
}

}  // namespace seqscale
