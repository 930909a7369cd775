#include "workloads/plan.h"

#include <charconv>
#include <vector>

#include "workloads/config_error.h"

namespace seqscale {

namespace {

[[noreturn]] void plan_error(std::string_view key, const std::string& message) {
  throw ConfigError("--plan: key '" + std::string(key) + "' " + message);
}

std::int32_t parse_int(std::string_view key, std::string_view value, std::int32_t min, std::int32_t max) {
  std::int32_t v = 0;
  const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (ec != std::errc() || ptr != value.data() + value.size()) {
    plan_error(key, "is '" + std::string(value) + "', must be an integer");
  }
  if (v < min || v > max) {
    plan_error(key, "is " + std::to_string(v) + ", must be in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  }
  return v;
}

template <typename E>
E parse_enum(std::string_view key, std::string_view value,
             std::initializer_list<std::pair<std::string_view, E>> choices) {
  std::string names;
  for (const auto& [name, e] : choices) {
    if (name == value) return e;
    names += (names.empty() ? "" : ", ") + std::string(name);
  }
  plan_error(key, "is '" + std::string(value) + "', must be one of: " + names);
}

}  // namespace

std::string_view sp_name(SeqParallel v) {
  switch (v) {
    case SeqParallel::kNone: return "none";
    case SeqParallel::kMegatron: return "megatron";
    case SeqParallel::kUlysses: return "ulysses";
    case SeqParallel::kLss: return "lss";
  }
  return "?";
}
std::string_view recompute_name(Recompute v) {
  switch (v) {
    case Recompute::kNone: return "none";
    case Recompute::kSelective: return "selective";
    case Recompute::kFull: return "full";
  }
  return "?";
}
std::string_view attn_name(AttentionImpl v) { return v == AttentionImpl::kFused ? "fused" : "materialized"; }
std::string_view mask_name(MaskKind v) {
  switch (v) {
    case MaskKind::kNone: return "none";
    case MaskKind::kBool: return "bool";
    case MaskKind::kFp32: return "fp32";
  }
  return "?";
}
std::string_view offload_name(Offload v) {
  switch (v) {
    case Offload::kNone: return "none";
    case Offload::kOptimizer: return "optimizer";
    case Offload::kParams: return "params";
    case Offload::kAll: return "all";
  }
  return "?";
}
std::string_view schedule_name(PipeSchedule v) { return v == PipeSchedule::k1F1B ? "1f1b" : "interleaved"; }
std::string_view pos_name(PosTable v) { return v == PosTable::kPartitioned ? "partitioned" : "replicated"; }

Plan parse_plan(std::string_view text) {
  Plan p;
  bool sp_degree_set = false;
  std::vector<std::string> seen;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find(',', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view item = text.substr(start, end - start);
    start = end + 1;
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item.empty()) {
      if (end == text.size()) break;
      continue;
    }
    const std::size_t eq = item.find('=');
    if (eq == std::string_view::npos) plan_error(item, "has no value (write key=value)");
    const std::string_view key = item.substr(0, eq);
    const std::string_view value = item.substr(eq + 1);
    for (const auto& s : seen) {
      if (s == key) plan_error(key, "is given twice");
    }
    seen.emplace_back(key);
    if (key == "tp") p.tp = parse_int(key, value, 1, 4096);
    else if (key == "pp") p.pp = parse_int(key, value, 1, 4096);
    else if (key == "dp") p.dp = parse_int(key, value, 1, 1 << 20);
    else if (key == "vpp") p.vpp = parse_int(key, value, 1, 64);
    else if (key == "dap") p.dap = parse_int(key, value, 1, 4096);
    else if (key == "ep") p.ep = parse_int(key, value, 1, 1 << 16);
    else if (key == "sp_degree") { p.sp_degree = parse_int(key, value, 1, 4096); sp_degree_set = true; }
    else if (key == "zero") p.zero = parse_int(key, value, 0, 3);
    else if (key == "sp") {
      p.sp = parse_enum<SeqParallel>(key, value, {{"none", SeqParallel::kNone}, {"megatron", SeqParallel::kMegatron},
                                                  {"ulysses", SeqParallel::kUlysses}, {"lss", SeqParallel::kLss}});
    } else if (key == "recompute") {
      p.recompute = parse_enum<Recompute>(key, value, {{"none", Recompute::kNone}, {"selective", Recompute::kSelective},
                                                       {"full", Recompute::kFull}});
    } else if (key == "attn") {
      p.attn = parse_enum<AttentionImpl>(key, value, {{"fused", AttentionImpl::kFused}, {"flash", AttentionImpl::kFused},
                                                      {"materialized", AttentionImpl::kMaterialized},
                                                      {"naive", AttentionImpl::kMaterialized}});
    } else if (key == "mask") {
      p.mask = parse_enum<MaskKind>(key, value, {{"none", MaskKind::kNone}, {"bool", MaskKind::kBool}, {"fp32", MaskKind::kFp32}});
    } else if (key == "offload") {
      p.offload = parse_enum<Offload>(key, value, {{"none", Offload::kNone}, {"optimizer", Offload::kOptimizer},
                                                   {"params", Offload::kParams}, {"all", Offload::kAll}});
    } else if (key == "schedule") {
      p.schedule = parse_enum<PipeSchedule>(key, value, {{"1f1b", PipeSchedule::k1F1B}, {"interleaved", PipeSchedule::kInterleaved}});
    } else if (key == "p2p_overlap") {
      p.p2p_overlap = parse_int(key, value, 0, 1) == 1;
    } else if (key == "ckpt") {
      p.ckpt_partitioned = parse_enum<bool>(key, value, {{"local", false}, {"partitioned", true}});
    } else if (key == "pos") {
      p.pos = parse_enum<PosTable>(key, value, {{"partitioned", PosTable::kPartitioned}, {"replicated", PosTable::kReplicated}});
    } else {
      plan_error(key, "is unknown (known: tp, pp, dp, vpp, schedule, p2p_overlap, sp, sp_degree, dap, ep, zero, recompute, attn, mask, offload, pos, ckpt)");
    }
  }
  const bool own_group = p.sp == SeqParallel::kUlysses || p.sp == SeqParallel::kLss;
  if (own_group && !sp_degree_set) p.sp_degree = 0;  // derive from the GPU count
  if (!own_group && sp_degree_set && p.sp_degree != 1) {
    plan_error("sp_degree", "needs sp=ulysses or sp=lss (Megatron sequence parallelism uses the tp group)");
  }
  return p;
}

std::string plan_to_string(const Plan& p) {
  std::string s = "tp=" + std::to_string(p.tp) + ",pp=" + std::to_string(p.pp) + ",dp=" + std::to_string(p.dp);
  if (p.pp > 1) {
    s += ",schedule=" + std::string(schedule_name(p.schedule));
    if (p.schedule == PipeSchedule::kInterleaved) s += ",vpp=" + std::to_string(p.vpp);
    if (p.p2p_overlap) s += ",p2p_overlap=1";
  }
  s += ",sp=" + std::string(sp_name(p.sp));
  if (p.sp == SeqParallel::kUlysses || p.sp == SeqParallel::kLss) s += ",sp_degree=" + std::to_string(p.sp_degree);
  if (p.dap > 1) s += ",dap=" + std::to_string(p.dap);
  if (p.ep > 1) s += ",ep=" + std::to_string(p.ep);
  s += ",zero=" + std::to_string(p.zero) + ",recompute=" + std::string(recompute_name(p.recompute)) +
       ",attn=" + std::string(attn_name(p.attn)) + ",mask=" + std::string(mask_name(p.mask)) +
       ",offload=" + std::string(offload_name(p.offload)) + ",pos=" + std::string(pos_name(p.pos));
  if (p.ckpt_partitioned) s += ",ckpt=partitioned";
  return s;
}

std::int64_t micro_batches(const Plan& plan, const RunShape& shape) {
  const std::int64_t replicas = static_cast<std::int64_t>(plan.dp) * shape.micro_batch;
  const std::int64_t global = shape.global_batch > 0 ? shape.global_batch : replicas * plan.pp;
  return replicas > 0 ? global / replicas : 0;
}

std::string check_plan(Plan& p, const ModelSpec& model, std::int64_t gpus, const RunShape& shape) {
  if (gpus <= 0) return "gpus must be positive";
  if (shape.seq <= 0) return "sequence length must be positive";
  if (shape.micro_batch <= 0) return "micro-batch must be positive";
  const std::int64_t fixed = static_cast<std::int64_t>(p.tp) * p.pp * p.dap;
  if ((p.sp == SeqParallel::kUlysses || p.sp == SeqParallel::kLss) && p.sp_degree == 0) {
    // Derive the Ulysses / LSS degree: all GPUs not used by tp/pp/dap/dp.
    const std::int64_t dp = p.dp > 0 ? p.dp : 1;
    if (gpus % (fixed * dp) != 0) return "tp*pp*dp (" + std::to_string(fixed * dp) + ") must divide the GPU count " + std::to_string(gpus);
    p.sp_degree = static_cast<std::int32_t>(gpus / (fixed * dp));
    p.dp = static_cast<std::int32_t>(dp);
  }
  const std::int64_t model_par = fixed * p.seq_degree();
  if (p.dp == 0) {
    if (gpus % model_par != 0) {
      return "tp*pp*sp_degree*dap = " + std::to_string(model_par) + " does not divide the GPU count " + std::to_string(gpus);
    }
    p.dp = static_cast<std::int32_t>(gpus / model_par);
  }
  if (model_par * p.dp != gpus) {
    return "tp*pp*dp*sp_degree*dap = " + std::to_string(model_par * p.dp) + ", must equal the GPU count " + std::to_string(gpus);
  }
  if (p.dp % p.ep != 0) return "ep=" + std::to_string(p.ep) + " must divide dp=" + std::to_string(p.dp);
  if (p.zero == 3 && p.pp > 1) return "zero=3 cannot be combined with pipeline parallelism (pp>1)";
  if (p.offload_params() && p.zero != 3) return "offload=params/all needs zero=3 (ZeRO-Infinity)";
  if (p.offload_optimizer() && p.zero == 0) return "offload=optimizer needs zero>=1 (ZeRO-Offload)";
  if (p.schedule == PipeSchedule::kInterleaved && p.pp == 1) return "schedule=interleaved needs pp>1";
  if (p.ckpt_partitioned && (p.recompute != Recompute::kFull || p.tp == 1 || p.sp == SeqParallel::kMegatron)) {
    return "ckpt=partitioned needs recompute=full, tp>1 and no Megatron-SP (which already shards the checkpoints)";
  }
  if (p.schedule == PipeSchedule::k1F1B && p.vpp != 1) return "vpp>1 needs schedule=interleaved";
  if (p.p2p_overlap && p.schedule != PipeSchedule::kInterleaved) {
    return "p2p_overlap=1 needs schedule=interleaved (Megatron overlaps only the interleaved schedule's transfers)";
  }
  if (micro_batches(p, shape) < 1) return "global batch is smaller than dp*micro-batch";
  if (p.schedule == PipeSchedule::kInterleaved && micro_batches(p, shape) % p.pp != 0) {
    return "schedule=interleaved needs the number of micro-batches to be a multiple of pp (Megatron)";
  }
  if (shape.global_batch > 0 && shape.global_batch % (static_cast<std::int64_t>(p.dp) * shape.micro_batch) != 0) {
    return "global batch " + std::to_string(shape.global_batch) + " is not a multiple of dp*micro-batch";
  }
  if (model.is_transformer()) {
    const TransformerSpec& t = model.transformer();
    if (p.dap != 1) return "dap applies to Evoformer models only";
    if (t.heads % p.tp != 0) return "heads (" + std::to_string(t.heads) + ") not divisible by tp=" + std::to_string(p.tp);
    if (t.ffn_hidden % p.tp != 0) return "ffn_hidden not divisible by tp=" + std::to_string(p.tp);
    if (t.kv_heads % p.tp != 0 && p.tp % t.kv_heads != 0) return "kv_heads and tp are incompatible";
    if (t.layers % (static_cast<std::int64_t>(p.pp) * p.vpp) != 0) {
      return "layers (" + std::to_string(t.layers) + ") not divisible by pp*vpp=" + std::to_string(p.pp * p.vpp);
    }
    if (p.sp == SeqParallel::kMegatron && p.tp == 1) return "sp=megatron needs tp>1";
    if (p.ep > 1 && !t.is_moe()) return "ep applies to mixture-of-experts models only (the model has no \"moe\")";
    if (t.is_moe() && t.moe_experts % p.ep != 0) {
      return "ep=" + std::to_string(p.ep) + " does not divide the " + std::to_string(t.moe_experts) + " experts";
    }
    if (t.is_moe() && (t.layers / p.pp) % t.moe_every != 0) {
      return "layers per stage (" + std::to_string(t.layers / p.pp) + ") not divisible by moe every=" +
             std::to_string(t.moe_every);
    }
    if (p.sp == SeqParallel::kUlysses && t.heads % (static_cast<std::int64_t>(p.tp) * p.sp_degree) != 0) {
      return "heads (" + std::to_string(t.heads) + ") not divisible by tp*sp_degree=" + std::to_string(p.tp * p.sp_degree);
    }
    if (shape.seq % p.seq_shards() != 0) {
      return "sequence " + std::to_string(shape.seq) + " not divisible by the " + std::to_string(p.seq_shards()) +
             " sequence-parallel ranks";
    }
    if (p.mask == MaskKind::kNone && p.attn == AttentionImpl::kMaterialized) {
      // Fine: the materialized path can mask inside the fused upper-triangular softmax.
    }
  } else {
    const EvoformerSpec& e = model.evoformer();
    if (p.tp != 1 || p.pp != 1 || p.sp != SeqParallel::kNone || p.ep != 1) {
      return "Evoformer plans split with dap (and dp/zero), not tp/pp/sp/ep";
    }
    if (shape.seq % p.dap != 0 || e.n_seq % p.dap != 0) return "dap must divide N_res and N_seq";
    if (e.n_extra % p.dap != 0) return "dap must divide N_extra";
  }
  return {};
}

void validate_plan(Plan& plan, const ModelSpec& model, std::int64_t gpus, const RunShape& shape) {
  const std::string why = check_plan(plan, model, gpus, shape);
  if (!why.empty()) throw ConfigError("--plan: " + why);
}

}  // namespace seqscale
