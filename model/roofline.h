// Roofline pricing of one kernel call and one collective: the two primitives every time
// estimate in model/ reduces to.
//   compute: max(flops / (peak * eff), bytes / (hbm * eff)), peak chosen by dtype
//            (bf16/fp16 tensor-core peak, else fp32).
//   comm:    alpha-beta per collective (nccl-tests convention, ANCHORS.md s4):
//            steps * alpha + busbw_factor(n) * bytes / (link * eff), with the link the
//            bottleneck tier: NVLink inside a node, InfiniBand when the group crosses nodes.
//            Across nodes the ring's hops inside a node pay the NVLink alpha and only the
//            hops between nodes the InfiniBand alpha.
#pragma once
#include <cstdint>

#include "model/calibration.h"
#include "workloads/collective_sizes.h"
#include "workloads/specs.h"
#include "workloads/step_program.h"

namespace seqscale {

double peak_flops(DType dtype, const ClusterSpec& cluster);

double compute_time_s(const KernelCost& cost, DType dtype, const ClusterSpec& cluster, double efficiency);
// Prices a ComputeOp with the calibrated efficiency of its kernel.
double compute_time_s(const ComputeOp& op, const ClusterSpec& cluster, const Calibration& cal);

// busbw_factor(c, n), the nccl-tests bus-bandwidth factor, is workloads/collective_sizes.h's.
// Latency steps of the ring algorithm: 2(n-1) all-reduce, n-1 gather/scatter/all-to-all, 1 otherwise.
double latency_steps(Collective c, std::int64_t n);

// Bandwidth one rank of a group gets on the bottleneck tier. Across nodes, each GPU has its
// own NIC (DGX: 8 HDR per node), so a group with k ranks per node drives k NICs:
// min(nvlink, k * ib).
double link_bytes_per_s(const ClusterSpec& cluster, bool crosses_nodes, std::int64_t ranks_per_node);

double comm_time_s(Collective c, std::int64_t group_size, double bytes, bool crosses_nodes,
                   std::int64_t ranks_per_node, const ClusterSpec& cluster, const Calibration& cal);
// CommOp form: ranks_per_node is min(group_size, gpus_per_node) inside a node and 1 across
// (a CommOp does not say how its ranks are placed; the plan-level estimate does).
double comm_time_s(const CommOp& op, const ClusterSpec& cluster, const Calibration& cal);

}  // namespace seqscale
