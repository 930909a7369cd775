#include "harness/matrix/matrix.h"

#include <fstream>
#include <set>

#include "harness/bench/registry.h"
#include "harness/results/results.h"
#include "workloads/config_error.h"
#include "workloads/json_fields.h"
#include "workloads/specs.h"

namespace seqscale {
namespace {

constexpr std::int64_t kMaxAxisValues = 100000;

std::vector<nlohmann::json> axis_values(const nlohmann::json& spec, const std::string& where,
                                        const std::string& path) {
  auto bad = [&](const std::string& msg) { throw ConfigError(where + ": field '" + path + "' " + msg); };
  std::vector<nlohmann::json> out;
  if (spec.is_array()) {
    if (spec.empty()) bad("is an empty list");
    for (const auto& v : spec) out.push_back(v);
    return out;
  }
  if (!spec.is_object() || spec.size() != 1) bad("must be a list or one of {pow2|linear|geometric: [...]}");
  const auto& [kind, args] = *spec.items().begin();
  if (!args.is_array()) bad("'" + kind + "' must be an array of numbers");
  for (const auto& a : args) {
    if (!a.is_number_integer()) bad("'" + kind + "' must hold integers");
  }
  auto arg = [&](size_t i) { return args[i].get<std::int64_t>(); };
  if (kind == "pow2") {
    if (args.size() != 2) bad("'pow2' takes [lo, hi]");
    const auto lo = arg(0), hi = arg(1);
    if (lo <= 0 || (lo & (lo - 1)) != 0 || hi < lo) bad("'pow2' needs a power of two lo <= hi");
    for (std::int64_t v = lo; v <= hi; v *= 2) out.emplace_back(v);
  } else if (kind == "linear") {
    if (args.size() != 3) bad("'linear' takes [lo, hi, step]");
    const auto lo = arg(0), hi = arg(1), step = arg(2);
    if (step <= 0 || hi < lo || (hi - lo) / step > kMaxAxisValues) bad("'linear' needs lo <= hi and step > 0");
    for (std::int64_t v = lo; v <= hi; v += step) out.emplace_back(v);
  } else if (kind == "geometric") {
    if (args.size() != 3) bad("'geometric' takes [lo, hi, factor]");
    const auto lo = arg(0), hi = arg(1), factor = arg(2);
    if (lo <= 0 || factor < 2 || hi < lo) bad("'geometric' needs 0 < lo <= hi and factor >= 2");
    for (std::int64_t v = lo; v <= hi; v *= factor) out.emplace_back(v);
  } else {
    bad("has unknown range kind '" + kind + "' (pow2, linear, geometric)");
  }
  return out;
}

bool matches(const nlohmann::json& params, const std::string& backend, const nlohmann::json& rule) {
  for (const auto& [k, v] : rule.items()) {
    if (k == "backend") {
      if (!v.is_string() || v.get<std::string>() != backend) return false;
    } else if (!params.contains(k) || params[k] != v) {
      return false;
    }
  }
  return true;
}

}  // namespace

nlohmann::json timing_to_json(const TimingPolicy& t) {
  return {{"warmup_s", t.warmup_s},       {"max_noise", t.max_noise},
          {"min_samples", t.min_samples}, {"max_samples", t.max_samples},
          {"time_cap_s", t.time_cap_s},   {"min_sample_s", t.min_sample_s},
          {"flush_l2", t.flush_l2},       {"cupti", t.cupti},
          {"check", t.check},             {"check_only", t.check_only}};
}

TimingPolicy timing_from_json(const nlohmann::json& j, const std::string& where) {
  JsonFields f(j, where, "timing");
  TimingPolicy t;
  t.warmup_s = f.number_or("warmup_s", t.warmup_s, 0, 3600);
  t.max_noise = f.number_or("max_noise", t.max_noise, 0, 1);
  t.min_samples = f.integer_or("min_samples", t.min_samples, 1, 1 << 20);
  t.max_samples = f.integer_or("max_samples", t.max_samples, t.min_samples, 1 << 24);
  t.time_cap_s = f.number_or("time_cap_s", t.time_cap_s, 0, 86400);
  t.min_sample_s = f.number_or("min_sample_s", t.min_sample_s, 0, 10);
  t.flush_l2 = f.boolean_or("flush_l2", t.flush_l2);
  t.cupti = f.boolean_or("cupti", t.cupti);
  t.check = f.boolean_or("check", t.check);
  t.check_only = f.boolean_or("check_only", t.check_only);
  if (t.check_only && !t.check) f.fail("check_only", "needs check: true");
  f.reject_unknown();
  return t;
}

Matrix expand_matrix(const nlohmann::json& doc, const std::string& where) {
  JsonFields f(doc, where);
  Matrix m;
  m.source = where;
  m.name = f.str("name");
  f.str_or("description", "");
  TimingPolicy base;
  if (const auto* t = f.optional("timing")) base = timing_from_json(*t, where);
  const double base_timeout = f.number_or("timeout_s", 120, 0.001, 86400);
  const auto& benches = f.raw("benchmarks");
  if (!benches.is_array() || benches.empty()) f.fail("benchmarks", "must be a non-empty array");
  f.reject_unknown();

  for (size_t bi = 0; bi < benches.size(); ++bi) {
    const std::string path = "benchmarks[" + std::to_string(bi) + "]";
    JsonFields b(benches[bi], where, path);
    const std::string name = b.str("name");
    std::vector<std::string> backends;
    const auto& be = b.raw("backend");
    for (const auto& v : be.is_array() ? be : nlohmann::json::array({be})) {
      if (!v.is_string() || (v != "cpu" && v != "cuda")) b.fail("backend", "must be 'cpu', 'cuda' or a list of them");
      backends.push_back(v.get<std::string>());
    }
    std::string suite;
    for (const auto& backend : backends) {
      const BenchDef* def = find_bench(name, backend == "cpu" ? Backend::kCpu : Backend::kCuda);
      if (!def) {
        // A CUDA benchmark is absent from a build without CUDA: its points become
        // `skipped` at run time rather than an error, so one matrix serves every build.
        if (backend == "cuda" && !find_bench(name, Backend::kCpu) && SEQSCALE_HAVE_CUDA) {
          b.fail("name", "'" + name + "' is not a registered benchmark");
        }
        if (backend == "cpu") b.fail("name", "'" + name + "' has no cpu benchmark registered");
      } else {
        suite = def->suite;
      }
    }
    if (suite.empty()) {
      if (!b.has("suite")) {
        for (const auto& d : registered_benches()) {
          if (d.name == name) suite = d.suite;
        }
      }
    }
    suite = b.str_or("suite", suite.empty() ? "kernels" : suite);
    TimingPolicy timing = base;
    if (const auto* t = b.optional("timing")) timing = timing_from_json(*t, where);
    const double timeout = b.number_or("timeout_s", base_timeout, 0.001, 86400);
    std::vector<std::pair<std::string, std::vector<nlohmann::json>>> axes;
    if (const auto* a = b.optional("axes")) {
      if (!a->is_object()) b.fail("axes", "must be an object of axis name -> values");
      for (const auto& [axis, spec] : a->items()) {
        if (axis == "backend") b.fail("axes.backend", "is reserved: use the 'backend' field");
        axes.emplace_back(axis, axis_values(spec, where, path + ".axes." + axis));
      }
    }
    const nlohmann::json* exclude = b.optional("exclude");
    if (exclude && !exclude->is_array()) b.fail("exclude", "must be an array of partial points");
    b.reject_unknown();

    std::vector<size_t> idx(axes.size(), 0);
    for (const auto& backend : backends) {
      std::fill(idx.begin(), idx.end(), 0);
      while (true) {
        nlohmann::json params = nlohmann::json::object();
        for (size_t a = 0; a < axes.size(); ++a) params[axes[a].first] = axes[a].second[idx[a]];
        bool excluded = false;
        if (exclude) {
          for (const auto& rule : *exclude) excluded = excluded || matches(params, backend, rule);
        }
        if (!excluded) {
          MatrixPoint p;
          p.suite = suite;
          p.bench = name;
          p.backend = backend;
          p.params = params;
          p.timeout_s = timeout;
          p.timing = timing;
          p.id = point_id(suite, name, backend, params);
          m.points.push_back(std::move(p));
        }
        size_t a = 0;
        for (; a < axes.size(); ++a) {
          if (++idx[a] < axes[a].second.size()) break;
          idx[a] = 0;
        }
        if (a == axes.size()) break;
      }
    }
  }
  std::set<std::string> ids;
  for (const auto& p : m.points) {
    if (!ids.insert(p.id).second) throw ConfigError(where + ": point '" + p.id + "' appears twice (duplicate axis values?)");
  }
  return m;
}

Matrix load_matrix(const std::string& name_or_path) {
  const std::string path = resolve_workload_file("matrices", name_or_path);
  return expand_matrix(read_json_file(path, "matrix file"), path);
}

}  // namespace seqscale
