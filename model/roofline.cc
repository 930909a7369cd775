#include "model/roofline.h"

#include <algorithm>

namespace seqscale {

double peak_flops(DType dtype, const ClusterSpec& cluster) {
  return (dtype == DType::kBf16 || dtype == DType::kFp16) ? cluster.peak_bf16_flops : cluster.peak_fp32_flops;
}

double compute_time_s(const KernelCost& cost, DType dtype, const ClusterSpec& cluster, double efficiency) {
  const double eff = efficiency > 0 ? efficiency : 1.0;
  const double t_flops = cost.flops / (peak_flops(dtype, cluster) * eff);
  const double t_bytes = cost.bytes / (cluster.hbm_bytes_per_s * eff);
  return std::max(t_flops, t_bytes);
}

double compute_time_s(const ComputeOp& op, const ClusterSpec& cluster, const Calibration& cal) {
  const double work = op.cost.flops > 0 ? op.cost.flops : op.cost.bytes;
  return compute_time_s(op.cost, op.dtype, cluster, cal.compute_efficiency(op.kernel, work));
}

double latency_steps(Collective c, std::int64_t n) {
  if (n <= 1) return 0.0;
  switch (c) {
    case Collective::kAllReduce: return 2.0 * static_cast<double>(n - 1);
    case Collective::kAllGather:
    case Collective::kReduceScatter:
    case Collective::kAllToAll: return static_cast<double>(n - 1);
    case Collective::kBroadcast:
    case Collective::kSendRecv:
    case Collective::kCount: break;
  }
  return 1.0;
}

double link_bytes_per_s(const ClusterSpec& cluster, bool crosses_nodes, std::int64_t ranks_per_node) {
  if (!crosses_nodes) return cluster.nvlink_bytes_per_s;
  const double k = static_cast<double>(std::max<std::int64_t>(1, ranks_per_node));
  return std::min(cluster.nvlink_bytes_per_s, k * cluster.ib_bytes_per_s);
}

double comm_time_s(Collective c, std::int64_t group_size, double bytes, bool crosses_nodes,
                   std::int64_t ranks_per_node, const ClusterSpec& cluster, const Calibration& cal) {
  if (group_size <= 1 || bytes <= 0) return 0.0;
  const LinkTier tier = crosses_nodes ? LinkTier::kIb : LinkTier::kNvlink;
  const double beta = link_bytes_per_s(cluster, crosses_nodes, ranks_per_node) * cal.comm_efficiency(c, tier);
  double latency = latency_steps(c, group_size) * cluster.nvlink_latency_s;
  if (crosses_nodes) {
    // A ring over m nodes with k ranks each takes (k-1) NVLink hops and (m-1) InfiniBand hops
    // per pass (2 passes for all-reduce): only the hops that leave a node pay the IB latency.
    const std::int64_t k = std::clamp<std::int64_t>(ranks_per_node, 1, group_size);
    const std::int64_t m = (group_size + k - 1) / k;
    const double passes = latency_steps(c, group_size) / static_cast<double>(group_size - 1);
    latency = c == Collective::kSendRecv || c == Collective::kBroadcast
                  ? cluster.ib_latency_s
                  : passes * (static_cast<double>(k - 1) * cluster.nvlink_latency_s +
                              static_cast<double>(m - 1) * cluster.ib_latency_s);
  }
  return latency + busbw_factor(c, group_size) * bytes / beta;
}

double comm_time_s(const CommOp& op, const ClusterSpec& cluster, const Calibration& cal) {
  const std::int64_t rpn = op.crosses_nodes ? 1 : std::min<std::int64_t>(op.group_size, cluster.gpus_per_node);
  return comm_time_s(op.collective, op.group_size, static_cast<double>(op.bytes), op.crosses_nodes, rpn,
                     cluster, cal);
}

}  // namespace seqscale
