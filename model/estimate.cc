#include "model/estimate.h"

#include <algorithm>
#include <map>
#include <tuple>

#include "model/comm_volume.h"
#include "layers/evoformer_block/evoformer_block_program.h"
#include "model/roofline.h"
#include "model/transformer_program.h"
#include "workloads/config_error.h"
#include "workloads/op_kinds.h"
#include "workloads/placement.h"

namespace seqscale {

MemoryBreakdown estimate_memory(const ModelSpec& model, const ClusterSpec& cluster, const Plan& plan, const RunShape& shape) {
  return model.is_transformer() ? transformer_memory(model.transformer(), cluster, plan, shape)
                                : evoformer_memory(model.evoformer(), cluster, plan, shape);
}

bool memory_fits(const MemoryBreakdown& m, const ClusterSpec& cluster) {
  return m.peak() <= static_cast<double>(cluster.gpu_memory_bytes);
}

double megatron_reported_flops(const TransformerSpec& t, const Plan& p, double batch, double seq) {
  const double L = static_cast<double>(t.layers), h = static_cast<double>(t.hidden), V = static_cast<double>(t.vocab);
  const double ckpt = p.recompute == Recompute::kFull ? 4.0 : 3.0;
  return 24.0 * ckpt * batch * seq * L * h * h * (1.0 + seq / (6.0 * h) + V / (16.0 * L * h));
}

double model_flops(const TransformerSpec& t, double batch, double seq) {
  const double L = static_cast<double>(t.layers), h = static_cast<double>(t.hidden), V = static_cast<double>(t.vocab);
  return 72.0 * batch * seq * L * h * h * (1.0 + seq / (6.0 * h) + V / (12.0 * h * L));
}

// ---- communication, each op on the link its group's placement gives ---------------

namespace {

// The ranks an op's group holds: the layout's group of its kind (workloads/placement.h),
// except kData, which the emitters (model/comm_volume.h) use for the ranks that share
// model-state shards: dp x Ulysses (DeepSpeed-Ulysses shards ZeRO over both) and, for a MoE
// rank's own experts (zero_shards / ep ranks), the ranks holding the same experts: one dp
// index in every block of ep.
GroupShape op_group_shape(const RankGrid& grid, const Plan& p, const CommOp& op) {
  GroupShape s = group_shape(grid, op.group);
  if (op.group != GroupKind::kData) return s;
  s[static_cast<int>(RankAxis::kSequence)] = {p.ulysses(), 1};
  if (p.ep > 1 && op.group_size == p.zero_shards() / p.ep) s[static_cast<int>(RankAxis::kData)] = {p.dp / p.ep, p.ep};
  return s;
}

// Prices CommOps on the links their groups are placed on. A step repeats a handful of
// distinct ops thousands of times (layers x micro-batches x passes), and the search calls
// this per fitting plan: each distinct op is priced once, each group placed once.
class CommPricer {
 public:
  CommPricer(const Plan& p, const ClusterSpec& c, const Calibration& cal)
      : plan_(p), cluster_(c), cal_(cal), grid_(rank_grid(p, c.gpus_per_node)) {}

  double operator()(const CommOp& op) {
    const auto key = std::make_tuple(op.collective, op.group, op.group_size, op.bytes);
    if (const auto it = priced_.find(key); it != priced_.end()) return it->second;
    const CommLink l = link(op);
    const double t = comm_time_s(op.collective, op.group_size, static_cast<double>(op.bytes), l.tier == LinkTier::kIb,
                                 l.ranks_per_node, cluster_, cal_);
    return priced_.emplace(key, t).first->second;
  }

  const std::vector<CommLink>& links() const { return links_; }

 private:
  CommLink link(const CommOp& op) {
    for (const CommLink& l : links_) {
      if (l.group == op.group && l.group_size == op.group_size) return l;
    }
    const GroupPlacement pl = place(grid_, op_group_shape(grid_, plan_, op));
    // A send/recv moves one rank's message through that rank's own NIC, however many
    // members of the group its node holds.
    const std::int64_t ranks_per_node = op.collective == Collective::kSendRecv ? 1 : pl.ranks_per_node;
    links_.push_back({op.group, op.group_size, pl.crosses_nodes ? LinkTier::kIb : LinkTier::kNvlink, ranks_per_node});
    return links_.back();
  }

  const Plan& plan_;
  const ClusterSpec& cluster_;
  const Calibration& cal_;
  RankGrid grid_;
  std::vector<CommLink> links_;
  std::map<std::tuple<Collective, GroupKind, std::int32_t, std::int64_t>, double> priced_;
};

}  // namespace

StepCommTime transformer_comm_time(const std::vector<CommOp>& ops, const Plan& plan, const ClusterSpec& cluster,
                                   const Calibration& cal, double p2p_hide_s, std::vector<CommLink>* links) {
  CommPricer price(plan, cluster, cal);
  StepCommTime c;
  for (const CommOp& op : ops) {
    const double t = price(op);
    switch (op.group) {
      case GroupKind::kTensor: c.tp += t; break;
      case GroupKind::kSequence:
        // LSS's per-step gradient average is data-parallel traffic, not a layer's.
        (op.collective == Collective::kAllReduce ? c.dp : c.seq) += t;
        break;
      case GroupKind::kExpert: c.ep += t; break;
      case GroupKind::kPipeline:
        // Megatron's --overlap-p2p-communication runs the transfer behind the compute issued
        // between its start and its wait; only what that compute cannot cover shows.
        c.p2p += op.overlappable ? std::max(0.0, t - p2p_hide_s) : t;
        break;
      case GroupKind::kData:
        // ZeRO-3's parameter gathers run inside the passes; the rest after the backward.
        (op.collective == Collective::kAllGather && op.phase != Phase::kOptimizer ? c.zero3 : c.dp) += t;
        break;
      default: break;
    }
  }
  if (links) *links = price.links();
  return c;
}

namespace {

// `kernel` is an op kind (workloads/op_kinds.h): the name its calibrated efficiency is under.
double op_time(const char* kernel, double flops, double bytes, DType dt, const ClusterSpec& c, const Calibration& cal) {
  return compute_time_s(KernelCost{flops, bytes, 0}, dt, c, cal.compute_efficiency(kernel));
}

// ---- transformer compute: one layer and the loss, per micro-batch on one rank -------------
struct LayerCompute {
  double t_fwd = 0;        // one layer's forward
  double t_layer = 0;      // its forward, backward (2x) and recompute
  double passes = 3.0;     // forward-equivalent passes a layer runs (3, or 4 with full recompute)
  double flops = 0;        // one layer's forward FLOPs: GEMMs and attention
  double t_logits = 0;     // the last stage's output GEMM (forward and backward) and cross entropy
  double logit_flops = 0;  // the output GEMM's forward FLOPs
};

LayerCompute transformer_compute(const TransformerSpec& t, const ClusterSpec& c, const Plan& p, const RunShape& shape,
                                 const Calibration& cal) {
  const double s = static_cast<double>(shape.seq), b = static_cast<double>(shape.micro_batch);
  const double h = static_cast<double>(t.hidden), a = static_cast<double>(t.heads), V = static_cast<double>(t.vocab);
  const double tp = p.tp, sd = p.seq_degree(), tu = tp * sd, ss = p.seq_shards();
  const double sbh = s * b * h;
  const DType dt = t.dtype;
  const double es = static_cast<double>(dtype_bytes(dt));

  const double gemm_flops = layer_gemm_flops(t, p, shape);
  const double gemm_bytes = es * (4.0 * sbh + 12.0 * h * h) / tu;  // activations in/out + weights
  const bool fused = p.attn == AttentionImpl::kFused;
  // Causal fused kernels skip the masked half of the s^2 work; materialized ones do it all.
  const double attn_flops = 4.0 * s * s * b * h / tu * (fused ? 0.5 : 1.0);
  const double attn_bytes = fused ? es * 4.0 * sbh / tu : es * 3.0 * a * s * s * b / tu;  // scores written, read by softmax
  const double softmax_bytes = fused ? 0.0 : es * 3.0 * a * s * s * b / tu;               // scale-mask-softmax + dropout
  const double elementwise_bytes = 30.0 * sbh / ss;                                       // LN, GeLU, dropout, residual
  const double t_gemm = op_time(op_kind::kGemm, gemm_flops, gemm_bytes, dt, c, cal);
  const double t_attn = op_time(fused ? op_kind::kCausalAttention : op_kind::kAttentionNaive, attn_flops, attn_bytes, dt, c, cal);
  const double t_softmax = softmax_bytes > 0 ? op_time(op_kind::kSoftmax, 0, softmax_bytes, dt, c, cal) : 0.0;
  const double t_elem = op_time(op_kind::kElementwise, 0, elementwise_bytes, dt, c, cal);

  LayerCompute lc;
  lc.t_fwd = t_gemm + t_attn + t_softmax + t_elem;
  lc.t_layer = 3.0 * lc.t_fwd;  // backward 2x forward
  if (p.recompute == Recompute::kFull) {
    lc.t_layer += lc.t_fwd;
    lc.passes += 1.0;
  } else if (p.recompute == Recompute::kSelective && !fused) {
    lc.t_layer += t_attn + t_softmax;
  }
  lc.flops = gemm_flops + attn_flops;
  lc.logit_flops = 2.0 * s * b * h * V / tu;
  lc.t_logits = 3.0 * op_time(op_kind::kGemm, lc.logit_flops, es * (s * b * V / tu + V * h / tp), dt, c, cal) +
                op_time(op_kind::kCrossEntropy, 0, kLogitBytesPerElement * s * b * V / tu, dt, c, cal);
  return lc;
}

// ---- optimizer step and host offload ------------------------------------------------------
struct OptimizerTime {
  double optimizer = 0, offload = 0;
};

// `fetch_window_s`: the compute that parameter fetches from the host overlap (only the
// excess is exposed).
OptimizerTime optimizer_time(const TransformerSpec& t, const ClusterSpec& c, const Plan& p, const RunShape& shape,
                             const Calibration& cal, double passes, double fetch_window_s) {
  const double tp = p.tp, m = static_cast<double>(micro_batches(p, shape));
  const double experts = moe_expert_params(t);
  const double stage_dense = (transformer_params(t, shape.seq) - experts) / (tp * p.pp);
  const double stage_experts = experts / (tp * p.pp * p.ep);
  const std::int64_t nd = p.zero_shards();
  // The states this rank updates: its ZeRO shard of the dense and of its experts' parameters.
  const double shard = stage_dense / static_cast<double>(p.zero >= 1 ? nd : 1) +
                       stage_experts / static_cast<double>(p.zero >= 1 ? nd / p.ep : 1);
  OptimizerTime o;
  if (p.offload_optimizer()) {
    o.optimizer = shard / c.host_adam_params_per_s;
    o.offload += (kGradBytes + kParamBytes) * shard / c.pcie_bytes_per_s;  // grads down, params up
  } else {
    o.optimizer = op_time(op_kind::kOptimizer, 0, 32.0 * shard, DType::kFp32, c, cal);
  }
  if (p.offload_params()) {
    const double fetch = m * passes * kParamBytes * shard / c.pcie_bytes_per_s;
    o.offload += std::max(0.0, fetch - fetch_window_s);
  }
  return o;
}

// ---- transformer step: the schedule composes compute, communication and the rest ------
void transformer_time(const TransformerSpec& t, const ClusterSpec& c, const Plan& p, const RunShape& shape,
                      const Calibration& cal, Estimate& e) {
  const LayerCompute lc = transformer_compute(t, c, p, shape, cal);
  const double layers_stage = static_cast<double>(t.layers) / p.pp;
  const double m = static_cast<double>(micro_batches(p, shape));
  const double chunks = p.schedule == PipeSchedule::kInterleaved ? p.vpp : 1.0;

  // Stage 0's ops (it always exists): per micro-batch one activation out and one gradient
  // in, both on the critical path; the program of another stage differs only in its
  // pipeline transfers. An overlappable transfer may hide behind one model chunk's forward.
  const StepCommTime comm = transformer_comm_time(transformer_step_comm(t, p, shape, 0), p, c, cal,
                                                  layers_stage / chunks * lc.t_fwd, &e.links);
  // The per-layer, per-micro-batch terms the schedule below composes (every layer and
  // micro-batch issues the same ops, so the division is exact).
  const double per_layer_mb = m * layers_stage;
  const double t_tp = comm.tp / per_layer_mb, t_seq = comm.seq / per_layer_mb, t_ep = comm.ep / per_layer_mb;
  const double t_mb_first = layers_stage * (lc.t_layer + t_tp + t_seq + t_ep);
  const double t_mb_last = t_mb_first + lc.t_logits;
  const double t_mb_compute = layers_stage * lc.t_layer + lc.t_logits * (p.pp == 1 ? 1.0 : 0.0);
  const double t_mb = std::max(t_mb_first, t_mb_last);
  const double t_p2p = comm.p2p / m;
  const OptimizerTime opt = optimizer_time(t, c, p, shape, cal, lc.passes, m * t_mb_compute);

  TimeBreakdown& tb = e.time;
  tb.compute = m * std::max(layers_stage * lc.t_layer + (p.pp == 1 ? lc.t_logits : 0.0),
                            t_mb_last - layers_stage * (t_tp + t_seq + t_ep));
  tb.tp_comm = m * layers_stage * t_tp;
  tb.seq_comm = m * layers_stage * t_seq;
  tb.ep_comm = m * layers_stage * t_ep;
  tb.pp_comm = m * t_p2p;
  // (p-1)/v micro-batch times (Narayanan et al. 2021).
  tb.bubble = (p.pp - 1.0) / chunks * (t_mb + t_p2p);
  // Gradient reduction overlaps the last micro-batch's backward (2/3 of its compute).
  tb.dp_comm = std::max(0.0, comm.dp - (2.0 / 3.0) * t_mb_compute);
  tb.zero3_comm = std::max(0.0, comm.zero3 - m * t_mb_compute);
  tb.optimizer = opt.optimizer;
  tb.offload = opt.offload;
  tb.step = tb.compute + tb.tp_comm + tb.seq_comm + tb.ep_comm + tb.pp_comm + tb.bubble + tb.dp_comm + tb.zero3_comm + tb.optimizer + tb.offload;

  const double s = static_cast<double>(shape.seq), gb = static_cast<double>(e.shape.global_batch);
  const double n = static_cast<double>(e.gpus);
  e.hw_flops_per_gpu = m * (layers_stage * (lc.passes * lc.flops) + (p.pp == 1 ? 3.0 * lc.logit_flops : 0.0));
  e.tokens_per_s = gb * s / tb.step;
  e.tflops_per_gpu = megatron_reported_flops(t, p, gb, s) / (n * tb.step) / 1e12;
  e.mfu = model_flops(t, gb, s) / (n * peak_flops(t.dtype, c) * tb.step);
}

void evoformer_time(const EvoformerSpec& ev, const ClusterSpec& c, const Plan& p, const RunShape& shape,
                    const Calibration& cal, Estimate& e) {
  const double n_res = static_cast<double>(shape.seq);
  const bool fused = p.attn == AttentionImpl::kFused;
  // Compute: the block programs the harness runs (layers/evoformer_block/evoformer_block_program.h: every
  // GEMM, LayerNorm, attention and elementwise op of a main and an extra-MSA block at this
  // crop), each op at its kernel's calibrated efficiency; DAP splits each block's work
  // over its ranks, per-block recompute runs the forward again.
  const double recompute_fwd = p.recompute == Recompute::kNone ? 0.0 : 1.0;
  auto block_time = [&](EvoformerBlockDims d) {
    d.n_res = shape.seq;
    if (d.n_seq <= 0 || d.c_m <= 0) return 0.0;
    double fwd = 0, bwd = 0;
    for (const StepOp& op : evoformer_block_program_cached(d, ev.dtype, fused).ops) {
      if (const auto* op_c = std::get_if<ComputeOp>(&op)) {
        ComputeOp share = *op_c;  // this rank's 1/dap of the op, priced as such
        share.cost.flops /= p.dap;
        share.cost.bytes /= p.dap;
        (op_c->phase == Phase::kForward ? fwd : bwd) += compute_time_s(share, c, cal);
      }
    }
    return (1.0 + recompute_fwd) * fwd + bwd;
  };
  const double t_main = block_time(EvoformerBlockDims::from_spec(ev));
  const double t_extra = ev.extra_blocks > 0 ? block_time(EvoformerBlockDims::extra_msa_from_spec(ev)) : 0.0;
  // Communication: the ops of model/comm_volume.h (evoformer_step_comm, the volumes the
  // dap strategy is measured against), priced one distinct op at a time. FastFold's
  // "duality async" hides the overlappable all-to-alls behind the pair stack about half.
  CommPricer price(p, c, cal);
  double dap_total = 0, dp_total = 0;
  for (const CommOp& op : evoformer_step_comm(ev, p, shape)) {
    const double t = price(op);
    if (op.group == GroupKind::kSequence) {
      dap_total += (op.overlappable ? 0.5 : 1.0) * t;
    } else {
      dp_total += t;
    }
  }
  e.links = price.links();
  const double blocks = static_cast<double>(ev.blocks), extra = static_cast<double>(ev.extra_blocks);
  const double m = static_cast<double>(micro_batches(p, shape));
  e.time.compute = m * (blocks * t_main + extra * t_extra);
  e.time.seq_comm = dap_total;  // already per step: the ops repeat per block and micro-batch
  const double params = evoformer_params(ev);
  e.time.dp_comm = dp_total;
  e.time.optimizer = op_time(op_kind::kOptimizer, 0, 32.0 * params, DType::kFp32, c, cal);
  e.time.step = e.time.compute + e.time.seq_comm + e.time.dp_comm + e.time.optimizer;
  e.tokens_per_s = static_cast<double>(e.shape.global_batch) * n_res / e.time.step;
  e.tflops_per_gpu = 0;
  e.mfu = 0;
}

}  // namespace

Estimate estimate(const ModelSpec& model, const ClusterSpec& cluster, Plan plan, std::int64_t gpus,
                  const RunShape& shape_in, const Calibration& cal) {
  RunShape shape = shape_in;
  if (model.is_evoformer() && shape.seq == 0) shape.seq = model.evoformer().n_res;
  validate_plan(plan, model, gpus, shape);
  if (shape.global_batch == 0) shape.global_batch = static_cast<std::int64_t>(plan.dp) * shape.micro_batch * plan.pp;
  Estimate e;
  e.plan = plan;
  e.shape = shape;
  e.gpus = gpus;
  e.memory = estimate_memory(model, cluster, plan, shape);
  e.device_capacity_bytes = static_cast<double>(cluster.gpu_memory_bytes);
  e.fits = memory_fits(e.memory, cluster);
  if (!e.fits) {
    e.why_not = "device memory: peak " + std::to_string(e.memory.peak() / 1e9) + " GB > " +
                std::to_string(e.device_capacity_bytes / 1e9) + " GB";
  }
  const double host_per_node = e.memory.host_bytes * static_cast<double>(std::min<std::int64_t>(gpus, cluster.gpus_per_node));
  if (e.fits && host_per_node > static_cast<double>(cluster.host_memory_bytes_per_node)) {
    e.fits = false;
    e.why_not = "host memory: offloaded states need " + std::to_string(host_per_node / 1e9) + " GB per node";
  }
  if (model.is_transformer()) transformer_time(model.transformer(), cluster, plan, shape, cal, e);
  else evoformer_time(model.evoformer(), cluster, plan, shape, cal, e);
  return e;
}

nlohmann::json to_json(const Estimate& e, const ModelSpec& model, const ClusterSpec& cluster) {
  nlohmann::json j;
  j["model"] = model.name;
  j["cluster"] = cluster.name;
  j["gpus"] = e.gpus;
  j["plan"] = plan_to_string(e.plan);
  j["seq"] = e.shape.seq;
  j["micro_batch"] = e.shape.micro_batch;
  j["global_batch"] = e.shape.global_batch;
  j["fits"] = e.fits;
  if (!e.fits) j["why_not"] = e.why_not;
  nlohmann::json mem;
  mem["peak_bytes"] = e.memory.peak();
  mem["capacity_bytes"] = e.device_capacity_bytes;
  mem["host_bytes_per_rank"] = e.memory.host_bytes;
  mem["binding"] = mem_term_name(e.memory.binding());
  mem["binding_stage"] = e.memory.stage;
  nlohmann::json br = nlohmann::json::object();
  for (int i = 0; i < static_cast<int>(MemTerm::kCount); ++i) br[std::string(mem_term_name(static_cast<MemTerm>(i)))] = e.memory.bytes[i];
  mem["breakdown"] = br;
  j["memory"] = mem;
  const TimeBreakdown& t = e.time;
  j["time"] = {{"step_s", t.step},
               {"breakdown",
                {{"compute", t.compute}, {"tp_comm", t.tp_comm}, {"seq_comm", t.seq_comm}, {"ep_comm", t.ep_comm}, {"pp_comm", t.pp_comm},
                 {"pipeline_bubble", t.bubble}, {"dp_comm_exposed", t.dp_comm}, {"zero3_comm_exposed", t.zero3_comm},
                 {"optimizer", t.optimizer}, {"offload", t.offload}}}};
  nlohmann::json links = nlohmann::json::array();
  for (const CommLink& l : e.links) {
    links.push_back({{"group", group_name(l.group)}, {"ranks", l.group_size}, {"link", tier_name(l.tier)},
                     {"ranks_per_node", l.ranks_per_node}});
  }
  j["time"]["links"] = links;
  j["throughput"] = {{"tokens_per_s", e.tokens_per_s}, {"tflops_per_gpu", e.tflops_per_gpu}};
  j["mfu"] = e.mfu;
  return j;
}

}  // namespace seqscale
