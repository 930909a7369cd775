#include "model/comm_volume.h"

#include "model/memory.h"
#include "workloads/parallel/dap_comm.h"
#include "workloads/parallel/data_parallel_comm.h"
#include "workloads/parallel/lss_comm.h"
#include "workloads/parallel/pipeline_comm.h"
#include "workloads/parallel/tensor_parallel_comm.h"
#include "workloads/parallel/ulysses_comm.h"
#include "workloads/parallel/vocab_parallel_comm.h"

namespace seqscale {

namespace {

ReplicatedStates states(double params, std::int64_t ranks) {
  return ReplicatedStates{params, static_cast<std::int32_t>(ranks), kParamBytes, kGradBytes};
}

// One rank's step of a transformer: the passes of its pipeline schedule, then the
// per-step reductions (see the header).
class TransformerStep {
 public:
  TransformerStep(const TransformerSpec& t, const Plan& p, const RunShape& shape, std::int32_t stage)
      : t_(t), p_(p), shape_(shape), stage_(stage), moe_(moe_shape(t, p, shape)) {
    const double tp = p.tp, experts = moe_expert_params(t);
    dense_ = states((transformer_params(t, shape.seq) - experts) / (tp * p.pp), p.zero_shards());
    experts_ = states(experts / (tp * p.pp * p.ep), p.zero_shards() / p.ep);  // this rank's experts
    layers_chunk_ = t.layers / p.pp / pipeline_chunks(p);
  }

  std::vector<CommOp> ops() {
    const int m = static_cast<int>(micro_batches(p_, shape_));
    for_each_pipeline_slot(p_.pp, stage_, m, pipeline_chunks(p_), [&](const PipelineSlot& s) {
      if (s.forward) forward(s.chunk);
      else backward(s.chunk);
    });
    per_step();
    return std::move(ops_);
  }

 private:
  void forward(int chunk) {
    const VirtualStage vs = virtual_stage(p_, stage_, chunk);
    zero3_gathers(Phase::kForward);
    if (vs.first()) vocab_embedding(ops_, t_, p_, shape_, Phase::kForward);
    pipeline_pass_open(ops_, t_, p_, shape_, vs, Phase::kForward);
    for (std::int64_t l = 0; l < layers_chunk_; ++l) layer(Phase::kForward, chunk * layers_chunk_ + l);
    if (vs.last()) vocab_loss(ops_, t_, p_, shape_, Phase::kForward);
    pipeline_pass_close(ops_, t_, p_, shape_, vs, Phase::kForward);
  }

  void backward(int chunk) {
    const VirtualStage vs = virtual_stage(p_, stage_, chunk);
    const bool recompute = p_.recompute == Recompute::kFull;
    zero3_gathers(Phase::kBackward);
    if (recompute) zero3_gathers(Phase::kRecompute);
    if (vs.last()) vocab_loss(ops_, t_, p_, shape_, Phase::kBackward);
    pipeline_pass_open(ops_, t_, p_, shape_, vs, Phase::kBackward);
    for (std::int64_t l = layers_chunk_ - 1; l >= 0; --l) {
      partitioned_checkpoint_gather(ops_, t_, p_, shape_);
      if (recompute) layer(Phase::kRecompute, chunk * layers_chunk_ + l);
      layer(Phase::kBackward, chunk * layers_chunk_ + l);
    }
    if (vs.first()) vocab_embedding(ops_, t_, p_, shape_, Phase::kBackward);
    pipeline_pass_close(ops_, t_, p_, shape_, vs, Phase::kBackward);
  }

  // One pass of layer `local_layer` of the stage: its two tensor-parallel blocks,
  // attention then MLP (backward: MLP then attention).
  void layer(Phase ph, std::int64_t local_layer) {
    auto attention = [&] {
      tensor_parallel_block(ops_, t_, p_, shape_, ph, [&] {
        ulysses_attention(ops_, t_, p_, shape_, ph);
        lss_attention(ops_, t_, p_, shape_, ph);
      });
    };
    auto mlp = [&] {
      tensor_parallel_block(ops_, t_, p_, shape_, ph, [&] {
        if (is_moe_layer(t_, local_layer)) moe_dispatch_combine(ops_, moe_, ph);
      });
    };
    if (ph == Phase::kBackward) {
      mlp();
      attention();
    } else {
      attention();
      mlp();
    }
  }

  void zero3_gathers(Phase ph) {
    zero3_param_gather(ops_, dense_, p_.zero, ph);
    zero3_param_gather(ops_, experts_, p_.zero, ph);
  }

  void per_step() {
    const double h = static_cast<double>(t_.hidden);
    const double layers_stage = static_cast<double>(t_.layers / p_.pp);
    sequence_parallel_grads(ops_, p_, 6.0 * h * layers_stage + (stage_ == p_.pp - 1 ? 2.0 * h : 0.0), kGradBytes);
    lss_grad_average(ops_, p_, kGradBytes * (dense_.params + experts_.params));
    data_parallel_grads(ops_, dense_, p_.zero);
    if (experts_.params > 0) data_parallel_grads(ops_, experts_, p_.zero);
  }

  const TransformerSpec& t_;
  const Plan& p_;
  const RunShape& shape_;
  const std::int32_t stage_;
  const MoeShape moe_;
  ReplicatedStates dense_, experts_;
  std::int64_t layers_chunk_ = 0;
  CommOps ops_;
};

}  // namespace

std::vector<CommOp> transformer_step_comm(const TransformerSpec& t, const Plan& p, const RunShape& shape,
                                          std::int32_t stage) {
  return TransformerStep(t, p, shape, stage).ops();
}

std::vector<CommOp> evoformer_step_comm(const EvoformerSpec& e, const Plan& p, const RunShape& shape) {
  CommOps ops;
  const ReplicatedStates weights = states(evoformer_params(e), p.zero_shards());
  const bool recompute = p.recompute != Recompute::kNone;  // per-block checkpoints
  auto stack_forward = [&](EvoformerStack stack, std::int64_t blocks) {
    for (std::int64_t i = 0; i < blocks; ++i) dap_block(ops, e, p, shape, stack, Phase::kForward);
  };
  auto stack_backward = [&](EvoformerStack stack, std::int64_t blocks) {
    for (std::int64_t i = 0; i < blocks; ++i) {
      if (recompute) dap_block(ops, e, p, shape, stack, Phase::kRecompute);
      dap_block(ops, e, p, shape, stack, Phase::kBackward);
    }
  };
  for (std::int64_t mb = 0; mb < micro_batches(p, shape); ++mb) {
    zero3_param_gather(ops, weights, p.zero, Phase::kForward);
    stack_forward(EvoformerStack::kExtraMsa, e.extra_blocks);
    if (e.extra_blocks > 0) dap_stack_exit(ops, e, p, shape, EvoformerStack::kExtraMsa);
    stack_forward(EvoformerStack::kMain, e.blocks);
    dap_stack_exit(ops, e, p, shape, EvoformerStack::kMain);
    zero3_param_gather(ops, weights, p.zero, Phase::kBackward);
    if (recompute) zero3_param_gather(ops, weights, p.zero, Phase::kRecompute);
    stack_backward(EvoformerStack::kMain, e.blocks);
    stack_backward(EvoformerStack::kExtraMsa, e.extra_blocks);
  }
  dap_weight_grads(ops, p, kGradBytes * weights.params);
  data_parallel_grads(ops, weights, p.zero);
  return ops;
}

}  // namespace seqscale
