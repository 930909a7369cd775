// Backend-independent parts of the Communicator: names, byte counters (wire bytes by
// workloads/collective_sizes.h's busbw_factor) and the context string every error message carries.
#include "comm/communicator.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "comm/str_cat.h"
#include "workloads/config_error.h"

namespace seqscale::comm {

std::string_view reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return "sum";
    case ReduceOp::kProd: return "prod";
    case ReduceOp::kMax: return "max";
    case ReduceOp::kMin: return "min";
    case ReduceOp::kAvg: return "avg";
  }
  return "?";
}

bool parse_reduce_op(std::string_view name, ReduceOp* out) {
  for (auto op : {ReduceOp::kSum, ReduceOp::kProd, ReduceOp::kMax, ReduceOp::kMin, ReduceOp::kAvg}) {
    if (reduce_op_name(op) == name) {
      *out = op;
      return true;
    }
  }
  return false;
}

CommOptions options_from_env(CommOptions base) {
  // Strict: a typo must not fall back to the 300 s default silently (a hung NCCL op would
  // then hold the GPU for five minutes). Unset or empty keeps `base`.
  const char* s = std::getenv("SEQSCALE_COMM_TIMEOUT_S");
  if (!s || !*s) return base;
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s, &end);
  if (end == s || *end != '\0' || errno == ERANGE || !std::isfinite(v) || v <= 0)
    throw ConfigError(str_cat({"SEQSCALE_COMM_TIMEOUT_S is '", s, "', must be a positive number of seconds"}));
  base.timeout_s = v;
  return base;
}

void wait_all(std::vector<WorkPtr>& works) {
  for (auto& w : works) {
    if (w) w->wait();
  }
  works.clear();
}

std::string OpContext::describe() const {
  return str_cat({collective, " on group ", group_name(group), " (world rank ", std::to_string(world_rank), "/",
                  std::to_string(world_size), ", group rank ", std::to_string(group_rank), "/",
                  std::to_string(group_size), ", ", std::to_string(bytes), " B)"});
}

void Communicator::count(GroupKind g, Collective c, std::int64_t size_bytes) {
  auto& s = stats_[group_index(g)];
  s.calls += 1;
  s.bytes += size_bytes;
  s.bytes_by_collective[static_cast<int>(c)] += size_bytes;
  s.wire_bytes += static_cast<std::int64_t>(static_cast<double>(size_bytes) * busbw_factor(c, group_size(g)));
  if (recorded_ && group_size(g) > 1) {
    CommOp op;
    op.collective = c;
    op.group = g;
    op.group_size = group_size(g);
    op.bytes = size_bytes;
    op.phase = phase_;
    recorded_->push_back(op);
  }
}

OpContext Communicator::context(std::string_view collective, GroupKind g, std::int64_t bytes) const {
  return OpContext{collective, g, rank(), size(), group_rank(g), group_size(g), bytes};
}

std::int64_t bytes_since(const std::array<CommStats, kNumGroupKinds>& before, const Communicator& c, GroupKind g) {
  return c.stats(g).bytes - before[group_index(g)].bytes;
}

}  // namespace seqscale::comm
