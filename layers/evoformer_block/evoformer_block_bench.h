// What the CPU and CUDA bodies of the "evoformer_block" benchmark share: the point's axes
// (model, stack, attn, dtype, n_seq / n_res), the model's StepProgram of that block
// declared to the harness (its FLOPs and bytes, its peak as metric model_peak_bytes), and
// the model's side of `bench --source model` (the program's memory events replayed), and
// the check of one step's gradients against the double reference block.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>

#include "harness/bench/registry.h"
#include "layers/evoformer_block/evoformer_block_def.h"
#include "layers/evoformer_block/evoformer_block_ref.h"

namespace seqscale {

struct EvoformerBlockPoint {
  EvoformerBlockDims dims;
  bool fused = false;
  DType io = DType::kFp32;
  std::shared_ptr<const StepProgram> program;
};

// Parses and checks the axes (one-line ConfigError naming the field), builds and declares
// the program. `dtypes_allowed` lists what the backend runs. Returns false on the model's
// side, where the caller has nothing left to do.
bool setup_evoformer_block_point(BenchState& s, std::initializer_list<DType> dtypes_allowed, EvoformerBlockPoint& out);

// Inputs m0, z0, upstream gradients dm, dz and outputs dm0, dz0 of one block step, random.
template <class Ops>
struct EvoformerBlockIo {
  typename Ops::Tensor m0, z0, dm, dz, dm0, dz0;
  EvoformerBlockIo(Ops& ops, BenchState& s, const EvoformerBlockDims& d, DType io) {
    const std::int64_t nm = d.n_seq * d.n_res * d.c_m, nz = d.n_res * d.n_res * d.c_z;
    m0 = ops.alloc(nm, MemoryKind::kActivations, "m0");
    z0 = ops.alloc(nz, MemoryKind::kActivations, "z0");
    dm = ops.alloc(nm, MemoryKind::kActivations, "dm_out");
    dz = ops.alloc(nz, MemoryKind::kActivations, "dz_out");
    dm0 = ops.alloc(nm, MemoryKind::kActivations, "dm0");
    dz0 = ops.alloc(nz, MemoryKind::kActivations, "dz0");
    std::uint64_t seed = 101;
    for (auto* t : {&m0, &z0, &dm, &dz}) s.fill_random(t->p, t->n, io, seed++);
  }
};

// Weights are drawn in [-0.3, 0.3), as the reference's own inputs are, so every module's
// output stays O(1) and the dtype tolerances mean the same here as in the tests.
inline constexpr float kEvoformerBlockWeightRange = 0.3f;

// The double reference block costs about as many multiply-adds as the block's declared
// FLOPs / 2; points beyond the check budget (the training crops) are not checked here.
inline bool evoformer_block_checkable(BenchState& s, const EvoformerBlockPoint& pt) {
  const double ref_cost = s.cost().flops / 2;
  if (ref_cost <= 4 * kCheckReferenceBudget) return true;
  s.no_check("the double reference block would take " + std::to_string(static_cast<long long>(ref_cost / 1e9)) +
             " G multiply-adds (check budget " + std::to_string(static_cast<long long>(4 * kCheckReferenceBudget / 1e9)) +
             " G); the block is checked at small crops by tests/layers/evoformer_block*_test.cpp");
  (void)pt;
  return false;
}

// Reads the step's inputs and weights back, runs the double reference on them and compares
// the gradients (dm0, dz0 and every parameter's) with the backend's. m_out and z_out are
// released by the backward, so the forward is judged through the gradients it feeds.
template <class Ops, class Io>
CheckResult check_evoformer_block(BenchState& s, const EvoformerBlockPoint& pt, EvoformerBlock<Ops>& block, const Io& io) {
  const auto dtype_of = [&](const typename Ops::Tensor& t) {
    if constexpr (requires { t.t; }) return t.t;
    else return DType::kFp32;
  };
  const auto read = [&](const typename Ops::Tensor& t) { return s.read_back(t.p, t.n, dtype_of(t)); };
  // Outputs first (the test hook perturbs the first value read).
  const std::vector<double> dm0 = read(io.dm0), dz0 = read(io.dz0);
  std::vector<std::vector<double>> grads;
  for (auto* p : block.params()) grads.push_back(read(p->dw));
  EvoformerBlockInputs in;
  in.m0 = read(io.m0);
  in.z0 = read(io.z0);
  in.dm_out = read(io.dm);
  in.dz_out = read(io.dz);
  for (auto* p : block.params()) in.params.push_back(read(p->w));
  const EvoformerBlockRefRun ref = run_evoformer_block_ref(pt.dims, in);
  const CheckTolerance tol = evoformer_block_tolerance(pt.io);
  CheckResult r = compare_values("dm0", dm0, ref.dm0, tol);
  r.merge(compare_values("dz0", dz0, ref.dz0, tol));
  for (std::size_t i = 0; i < grads.size(); ++i) {
    // The pair LayerNorm shift's gradient (param 10) is zero up to rounding (softmax shift
    // invariance): it is judged against dz0's scale, as in the block's GPU test.
    CheckTolerance t = tol;
    if (i == 10) {
      double scale = 0;
      for (double v : ref.dz0) scale = std::max(scale, std::fabs(v));
      t = {tol.rel_to_max * scale, 0, 0};
    }
    r.merge(compare_values("param_grad[" + std::to_string(i) + "]", grads[i], ref.param_grads[i], t));
  }
  return r;
}

}  // namespace seqscale
