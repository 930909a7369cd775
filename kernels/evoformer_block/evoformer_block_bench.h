// What the CPU and CUDA bodies of the "evoformer_block" benchmark share: the point's axes
// (model, stack, attn, dtype, n_seq / n_res), the model's StepProgram of that block
// declared to the harness (its FLOPs and bytes, its peak as metric model_peak_bytes), and
// the model's side of `bench --source model` (the program's memory events replayed).
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>

#include "harness/bench/registry.h"
#include "kernels/evoformer_block/evoformer_block_def.h"

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

}  // namespace seqscale
