// The column-parallel -> tanh -> row-parallel MLP block shared by tensor_parallel.cc and
// megatron_sp.cc: A = X W1[:, shard], Z = tanh(A), Y_partial = Z W2[shard, :]. The GEMMs
// run on the caller's math (run(): the strategy's, reference(): host_strategy_math()).
#pragma once
#include <cmath>
#include <vector>

#include "comm/strategies/strategy.h"

namespace seqscale::comm {

struct MlpShard {
  int tokens, hidden, ffn_shard;
  std::vector<float> w1, w2;  // [hidden, ffn_shard], [ffn_shard, hidden]
  std::vector<float> z;       // saved activation [tokens, ffn_shard]

  std::vector<float> forward(StrategyMath& math, const std::vector<float>& x) {
    z.assign(static_cast<std::size_t>(tokens) * ffn_shard, 0.f);
    math.matmul(x.data(), w1.data(), z.data(), tokens, hidden, ffn_shard);
    for (auto& a : z) a = std::tanh(a);
    std::vector<float> y(static_cast<std::size_t>(tokens) * hidden);
    math.matmul(z.data(), w2.data(), y.data(), tokens, ffn_shard, hidden);
    return y;
  }
  // dy [tokens, hidden] -> partial dx [tokens, hidden]; fills dw1, dw2 (this shard).
  std::vector<float> backward(StrategyMath& math, const std::vector<float>& x, const std::vector<float>& dy,
                              std::vector<float>& dw1, std::vector<float>& dw2) {
    std::vector<float> dz(z.size());
    math.matmul_nt(dy.data(), w2.data(), dz.data(), tokens, hidden, ffn_shard);
    for (std::size_t i = 0; i < dz.size(); ++i) dz[i] *= 1.f - z[i] * z[i];
    dw2.assign(w2.size(), 0.f);
    math.matmul_tn(z.data(), dy.data(), dw2.data(), tokens, ffn_shard, hidden);
    dw1.assign(w1.size(), 0.f);
    math.matmul_tn(x.data(), dz.data(), dw1.data(), tokens, hidden, ffn_shard);
    std::vector<float> dx(static_cast<std::size_t>(tokens) * hidden);
    math.matmul_nt(dz.data(), w1.data(), dx.data(), tokens, ffn_shard, hidden);
    return dx;
  }
};

inline MlpShard make_mlp_shard(int tokens, int hidden, int ffn, int shards, int shard, std::uint64_t seed) {
  const int fs = ffn / shards;
  const auto w1 = random_vector(static_cast<std::int64_t>(hidden) * ffn, seed + 1, 0.5f);
  const auto w2 = random_vector(static_cast<std::int64_t>(ffn) * hidden, seed + 2, 0.5f);
  return MlpShard{tokens, hidden, fs, slice_cols(w1, hidden, ffn, shard * fs, (shard + 1) * fs),
                  slice_rows(w2, hidden, shard * fs, (shard + 1) * fs), {}};
}

}  // namespace seqscale::comm
