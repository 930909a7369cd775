#include "harness/bench/registry.h"

#include "workloads/config_error.h"

namespace seqscale {
namespace {
std::vector<BenchDef>& registry() {
  static std::vector<BenchDef> all;
  return all;
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

bool register_bench(BenchDef def) {
  registry().push_back(std::move(def));
  return true;
}

const std::vector<BenchDef>& registered_benches() { return registry(); }

const BenchDef* find_bench(const std::string& name, Backend backend) {
  for (const auto& d : registry()) {
    if (d.name == name && d.backend == backend) return &d;
  }
  return nullptr;
}

}  // namespace seqscale
