// Every process group of a plan, built in one place (Megatron core's pattern). Plain C++
// rank-layout math: the MPI and NCCL backends split their world by it, and
// tests/comm/groups_test.cpp asserts the example below. The rank order and which ranks share
// a node are workloads/placement.h's: RankLayout wraps its RankGrid; the model and the search
// call placement directly, not this class.
//
// Layout: tp fastest, then seq, then dp, pp outermost,
//   rank = tp_i + tp * (seq_i + seq * (dp_i + dp * pp_i)),
// so a TP group is tp consecutive ranks and stays inside a node (gpus_per_node % tp == 0
// is checked: the backends run TP over NVLink). seq is the sequence axis (GroupKind::kSequence):
// the Ulysses all-to-alls, the LSS segments, or the Evoformer's DAP ranks; a plan uses at
// most one of them (workloads/plan.h's naming table). Megatron-SP needs no group of its own:
// it runs on the TP group. EP carves the DP axis into blocks of ep consecutive dp indices
// (ep divides dp), as expert-parallel MoE does.
//
// Worked example: 16 ranks, 8 per node, tp=2, seq=2, dp=2, pp=2 (ep=2).
//   node 0 = ranks 0..7 (pipeline stage 0), node 1 = ranks 8..15 (stage 1)
//   TP  groups (8): [0,1] [2,3] [4,5] [6,7] [8,9] [10,11] [12,13] [14,15]
//   SEQ groups (8): [0,2] [1,3] [4,6] [5,7] [8,10] [9,11] [12,14] [13,15]
//   DP  groups (8): [0,4] [1,5] [2,6] [3,7] [8,12] [9,13] [10,14] [11,15]
//   EP  groups (8): the DP groups (ep == dp)
//   PP  groups (8): [0,8] [1,9] [2,10] [3,11] [4,12] [5,13] [6,14] [7,15]
//   rank 13 = (tp 1, seq 0, dp 1, pp 1); only the PP groups cross nodes.
// With seq=1 this is Megatron's own 16-GPU example (tp=2, pp=4, dp=2): TP [0,1]...,
// DP [0,2] [1,3] ..., PP [0,4,8,12] [1,5,9,13] [2,6,10,14] [3,7,11,15].
#pragma once
#include <string>
#include <vector>

#include "workloads/placement.h"
#include "workloads/step_program.h"

namespace seqscale {
struct Plan;  // workloads/plan.h
}

namespace seqscale::comm {

struct ParallelDims {
  int tp = 1, seq = 1, dp = 1, pp = 1;  // seq: the sequence axis (Ulysses, LSS or DAP degree)
  int ep = 1;              // divides dp
  int gpus_per_node = 0;   // 0: unknown (no node checks)
};

struct RankCoord {
  int tp = 0, seq = 0, dp = 0, pp = 0;
  bool operator==(const RankCoord&) const = default;
};

class RankLayout {
 public:
  // Throws std::invalid_argument naming the field (tp, seq, dp, pp, ep, gpus_per_node).
  explicit RankLayout(ParallelDims d);
  // The layout for a world of `world` ranks with the other dims given and dp filled in.
  static RankLayout for_world(int world, ParallelDims d);

  const ParallelDims& dims() const { return d_; }
  int world_size() const { return d_.tp * d_.seq * d_.dp * d_.pp; }
  RankCoord coord(int rank) const;
  int rank_of(const RankCoord& c) const;

  int group_size(GroupKind g) const;
  // Members of `rank`'s group of kind g, ordered by group rank.
  std::vector<int> group_ranks(GroupKind g, int rank) const;
  int group_rank(GroupKind g, int rank) const;
  // A number that is equal exactly for ranks of the same group (MPI_Comm_split color).
  int group_color(GroupKind g, int rank) const;
  // Every group of kind g, each once, ordered by its first member.
  std::vector<std::vector<int>> all_groups(GroupKind g) const;
  // True when some group of kind g spans more than one node (bottleneck tier: IB);
  // workloads/placement.h decides.
  bool crosses_nodes(GroupKind g) const;

  std::string describe() const;  // "tp2 seq2 dp2 pp2 ep2 (16 ranks)"

 private:
  ParallelDims d_;
  RankGrid grid_;  // the same dims as placement sees them
};

// The layout of a derived plan (workloads/plan.h: dp and sp_degree filled in, e.g. by
// check_plan), as workloads/placement.h's rank_grid() sees it: tp, pp, dp, ep from the
// plan; seq = plan.seq_degree() x plan.dap. Throws std::invalid_argument when dp or
// sp_degree is still to be derived.
RankLayout layout_from_plan(const Plan& plan, int gpus_per_node = 0);

}  // namespace seqscale::comm
