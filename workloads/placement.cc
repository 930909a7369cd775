// Rank placement (workloads/placement.h: the order, the group shapes, a worked example).
#include "workloads/placement.h"

#include <algorithm>

#include "workloads/plan.h"

namespace seqscale {
namespace {

constexpr int idx(RankAxis a) { return static_cast<int>(a); }

// Calls f(rank) for every member of the group whose first member is `base`, ascending: the
// slowest axis outermost, and an axis's span never reaches the next axis's stride.
template <class F>
void for_each_member(const RankGrid& grid, const GroupShape& s, std::int64_t base, F&& f) {
  std::int64_t d[kRankAxes];
  for (int a = 0; a < kRankAxes; ++a) d[a] = s[a].step * grid.stride(static_cast<RankAxis>(a));
  for (std::int64_t i3 = 0; i3 < s[3].count; ++i3)
    for (std::int64_t i2 = 0; i2 < s[2].count; ++i2)
      for (std::int64_t i1 = 0; i1 < s[1].count; ++i1)
        for (std::int64_t i0 = 0; i0 < s[0].count; ++i0) f(base + i3 * d[3] + i2 * d[2] + i1 * d[1] + i0 * d[0]);
}

// The first coordinate of the span's block that holds coordinate c.
std::int64_t block_start(std::int64_t c, const AxisSpan& s) { return c - (c / s.step % s.count) * s.step; }

// Which residues modulo gpus_per_node the first members of a shape's groups take: along
// each axis a group starts a block of its span, so its first member is a sum of one block
// start's rank offset per axis.
std::vector<bool> first_member_residues(const RankGrid& grid, const GroupShape& s) {
  const auto gpn = static_cast<std::size_t>(grid.gpus_per_node);
  std::vector<bool> sums(gpn), offsets, next;
  sums[0] = true;
  for (int a = 0; a < kRankAxes; ++a) {
    const std::int64_t stride = grid.stride(static_cast<RankAxis>(a));
    offsets.assign(gpn, false);
    for (std::int64_t c = 0; c < grid.size[a]; ++c) {
      if (block_start(c, s[a]) == c) offsets[static_cast<std::size_t>(c * stride) % gpn] = true;
    }
    next.assign(gpn, false);
    for (std::size_t r = 0; r < gpn; ++r)
      for (std::size_t x = 0; x < gpn; ++x)
        if (sums[r] && offsets[x]) next[(r + x) % gpn] = true;
    sums.swap(next);
  }
  return sums;
}

}  // namespace

std::int64_t RankGrid::stride(RankAxis a) const {
  std::int64_t s = 1;
  for (int i = 0; i < idx(a); ++i) s *= size[i];
  return s;
}

RankCoords RankGrid::coords(std::int64_t rank) const {
  RankCoords c{};
  for (int a = 0; a < kRankAxes; ++a) {
    c[a] = rank % size[a];
    rank /= size[a];
  }
  return c;
}

std::int64_t RankGrid::rank_of(const RankCoords& c) const {
  std::int64_t r = 0;
  for (int a = kRankAxes - 1; a >= 0; --a) r = r * size[a] + c[a];
  return r;
}

RankGrid rank_grid(const Plan& plan, std::int64_t gpus_per_node) {
  RankGrid g;
  g.size = {plan.tp, static_cast<std::int64_t>(plan.seq_degree()) * plan.dap, plan.dp, plan.pp};
  g.ep = plan.ep;
  g.gpus_per_node = gpus_per_node;
  return g;
}

GroupShape group_shape(const RankGrid& grid, GroupKind g) {
  GroupShape s{};
  auto whole = [&](RankAxis a) { s[idx(a)] = {grid[a], 1}; };
  switch (g) {
    case GroupKind::kTensor: whole(RankAxis::kTensor); break;
    case GroupKind::kSequence: whole(RankAxis::kSequence); break;
    case GroupKind::kData: whole(RankAxis::kData); break;
    case GroupKind::kExpert: s[idx(RankAxis::kData)] = {grid.ep, 1}; break;
    case GroupKind::kPipeline: whole(RankAxis::kPipeline); break;
    case GroupKind::kWorld:
      for (int a = 0; a < kRankAxes; ++a) whole(static_cast<RankAxis>(a));
      break;
    case GroupKind::kCount: break;
  }
  return s;
}

std::int64_t group_size(const GroupShape& shape) {
  std::int64_t n = 1;
  for (const AxisSpan& s : shape) n *= s.count;
  return n;
}

std::vector<std::int64_t> group_members(const RankGrid& grid, const GroupShape& shape, std::int64_t rank) {
  RankCoords c = grid.coords(rank);
  for (int a = 0; a < kRankAxes; ++a) c[a] = block_start(c[a], shape[a]);
  std::vector<std::int64_t> out;
  out.reserve(static_cast<std::size_t>(group_size(shape)));
  for_each_member(grid, shape, grid.rank_of(c), [&](std::int64_t r) { out.push_back(r); });
  return out;
}

GroupPlacement place(const RankGrid& grid, const GroupShape& shape) {
  const std::int64_t n = group_size(shape), gpn = grid.gpus_per_node;
  if (n <= 1 || gpn <= 0 || grid.world() <= gpn) return {false, n};
  if (gpn == 1) return {true, 1};
  // Every group of the shape is its first member plus the same offsets, and node boundaries
  // repeat every gpus_per_node ranks, so where a group's members fall depends only on its
  // first member modulo gpus_per_node: one walk per residue covers every group.
  const std::vector<bool> residues = first_member_residues(grid, shape);
  GroupPlacement out{false, n};
  for (std::int64_t first = 0; first < gpn; ++first) {
    if (!residues[static_cast<std::size_t>(first)]) continue;
    // Members ascend, so each node's members are one run.
    std::int64_t node_end = gpn, run = 0;
    for_each_member(grid, shape, first, [&](std::int64_t r) {
      if (r >= node_end) {
        out.crosses_nodes = true;
        out.ranks_per_node = std::min(out.ranks_per_node, run);
        node_end = (r / gpn + 1) * gpn;
        run = 0;
      }
      ++run;
    });
    if (run < n) out.ranks_per_node = std::min(out.ranks_per_node, run);
  }
  return out;
}

}  // namespace seqscale
