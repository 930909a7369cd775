// The one helper header of the measured-vs-model invariants (tests/consistency/, and the
// model and strategy tests that compare the emitters' ops): a tiny transformer to hand
// the emitters and the model, CommOps out of a StepProgram, ops compared the way
// run_checked compares them, and byte totals by (group, phase, collective).
#pragma once
#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include "comm/strategies/strategy.h"
#include "workloads/collective_sizes.h"
#include "workloads/specs.h"
#include "workloads/step_program.h"

namespace seqscale::consistency {

// hidden h, heads, FFN 2h, vocab 64, fp32, `layers` layers.
inline TransformerSpec tiny_transformer(std::int64_t hidden, std::int64_t heads, std::int64_t layers = 1) {
  TransformerSpec t;
  t.layers = layers;
  t.hidden = hidden;
  t.heads = heads;
  t.kv_heads = heads;
  t.ffn_hidden = 2 * hidden;
  t.vocab = 64;
  t.dtype = DType::kFp32;
  return t;
}

inline std::vector<CommOp> comm_ops(const StepProgram& p) {
  std::vector<CommOp> out;
  for (const auto& op : p.ops)
    if (const auto* c = std::get_if<CommOp>(&op)) out.push_back(*c);
  return out;
}

template <typename Pred>
std::vector<CommOp> only(const std::vector<CommOp>& ops, Pred keep) {
  std::vector<CommOp> out;
  for (const CommOp& o : ops)
    if (keep(o)) out.push_back(o);
  return out;
}

// "" when a and b list the same ops (collective, group, group size, bytes, phase) in the
// same order, else the first difference, as run_checked words it.
inline std::string first_difference(const std::vector<CommOp>& a, const std::vector<CommOp>& b) {
  auto same = [](const CommOp& x, const CommOp& y) {
    return x.collective == y.collective && x.group == y.group && x.group_size == y.group_size && x.bytes == y.bytes &&
           x.phase == y.phase;
  };
  for (std::size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    if (i < a.size() && i < b.size() && same(a[i], b[i])) continue;
    auto at = [i](const std::vector<CommOp>& ops) {
      return i < ops.size() ? comm::describe(ops[i]) : "no op (" + std::to_string(ops.size()) + " in all)";
    };
    return "op " + std::to_string(i) + ": " + at(a) + " vs " + at(b);
  }
  return "";
}

// Bytes per (group, phase, collective): a step's volume, order aside.
using Key = std::tuple<GroupKind, Phase, Collective>;
inline std::map<Key, std::int64_t> by_key(const std::vector<CommOp>& ops) {
  std::map<Key, std::int64_t> m;
  for (const CommOp& o : ops) m[{o.group, o.phase, o.collective}] += o.bytes;
  return m;
}

// What crosses each link: bytes x the nccl-tests bus-bandwidth factor
// (workloads/collective_sizes.h), summed.
inline double link_bytes(const std::vector<CommOp>& ops) {
  double b = 0;
  for (const CommOp& o : ops) b += static_cast<double>(o.bytes) * busbw_factor(o.collective, o.group_size);
  return b;
}

}  // namespace seqscale::consistency
