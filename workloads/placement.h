// Rank placement: which ranks share a node, and so which process groups cross nodes and
// how many of a group's members one node holds. The one home of the rank order: comm/groups
// builds its process groups from it, the model prices each group's collectives on the link
// it names (model/estimate.cc), and the search keeps TP inside a node with it unless the
// preset allows crossing (model/search.cc).
//
// Order (Megatron core's parallel_state, fastest first): tp, then the sequence axis
// (Ulysses, LSS, or DAP for an Evoformer; a plan uses one of them), then dp, then pp:
//   rank = tp_i + tp * (seq_i + seq * (dp_i + dp * pp_i))
// Expert groups are blocks of ep consecutive dp indices (DeepSpeed-MoE's expert parallel
// group inside the data-parallel ranks). A launcher fills nodes in rank order, so node n
// holds ranks [n * gpus_per_node, (n + 1) * gpus_per_node).
//
// Worked example, 16 ranks, tp=2 seq=2 dp=2 pp=2 (comm/groups.h lists every group):
//   8 GPUs per node (dgx-h100.json): TP [0,1], SEQ [0,2], DP [0,4] stay inside node 0;
//     PP [0,8] crosses, one member per node.
//   1 GPU per node (h100.json, h200.json): every group of two or more ranks crosses, one
//     member per node, so TP runs over InfiniBand.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "workloads/step_program.h"

namespace seqscale {

struct Plan;  // workloads/plan.h

// The axes of the rank order, fastest first.
enum class RankAxis : std::uint8_t { kTensor, kSequence, kData, kPipeline };
inline constexpr int kRankAxes = 4;
using RankCoords = std::array<std::int64_t, kRankAxes>;  // indexed by RankAxis

struct RankGrid {
  RankCoords size{1, 1, 1, 1};     // degree of each axis
  std::int64_t ep = 1;             // expert groups: ep consecutive dp indices (ep divides dp)
  std::int64_t gpus_per_node = 0;  // 0: unknown, as if one node held every rank

  std::int64_t operator[](RankAxis a) const { return size[static_cast<int>(a)]; }
  std::int64_t world() const { return size[0] * size[1] * size[2] * size[3]; }
  std::int64_t stride(RankAxis a) const;  // rank distance between neighbours along a
  RankCoords coords(std::int64_t rank) const;
  std::int64_t rank_of(const RankCoords& c) const;
};

// The grid of a derived plan (dp filled in, e.g. by check_plan): the sequence axis is
// plan.seq_degree() (Ulysses or LSS) times plan.dap; a plan uses at most one of them (check_plan),
// and Megatron-SP runs on the TP ranks.
RankGrid rank_grid(const Plan& plan, std::int64_t gpus_per_node);

// A group: the ranks whose coordinates differ only along its spans. Along one axis it takes
// `count` coordinates `step` apart, starting at a multiple of count * step (count 1: the
// coordinate is fixed). A TP group spans {tp, 1} on kTensor; an expert group {ep, 1} on
// kData; the ranks that hold the same experts {dp / ep, ep} on kData.
struct AxisSpan {
  std::int64_t count = 1, step = 1;
};
using GroupShape = std::array<AxisSpan, kRankAxes>;  // indexed by RankAxis

// The layout's group of each kind (kSequence: the whole sequence axis; kWorld: all ranks).
GroupShape group_shape(const RankGrid& grid, GroupKind g);
std::int64_t group_size(const GroupShape& shape);
// The members of `rank`'s group, ascending (the group rank is the index).
std::vector<std::int64_t> group_members(const RankGrid& grid, const GroupShape& shape, std::int64_t rank);

struct GroupPlacement {
  bool crosses_nodes = false;     // some group of the shape spans two or more nodes
  // The fewest members any node holds of any such group: across nodes a group drives that
  // many NICs per node (its bottleneck); inside a node, the group size.
  std::int64_t ranks_per_node = 1;
};
// Exact over every group of the shape (groups of one kind need not sit alike when a degree
// and gpus_per_node do not divide one another); O(world).
GroupPlacement place(const RankGrid& grid, const GroupShape& shape);
inline GroupPlacement place(const RankGrid& grid, GroupKind g) { return place(grid, group_shape(grid, g)); }

}  // namespace seqscale
