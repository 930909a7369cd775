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
  require(d.sp >= 1, "sp", "must be >= 1");
  require(d.dp >= 1, "dp", "must be >= 1");
  require(d.pp >= 1, "pp", "must be >= 1");
  require(d.ep >= 1 && d.dp % d.ep == 0, "ep", str_cat({"must divide dp (", std::to_string(d.dp), ")"}));
  require(d.gpus_per_node >= 0, "gpus_per_node", "must be >= 0");
  if (d.gpus_per_node > 0) {
    require(d.gpus_per_node % d.tp == 0, "tp",
            str_cat({"must divide gpus_per_node (", std::to_string(d.gpus_per_node), ") so TP groups stay inside a node"}));
  }
}

RankLayout RankLayout::for_world(int world, ParallelDims d) {
  const int other = d.tp * d.sp * d.pp;
  require(other >= 1 && world % other == 0, "tp*sp*pp",
          str_cat({"(", std::to_string(other), ") must divide the world size ", std::to_string(world)}));
  d.dp = world / other;
  if (d.ep > d.dp || d.dp % d.ep != 0) d.ep = d.dp;
  return RankLayout(d);
}

RankCoord RankLayout::coord(int rank) const {
  RankCoord c;
  c.tp = rank % d_.tp;
  rank /= d_.tp;
  c.sp = rank % d_.sp;
  rank /= d_.sp;
  c.dp = rank % d_.dp;
  c.pp = rank / d_.dp;
  return c;
}

int RankLayout::rank_of(const RankCoord& c) const { return c.tp + d_.tp * (c.sp + d_.sp * (c.dp + d_.dp * c.pp)); }

int RankLayout::group_size(GroupKind g) const {
  switch (g) {
    case GroupKind::kTensor: return d_.tp;
    case GroupKind::kSequence:
    case GroupKind::kDap: return d_.sp;
    case GroupKind::kData: return d_.dp;
    case GroupKind::kExpert: return d_.ep;
    case GroupKind::kPipeline: return d_.pp;
    case GroupKind::kWorld: return world_size();
  }
  return 1;
}

std::vector<int> RankLayout::group_ranks(GroupKind g, int rank) const {
  const RankCoord c = coord(rank);
  std::vector<int> out;
  auto vary = [&](int n, auto set) {
    for (int i = 0; i < n; ++i) {
      RankCoord x = c;
      set(x, i);
      out.push_back(rank_of(x));
    }
  };
  switch (g) {
    case GroupKind::kTensor: vary(d_.tp, [](RankCoord& x, int i) { x.tp = i; }); break;
    case GroupKind::kSequence:
    case GroupKind::kDap: vary(d_.sp, [](RankCoord& x, int i) { x.sp = i; }); break;
    case GroupKind::kData: vary(d_.dp, [](RankCoord& x, int i) { x.dp = i; }); break;
    case GroupKind::kExpert: {
      const int base = c.dp / d_.ep * d_.ep;
      vary(d_.ep, [base](RankCoord& x, int i) { x.dp = base + i; });
      break;
    }
    case GroupKind::kPipeline: vary(d_.pp, [](RankCoord& x, int i) { x.pp = i; }); break;
    case GroupKind::kWorld:
      for (int r = 0; r < world_size(); ++r) out.push_back(r);
      break;
  }
  return out;
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

bool RankLayout::crosses_nodes(GroupKind g) const {
  if (d_.gpus_per_node <= 0) return false;
  for (const auto& grp : all_groups(g)) {
    const int node = grp.front() / d_.gpus_per_node;
    for (int r : grp) {
      if (r / d_.gpus_per_node != node) return true;
    }
  }
  return false;
}

std::string RankLayout::describe() const {
  return str_cat({"tp", std::to_string(d_.tp), " sp", std::to_string(d_.sp), " dp", std::to_string(d_.dp), " pp",
                  std::to_string(d_.pp), " ep", std::to_string(d_.ep), " (", std::to_string(world_size()), " ranks)"});
}

RankLayout layout_from_plan(const Plan& plan, int gpus_per_node) {
  require(plan.dp > 0, "dp", "must be derived first (check_plan)");
  require(plan.sp_degree > 0, "sp_degree", "must be derived first (check_plan)");
  return RankLayout(ParallelDims{.tp = plan.tp, .sp = plan.seq_degree() * plan.dap, .dp = plan.dp, .pp = plan.pp,
                                 .ep = plan.ep, .gpus_per_node = gpus_per_node});
}

}  // namespace seqscale::comm
