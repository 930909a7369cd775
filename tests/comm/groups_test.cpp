// Rank layout of comm/groups.h: the worked 16-rank example in its comment, Megatron's own
// 16-GPU example (megatron/core/parallel_state.py docstring), and the validation errors.
#include "comm/groups.h"

#include <gtest/gtest.h>

#include "workloads/plan.h"

#include <set>
#include <stdexcept>

namespace seqscale::comm {
namespace {

using Groups = std::vector<std::vector<int>>;

TEST(Groups, Worked16RankExample) {
  RankLayout l({.tp = 2, .seq = 2, .dp = 2, .pp = 2, .ep = 2, .gpus_per_node = 8});
  ASSERT_EQ(l.world_size(), 16);
  EXPECT_EQ(l.all_groups(GroupKind::kTensor),
            (Groups{{0, 1}, {2, 3}, {4, 5}, {6, 7}, {8, 9}, {10, 11}, {12, 13}, {14, 15}}));
  EXPECT_EQ(l.all_groups(GroupKind::kSequence),
            (Groups{{0, 2}, {1, 3}, {4, 6}, {5, 7}, {8, 10}, {9, 11}, {12, 14}, {13, 15}}));
  EXPECT_EQ(l.all_groups(GroupKind::kData),
            (Groups{{0, 4}, {1, 5}, {2, 6}, {3, 7}, {8, 12}, {9, 13}, {10, 14}, {11, 15}}));
  EXPECT_EQ(l.all_groups(GroupKind::kExpert), l.all_groups(GroupKind::kData));
  EXPECT_EQ(l.all_groups(GroupKind::kPipeline),
            (Groups{{0, 8}, {1, 9}, {2, 10}, {3, 11}, {4, 12}, {5, 13}, {6, 14}, {7, 15}}));
  EXPECT_EQ(l.coord(13), (RankCoord{1, 0, 1, 1}));
  EXPECT_EQ(l.rank_of({1, 0, 1, 1}), 13);
  EXPECT_FALSE(l.crosses_nodes(GroupKind::kTensor));
  EXPECT_FALSE(l.crosses_nodes(GroupKind::kSequence));
  EXPECT_FALSE(l.crosses_nodes(GroupKind::kData));
  EXPECT_TRUE(l.crosses_nodes(GroupKind::kPipeline));
  EXPECT_EQ(l.group_rank(GroupKind::kPipeline, 13), 1);
  EXPECT_EQ(l.group_ranks(GroupKind::kWorld, 5).size(), 16u);
}

TEST(Groups, LayoutFromPlan) {
  Plan plan = parse_plan("tp=2,pp=2,dp=2,sp=ulysses,sp_degree=2,ep=2");
  const RankLayout l = layout_from_plan(plan, 8);
  EXPECT_EQ(l.group_size(GroupKind::kExpert), 2);
  EXPECT_EQ(l.world_size(), 16);
  EXPECT_EQ(l.all_groups(GroupKind::kSequence),
            (Groups{{0, 2}, {1, 3}, {4, 6}, {5, 7}, {8, 10}, {9, 11}, {12, 14}, {13, 15}}));
  Plan dap = parse_plan("dap=4,dp=2");
  EXPECT_EQ(layout_from_plan(dap).group_size(GroupKind::kSequence), 4);  // DAP runs on the sequence axis
  Plan lss = parse_plan("sp=lss,sp_degree=4,dp=2");
  EXPECT_EQ(layout_from_plan(lss).group_size(GroupKind::kSequence), 4);
  EXPECT_EQ(layout_from_plan(lss).group_size(GroupKind::kData), 2);
  Plan underived = parse_plan("tp=2");
  EXPECT_THROW(layout_from_plan(underived), std::invalid_argument);  // dp not derived yet
}

TEST(Groups, MegatronExampleTp2Pp4Dp2) {
  RankLayout l({.tp = 2, .seq = 1, .dp = 2, .pp = 4});
  EXPECT_EQ(l.all_groups(GroupKind::kTensor),
            (Groups{{0, 1}, {2, 3}, {4, 5}, {6, 7}, {8, 9}, {10, 11}, {12, 13}, {14, 15}}));
  EXPECT_EQ(l.all_groups(GroupKind::kData),
            (Groups{{0, 2}, {1, 3}, {4, 6}, {5, 7}, {8, 10}, {9, 11}, {12, 14}, {13, 15}}));
  EXPECT_EQ(l.all_groups(GroupKind::kPipeline), (Groups{{0, 4, 8, 12}, {1, 5, 9, 13}, {2, 6, 10, 14}, {3, 7, 11, 15}}));
}

// Which groups cross nodes is workloads/placement.h's answer, for the backends as for the
// model: with one GPU a node (workloads/clusters/h100.json) every group of two or more crosses.
TEST(Groups, OneGpuPerNodeEveryGroupCrosses) {
  RankLayout l({.tp = 1, .seq = 2, .dp = 2, .pp = 2, .gpus_per_node = 1});
  EXPECT_FALSE(l.crosses_nodes(GroupKind::kTensor));  // one rank
  for (auto g : {GroupKind::kSequence, GroupKind::kData, GroupKind::kPipeline, GroupKind::kWorld})
    EXPECT_TRUE(l.crosses_nodes(g)) << group_name(g);
  RankLayout megatron({.tp = 2, .seq = 1, .dp = 2, .pp = 4, .gpus_per_node = 8});
  EXPECT_FALSE(megatron.crosses_nodes(GroupKind::kTensor));
  EXPECT_FALSE(megatron.crosses_nodes(GroupKind::kData));
  EXPECT_TRUE(megatron.crosses_nodes(GroupKind::kPipeline));
}

TEST(Groups, ExpertGroupsCarveData) {
  RankLayout l({.tp = 1, .seq = 1, .dp = 8, .pp = 1, .ep = 4});
  EXPECT_EQ(l.all_groups(GroupKind::kExpert), (Groups{{0, 1, 2, 3}, {4, 5, 6, 7}}));
}

TEST(Groups, EveryKindPartitionsTheWorld) {
  RankLayout l({.tp = 2, .seq = 3, .dp = 4, .pp = 2, .ep = 2});
  for (int k = 0; k < kNumGroupKinds; ++k) {
    const auto g = static_cast<GroupKind>(k);
    std::set<int> seen;
    for (const auto& grp : l.all_groups(g)) {
      EXPECT_EQ(static_cast<int>(grp.size()), l.group_size(g));
      for (int r : grp) EXPECT_TRUE(seen.insert(r).second) << group_name(g) << " rank " << r;
    }
    EXPECT_EQ(static_cast<int>(seen.size()), l.world_size());
  }
}

TEST(Groups, ValidationNamesTheField) {
  try {
    RankLayout({.tp = 3, .gpus_per_node = 8});
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("tp must divide gpus_per_node"), std::string::npos) << e.what();
  }
  EXPECT_THROW(RankLayout({.dp = 4, .ep = 3}), std::invalid_argument);
  EXPECT_THROW(RankLayout::for_world(6, {.tp = 4}), std::invalid_argument);
  EXPECT_EQ(RankLayout::for_world(8, {.tp = 2}).dims().dp, 4);
}

}  // namespace
}  // namespace seqscale::comm
