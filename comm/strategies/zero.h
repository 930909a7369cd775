// The tiny data-parallel model shared by zero.cc and cpu_offload.cc.
#pragma once
#include <vector>

#include "comm/strategies/strategy.h"
#include "workloads/parallel/data_parallel_comm.h"

namespace seqscale::comm {

struct ZeroModel {
  static constexpr int kTokens = 4, kHidden = 8, kSteps = 2;
  static constexpr std::int64_t kParams = std::int64_t{kHidden} * kHidden;  // % N_d == 0 for N_d <= 8
  static constexpr std::uint64_t kSeed = 400;
};
std::vector<float> zero_batch(int step, int dp_rank, bool grad);
std::vector<float> zero_initial_params();
std::vector<float> zero_local_grad(int step, int dp_rank);
// Its Psi fp32 parameters over the layout's data-parallel group, as the emitter reads them.
ReplicatedStates zero_states(const RankLayout& l);

}  // namespace seqscale::comm
