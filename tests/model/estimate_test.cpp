// estimate(): where each group's traffic runs (workloads/placement.h, issue 13 s2) and how
// pipeline transfers are priced (issue 13 s5): Megatron's scatter/gather of the stage
// boundary (Narayanan et al. 2021 s4.1) and its --overlap-p2p-communication.
#include <gtest/gtest.h>

#include "model/estimate.h"
#include "model/roofline.h"
#include "workloads/specs.h"

namespace seqscale {
namespace {

CommLink link_of(const std::vector<CommLink>& links, GroupKind g) {
  for (const CommLink& l : links) {
    if (l.group == g) return l;
  }
  ADD_FAILURE() << "no link for group " << group_name(g);
  return {};
}

CommOp op(Collective c, GroupKind g, std::int32_t n, std::int64_t bytes, Phase ph, bool overlappable = false) {
  CommOp o;
  o.collective = c;
  o.group = g;
  o.group_size = n;
  o.bytes = bytes;
  o.phase = ph;
  o.overlappable = overlappable;
  return o;
}

// The same plan on DGX H100 nodes (8 GPUs each) and on one-GPU nodes (h100.json): TP runs
// over NVLink on the first and over InfiniBand on the second, the rest being equal.
TEST(Estimate, TensorParallelTrafficRunsOnTheLinkPlacementGives) {
  const ModelSpec m = load_model("gpt-30b");
  const Plan plan = parse_plan("tp=8,pp=2,sp=megatron,zero=1,recompute=full");
  const RunShape shape{8192, 1, 0};
  const Calibration cal = default_calibration();
  const Estimate dgx = estimate(m, load_cluster("dgx-h100"), plan, 16, shape, cal);
  const Estimate single = estimate(m, load_cluster("h100"), plan, 16, shape, cal);
  EXPECT_EQ(link_of(dgx.links, GroupKind::kTensor).tier, LinkTier::kNvlink);
  EXPECT_EQ(link_of(dgx.links, GroupKind::kTensor).ranks_per_node, 8);
  EXPECT_EQ(link_of(single.links, GroupKind::kTensor).tier, LinkTier::kIb);
  EXPECT_EQ(link_of(single.links, GroupKind::kTensor).ranks_per_node, 1);
  EXPECT_EQ(link_of(dgx.links, GroupKind::kPipeline).tier, LinkTier::kIb);  // stage 1 is the next node
  // Same GPU, same bytes: NVLink's 450 GB/s against one 50 GB/s NIC per GPU.
  EXPECT_NEAR(single.time.compute, dgx.time.compute, 1e-12 * dgx.time.compute);
  EXPECT_GT(single.time.tp_comm, 5.0 * dgx.time.tp_comm);
}

// tp=4, pp=2 on two DGX H100 nodes: a stage per node, so the boundary crosses InfiniBand.
struct PipelineAcrossNodes : ::testing::Test {
  const ClusterSpec c = load_cluster("dgx-h100");
  const Calibration cal = default_calibration();
  const std::int64_t boundary = 2 * 8192 * 6144;  // bf16 [s, b, h] at s = 8192, h = 6144
  Plan p = parse_plan("tp=4,pp=2,dp=2");
  // One forward and one backward transfer of `bytes` each.
  std::vector<CommOp> transfers(std::int64_t bytes, bool overlappable = false) const {
    return {op(Collective::kSendRecv, GroupKind::kPipeline, 2, bytes, Phase::kForward, overlappable),
            op(Collective::kSendRecv, GroupKind::kPipeline, 2, bytes, Phase::kBackward, overlappable)};
  }
};

// Narayanan et al. 2021 s4.1: each TP rank sends 1/tp of the boundary over the inter-node
// link, then the receiving stage all-gathers the slices over NVLink.
TEST_F(PipelineAcrossNodes, ScatterGatherMovesATpthOfTheBoundaryOverInfiniBand) {
  const StepCommTime whole = transformer_comm_time(transfers(boundary), p, c, cal, 0.0);
  std::vector<CommOp> scattered = transfers(boundary / 4);
  for (Phase ph : {Phase::kForward, Phase::kBackward})
    scattered.push_back(op(Collective::kAllGather, GroupKind::kTensor, 4, boundary, ph));
  std::vector<CommLink> links;
  const StepCommTime sg = transformer_comm_time(scattered, p, c, cal, 0.0, &links);
  EXPECT_EQ(link_of(links, GroupKind::kPipeline).tier, LinkTier::kIb);
  EXPECT_EQ(link_of(links, GroupKind::kTensor).tier, LinkTier::kNvlink);
  // The inter-node time is a quarter of the whole boundary's, latency apart.
  const double latency = 2 * c.ib_latency_s;
  EXPECT_LT(sg.p2p, whole.p2p);
  EXPECT_NEAR(sg.p2p - latency, (whole.p2p - latency) / 4, 1e-9 * whole.p2p);
  // The gathers are priced on NVLink, and the two together still beat the whole transfer.
  EXPECT_DOUBLE_EQ(sg.tp, 2 * comm_time_s(Collective::kAllGather, 4, static_cast<double>(boundary), false, 4, c, cal));
  EXPECT_LT(sg.p2p + sg.tp, whole.p2p);
}

// Megatron's --overlap-p2p-communication: an overlappable transfer exposes only what the
// compute it overlaps (`p2p_hide_s`) cannot cover, max(0, t - hide) per transfer.
TEST_F(PipelineAcrossNodes, OverlappedTransfersExposeOnlyWhatComputeCannotHide) {
  const double blocking = transformer_comm_time(transfers(boundary), p, c, cal, 1.0).p2p;
  const double one = blocking / 2;
  EXPECT_DOUBLE_EQ(transformer_comm_time(transfers(boundary, true), p, c, cal, 0.0).p2p, blocking);
  EXPECT_NEAR(transformer_comm_time(transfers(boundary, true), p, c, cal, 0.25 * one).p2p, 1.5 * one, 1e-12);
  EXPECT_EQ(transformer_comm_time(transfers(boundary, true), p, c, cal, 2 * one).p2p, 0.0);
}

// The whole estimate: p2p_overlap=1 lowers the exposed pipeline time of an interleaved plan
// (the emitter marks its transfers overlappable, workloads/parallel/pipeline_comm.h).
TEST(Estimate, P2pOverlapLowersTheExposedPipelineTime) {
  const ModelSpec m = load_model("gpt-30b");
  const ClusterSpec c = load_cluster("dgx-h100");
  const RunShape shape{8192, 1, 0};
  const Calibration cal = default_calibration();
  const char* plan = "tp=4,pp=4,schedule=interleaved,vpp=2,sp=megatron,zero=1,recompute=full";
  const Estimate blocking = estimate(m, c, parse_plan(plan), 16, shape, cal);
  const Estimate overlapped = estimate(m, c, parse_plan(std::string(plan) + ",p2p_overlap=1"), 16, shape, cal);
  EXPECT_GT(blocking.time.pp_comm, 0.0);
  EXPECT_LT(overlapped.time.pp_comm, blocking.time.pp_comm);
  EXPECT_LT(overlapped.time.step, blocking.time.step);
  EXPECT_NEAR(overlapped.time.compute, blocking.time.compute, 1e-12 * blocking.time.compute);
}

}  // namespace
}  // namespace seqscale
