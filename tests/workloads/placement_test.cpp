// Rank placement (workloads/placement.h): its worked example, Megatron's 16-GPU example, the
// closed form it replaces on aligned layouts, and the layouts that closed form got wrong.
#include "workloads/placement.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "workloads/plan.h"

namespace seqscale {
namespace {

RankGrid grid(std::int64_t tp, std::int64_t seq, std::int64_t dp, std::int64_t pp, std::int64_t gpus_per_node,
              std::int64_t ep = 1) {
  RankGrid g;
  g.size = {tp, seq, dp, pp};
  g.ep = ep;
  g.gpus_per_node = gpus_per_node;
  return g;
}

void expect_placed(const RankGrid& g, GroupKind k, bool crosses, std::int64_t ranks_per_node) {
  const GroupPlacement pl = place(g, k);
  EXPECT_EQ(pl.crosses_nodes, crosses) << group_name(k);
  EXPECT_EQ(pl.ranks_per_node, ranks_per_node) << group_name(k);
}

TEST(Placement, WorkedExample) {
  const RankGrid dgx = grid(2, 2, 2, 2, 8);
  EXPECT_EQ(dgx.world(), 16);
  EXPECT_EQ(dgx.coords(13), (RankCoords{1, 0, 1, 1}));
  EXPECT_EQ(dgx.rank_of({1, 0, 1, 1}), 13);
  EXPECT_EQ(group_members(dgx, group_shape(dgx, GroupKind::kSequence), 5), (std::vector<std::int64_t>{5, 7}));
  EXPECT_EQ(group_members(dgx, group_shape(dgx, GroupKind::kPipeline), 5), (std::vector<std::int64_t>{5, 13}));
  expect_placed(dgx, GroupKind::kTensor, false, 2);
  expect_placed(dgx, GroupKind::kSequence, false, 2);
  expect_placed(dgx, GroupKind::kData, false, 2);
  expect_placed(dgx, GroupKind::kPipeline, true, 1);
  expect_placed(dgx, GroupKind::kWorld, true, 8);
  // One GPU per node (h100.json): every group of two or more ranks crosses.
  const RankGrid single = grid(2, 2, 2, 2, 1);
  for (GroupKind k : {GroupKind::kTensor, GroupKind::kSequence, GroupKind::kData, GroupKind::kPipeline})
    expect_placed(single, k, true, 1);
  // Unknown nodes: nothing crosses; a group of one never does.
  expect_placed(grid(2, 2, 2, 2, 0), GroupKind::kPipeline, false, 2);
  expect_placed(grid(1, 2, 2, 2, 1), GroupKind::kTensor, false, 1);
}

// Megatron core's parallel_state docstring: 16 GPUs on 2 nodes, tp=2, pp=4, dp=2; the
// pipeline groups [0,4,8,12] ... span both nodes with two members on each.
TEST(Placement, MegatronExampleTp2Pp4Dp2) {
  const RankGrid g = grid(2, 1, 2, 4, 8);
  EXPECT_EQ(group_members(g, group_shape(g, GroupKind::kPipeline), 8), (std::vector<std::int64_t>{0, 4, 8, 12}));
  expect_placed(g, GroupKind::kTensor, false, 2);
  expect_placed(g, GroupKind::kData, false, 2);
  expect_placed(g, GroupKind::kPipeline, true, 2);
}

// On aligned layouts (powers of two), a group of n members `stride` ranks apart crosses
// nodes when n * stride > gpus_per_node, and a node then holds gpus_per_node / stride of
// them (at least one): the closed form the model used before placement had one home.
TEST(Placement, AlignedLayoutsMatchTheStrideClosedForm) {
  for (std::int64_t gpn : {1, 2, 4, 8}) {
    for (std::int64_t tp : {1, 2, 4, 8}) {
      for (std::int64_t seq : {1, 2, 4}) {
        for (std::int64_t dp : {1, 2, 4}) {
          for (std::int64_t pp : {1, 2, 4}) {
            const RankGrid g = grid(tp, seq, dp, pp, gpn);
            auto check = [&](GroupKind k, std::int64_t n, std::int64_t stride) {
              if (n == 1) return;
              const bool crosses = g.world() > gpn && n * stride > gpn;
              const std::int64_t per_node = crosses ? std::max<std::int64_t>(1, gpn / std::min(stride, gpn)) : n;
              expect_placed(g, k, crosses, per_node);
            };
            check(GroupKind::kTensor, tp, 1);
            check(GroupKind::kSequence, seq, tp);
            check(GroupKind::kData, dp, tp * seq);
            check(GroupKind::kPipeline, pp, tp * seq * dp);
          }
        }
      }
    }
  }
}

// What the closed form got wrong. A pipeline's later hops: tp=2, pp=8 on 8 GPUs a node keeps
// stages 0..3 on node 0 and 4..7 on node 1, so the 3 -> 4 transfer crosses although the
// 0 -> 1 one does not. TP groups of 3 on 8-GPU nodes: [6,7,8] straddles nodes 0 and 1.
TEST(Placement, EveryGroupCountsNotOnlyTheFirst) {
  expect_placed(grid(2, 1, 1, 8, 8), GroupKind::kPipeline, true, 4);
  expect_placed(grid(3, 1, 8, 1, 8), GroupKind::kTensor, true, 1);
  expect_placed(grid(4, 1, 6, 1, 8), GroupKind::kTensor, false, 4);
}

// Expert groups are blocks of ep consecutive dp indices; the ranks that hold the same
// experts take one dp index from each block, ep apart.
TEST(Placement, ExpertAndExpertDataGroups) {
  const RankGrid g = grid(1, 1, 16, 1, 8, 2);
  EXPECT_EQ(group_members(g, group_shape(g, GroupKind::kExpert), 5), (std::vector<std::int64_t>{4, 5}));
  expect_placed(g, GroupKind::kExpert, false, 2);
  GroupShape same_experts{};
  same_experts[static_cast<int>(RankAxis::kData)] = {8, 2};
  EXPECT_EQ(group_members(g, same_experts, 5), (std::vector<std::int64_t>{1, 3, 5, 7, 9, 11, 13, 15}));
  const GroupPlacement pl = place(g, same_experts);
  EXPECT_TRUE(pl.crosses_nodes);
  EXPECT_EQ(pl.ranks_per_node, 4);
}

TEST(Placement, GridOfAPlan) {
  Plan p = parse_plan("tp=2,pp=2,dp=2,sp=ulysses,sp_degree=2,ep=2");
  const RankGrid g = rank_grid(p, 8);
  EXPECT_EQ(g.size, (RankCoords{2, 2, 2, 2}));
  EXPECT_EQ(g.ep, 2);
  Plan dap = parse_plan("dap=4,dp=2");
  EXPECT_EQ(rank_grid(dap, 8)[RankAxis::kSequence], 4);
}

}  // namespace
}  // namespace seqscale
