#include "harness/bench/registry.h"

#include <sstream>

#include "workloads/config_error.h"

namespace seqscale {
namespace {
std::vector<BenchDef>& registry() {
  static std::vector<BenchDef> all;
  return all;
}

std::vector<void (*)()>& bench_sources() {
  static std::vector<void (*)()> all;
  return all;
}

// Runs every bench source once, on the first lookup: by then static initialisation is
// over, so the registries a source reads (the collective specs) are complete whatever the
// link order of their translation units.
std::vector<BenchDef>& expanded_registry() {
  static bool expanded = false;
  if (!expanded) {
    expanded = true;
    for (auto* add : bench_sources()) add();
  }
  return registry();
}

const nlohmann::json& param(const nlohmann::json& params, const std::string& name) {
  auto it = params.find(name);
  if (it == params.end()) throw ConfigError("benchmark parameter '" + name + "' is missing");
  return *it;
}
}  // namespace

std::string_view backend_name(Backend b) { return b == Backend::kCpu ? "cpu" : "cuda"; }

std::int64_t BenchState::get_int(const std::string& name) const {
  const auto& v = param(params_, name);
  if (!v.is_number_integer()) throw ConfigError("benchmark parameter '" + name + "' must be an integer");
  return v.get<std::int64_t>();
}

double BenchState::get_float(const std::string& name) const {
  const auto& v = param(params_, name);
  if (!v.is_number()) throw ConfigError("benchmark parameter '" + name + "' must be a number");
  return v.get<double>();
}

std::string BenchState::get_string(const std::string& name) const {
  const auto& v = param(params_, name);
  if (!v.is_string()) throw ConfigError("benchmark parameter '" + name + "' must be a string");
  return v.get<std::string>();
}

DType BenchState::get_dtype(const std::string& name) const {
  const std::string s = get_string(name);
  DType t;
  if (!parse_dtype(s, &t)) throw ConfigError("benchmark parameter '" + name + "' is '" + s + "', not a dtype");
  return t;
}

void BenchState::check(const std::function<void(void*)>& fn, const std::function<CheckResult()>& compare) {
  if (!checks()) return;
  if (check_) throw std::logic_error("BenchState::check called twice for one point");
  run_once(fn);
  check_ = compare();
  if (!check_->ok) {
    std::ostringstream os;
    os << "check failed: " << check_->worst << "; max_abs_err " << check_->max_abs_err << ", tolerance "
       << check_->tolerance.describe();
    throw CheckFailed(os.str());
  }
}

std::vector<float> BenchState::read_rows(const void* p, const std::vector<std::int64_t>& rows, std::int64_t row_elems,
                                         DType dtype) {
  std::vector<float> out;
  out.reserve(rows.size() * static_cast<std::size_t>(row_elems));
  const auto* base = static_cast<const unsigned char*>(p);
  const std::int64_t row_bytes = row_elems * dtype_bytes(dtype);
  bool contiguous = true;
  for (std::size_t i = 0; i < rows.size(); ++i) contiguous = contiguous && rows[i] == static_cast<std::int64_t>(i);
  if (contiguous) {
    for (double v : read_back(p, static_cast<std::int64_t>(rows.size()) * row_elems, dtype)) out.push_back(static_cast<float>(v));
    return out;
  }
  for (std::int64_t r : rows) {
    for (double v : read_back(base + r * row_bytes, row_elems, dtype)) out.push_back(static_cast<float>(v));
  }
  return out;
}

bool register_bench(BenchDef def) {
  registry().push_back(std::move(def));
  return true;
}

bool register_bench_source(void (*add)()) {
  bench_sources().push_back(add);
  return true;
}

const std::vector<BenchDef>& registered_benches() { return expanded_registry(); }

const BenchDef* find_bench(const std::string& name, Backend backend) {
  for (const auto& d : expanded_registry()) {
    if (d.name == name && d.backend == backend) return &d;
  }
  return nullptr;
}

}  // namespace seqscale
