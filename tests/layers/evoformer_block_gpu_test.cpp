// One Evoformer block on the GPU (naive and fused attention, main and extra-MSA block) against
// the double CPU reference on the same weights and inputs: outputs, input gradients and every
// parameter gradient. Awkward sizes (N_res 17, N_seq 5) so that tiles end mid-row.
// Tolerance: evoformer_block_tolerance (evoformer_block_ref.h), the one the bench's check
// uses, relative to each tensor's largest magnitude: fp32 2e-4 (accumulation order only; the
// strict check), bf16 6e-2 (8 mantissa bits at every stored tensor of ~30 dependent ops).
//
// Head sizes: 8 (msa and triangle) runs the fused attention on its SIMT kernels in both
// dtypes; 16 (msa) and 32 (triangle) in bf16 runs the tensor-core kernels as the block uses
// them (no mask, d_mask = nullptr; pair bias and d(pair) on row and triangle attention, none
// on column attention), with the fp32 run at the same head sizes as its strict counterpart.
#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <tuple>

#include "common/check_result.h"
#include "layers/evoformer_block/evoformer_block.cuh"
#include "layers/evoformer_block/evoformer_block_ref.h"
#include "tests/support/gpu.h"
#include "tests/support/matches.h"
#include "tests/support/seed.h"

namespace seqscale {
namespace {

using testing_support::matches;

// Storage dtype and attention head sizes of one case.
struct BlockVariant {
  DType io;
  std::int64_t msa_head_dim, tri_head_dim;
  const char* name;
};

const BlockVariant kVariants[] = {
    {DType::kFp32, 8, 8, "fp32"},
    {DType::kBf16, 8, 8, "bf16"},
    {DType::kFp32, 16, 32, "fp32_hd16x32"},
    {DType::kBf16, 16, 32, "bf16_hd16x32"},  // fused: tensor-core attention (kAuto picks it)
};

void PrintTo(const BlockVariant& v, std::ostream* os) { *os << v.name; }

EvoformerBlockDims gpu_dims(const BlockVariant& v) {
  EvoformerBlockDims d;
  d.n_seq = 5;
  d.n_res = 17;
  d.c_m = 16;
  d.c_z = 8;
  d.msa_heads = 2;
  d.msa_head_dim = v.msa_head_dim;  // the fused kernel takes head sizes 8..128, tensor cores 16..128
  d.tri_heads = 2;
  d.tri_head_dim = v.tri_head_dim;
  d.c_opm = 4;
  d.c_tri_mul = 8;
  d.transition = 2;
  return d;
}

// (fused attention, extra-MSA block with global column attention, variant)
class EvoformerBlockGpu : public ::testing::TestWithParam<std::tuple<bool, bool, BlockVariant>> {};

TEST_P(EvoformerBlockGpu, MatchesCpuReference) {
  SEQSCALE_REQUIRE_GPU();
  const auto& [fused, extra_msa, variant] = GetParam();
  EvoformerBlockDims d = gpu_dims(variant);
  d.global_column = extra_msa;
  if (d.global_column) d.n_seq = 40;  // N_extra: column softmax rows longer than a warp
  // make_evoformer_block_inputs takes 32 bits of the seed; the printed seed still replays.
  const EvoformerBlockInputs in = make_evoformer_block_inputs(d, static_cast<unsigned>(testing_support::test_seed()));
  const EvoformerBlockRefRun ref = run_evoformer_block_ref(d, in);
  const EvoformerBlockRefRun gpu = run_evoformer_block_cuda(d, in, fused, variant.io);
  const CheckTolerance tol = evoformer_block_tolerance(variant.io);
  EXPECT_TRUE(matches(compare_values("m_out", gpu.m_out, ref.m_out, tol)));
  EXPECT_TRUE(matches(compare_values("z_out", gpu.z_out, ref.z_out, tol)));
  EXPECT_TRUE(matches(compare_values("dm0", gpu.dm0, ref.dm0, tol)));
  EXPECT_TRUE(matches(compare_values("dz0", gpu.dz0, ref.dz0, tol)));
  ASSERT_EQ(gpu.param_grads.size(), ref.param_grads.size());
  for (std::size_t p = 0; p < ref.param_grads.size(); ++p) {
    // The pair LayerNorm shift's gradient is zero up to rounding (softmax shift
    // invariance): no scale of its own to be relative to.
    if (p == 10) continue;
    EXPECT_TRUE(matches(compare_values("param grad " + std::to_string(p), gpu.param_grads[p], ref.param_grads[p], tol)));
  }
}

INSTANTIATE_TEST_SUITE_P(Attention, EvoformerBlockGpu,
                         ::testing::Combine(::testing::Bool(), ::testing::Bool(), ::testing::ValuesIn(kVariants)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) ? "fused" : "naive") +
                                  (std::get<1>(info.param) ? "_extra_msa" : "_main") + "_" +
                                  std::get<2>(info.param).name;
                         });

}  // namespace
}  // namespace seqscale
