// Rank-layout math for comm/groups.h (worked 16-rank example there).
#include "comm/groups.h"

#include <algorithm>
#include <stdexcept>

#include "comm/str_cat.h"
#include "workloads/plan.h"

namespace seqscale::comm {
namespace {
void require(bool ok, const std::string& field, const std::string& why) {
  if (!ok) throw std::invalid_argument(str_cat({"parallel plan: ", field, " ", why}));
}
}  // namespace

RankLayout::RankLayout(ParallelDims d) : d_(d) {
  require(d.tp >= 1, "tp", "must be >= 1");
  require(d.seq >= 1, "seq", "must be >= 1");
  require(d.dp >= 1, "dp", "must be >= 1");
  require(d.pp >= 1, "pp", "must be >= 1");
  require(d.ep >= 1 && d.dp % d.ep == 0, "ep", str_cat({"must divide dp (", std::to_string(d.dp), ")"}));
  require(d.gpus_per_node >= 0, "gpus_per_node", "must be >= 0");
  if (d.gpus_per_node > 0) {
    require(d.gpus_per_node % d.tp == 0, "tp",
            str_cat({"must divide gpus_per_node (", std::to_string(d.gpus_per_node), ") so TP groups stay inside a node"}));
  }
  grid_.size = {d.tp, d.seq, d.dp, d.pp};
  grid_.ep = d.ep;
  grid_.gpus_per_node = d.gpus_per_node;
}

RankLayout RankLayout::for_world(int world, ParallelDims d) {
  const int other = d.tp * d.seq * d.pp;
  require(other >= 1 && world % other == 0, "tp*seq*pp",
          str_cat({"(", std::to_string(other), ") must divide the world size ", std::to_string(world)}));
  d.dp = world / other;
  if (d.ep > d.dp || d.dp % d.ep != 0) d.ep = d.dp;
  return RankLayout(d);
}

RankCoord RankLayout::coord(int rank) const {
  const RankCoords c = grid_.coords(rank);
  return {static_cast<int>(c[0]), static_cast<int>(c[1]), static_cast<int>(c[2]), static_cast<int>(c[3])};
}

int RankLayout::rank_of(const RankCoord& c) const { return static_cast<int>(grid_.rank_of({c.tp, c.seq, c.dp, c.pp})); }

int RankLayout::group_size(GroupKind g) const { return static_cast<int>(seqscale::group_size(group_shape(grid_, g))); }

std::vector<int> RankLayout::group_ranks(GroupKind g, int rank) const {
  const std::vector<std::int64_t> members = group_members(grid_, group_shape(grid_, g), rank);
  return std::vector<int>(members.begin(), members.end());
}

int RankLayout::group_rank(GroupKind g, int rank) const {
  const auto members = group_ranks(g, rank);
  return static_cast<int>(std::find(members.begin(), members.end(), rank) - members.begin());
}

int RankLayout::group_color(GroupKind g, int rank) const { return group_ranks(g, rank).front(); }

std::vector<std::vector<int>> RankLayout::all_groups(GroupKind g) const {
  std::vector<std::vector<int>> out;
  for (int r = 0; r < world_size(); ++r) {
    if (group_color(g, r) == r) out.push_back(group_ranks(g, r));
  }
  return out;
}

bool RankLayout::crosses_nodes(GroupKind g) const { return place(grid_, g).crosses_nodes; }

std::string RankLayout::describe() const {
  return str_cat({"tp", std::to_string(d_.tp), " seq", std::to_string(d_.seq), " dp", std::to_string(d_.dp), " pp",
                  std::to_string(d_.pp), " ep", std::to_string(d_.ep), " (", std::to_string(world_size()), " ranks)"});
}

RankLayout layout_from_plan(const Plan& plan, int gpus_per_node) {
  require(plan.dp > 0, "dp", "must be derived first (check_plan)");
  require(plan.sp_degree > 0, "sp_degree", "must be derived first (check_plan)");
  const RankGrid g = rank_grid(plan, gpus_per_node);
  auto deg = [&](RankAxis a) { return static_cast<int>(g[a]); };
  return RankLayout(ParallelDims{.tp = deg(RankAxis::kTensor), .seq = deg(RankAxis::kSequence), .dp = deg(RankAxis::kData),
                                 .pp = deg(RankAxis::kPipeline), .ep = static_cast<int>(g.ep), .gpus_per_node = gpus_per_node});
}

}  // namespace seqscale::comm
