#include "harness/results/results.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "harness/build_info.h"
#include "harness/gpu_runtime.h"
#include "harness/matrix/matrix.h"
#include "workloads/config_error.h"
#include "workloads/json_fields.h"

namespace seqscale {
namespace {

constexpr std::string_view kStatusNames[] = {"ok", "oom", "failed", "skipped"};

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto pos = line.find(':');
      if (pos != std::string::npos) return line.substr(pos + 2);
    }
  }
  return "unknown";
}

}  // namespace

std::string_view status_name(PointStatus s) { return kStatusNames[static_cast<int>(s)]; }

const PointResult* ResultsFile::find(const std::string& id) const {
  for (const auto& p : points) {
    if (p.id == id) return &p;
  }
  return nullptr;
}

std::string point_id(const std::string& suite, const std::string& bench, const std::string& backend,
                     const nlohmann::json& params) {
  // nlohmann::json objects iterate in key order, so the id is canonical.
  std::string id = suite + "/" + bench + "/" + backend + "/";
  bool first = true;
  for (const auto& [k, v] : params.items()) {
    id += (first ? "" : ",") + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
    first = false;
  }
  return id;
}

PointResult result_for(const MatrixPoint& point) {
  PointResult r;
  r.id = point.id;
  r.suite = point.suite;
  r.bench = point.bench;
  r.backend = point.backend;
  r.params = point.params;
  return r;
}

void finalize_point(PointResult& p) {
  p.stats = summarize(p.samples_s);
  if (p.status != PointStatus::kOk || p.stats.median <= 0) return;
  if (p.declared_flops > 0) p.metrics["TFLOPs"] = p.declared_flops / p.stats.median / 1e12;
  if (p.declared_bytes > 0) p.metrics["GBps"] = p.declared_bytes / p.stats.median / 1e9;
  // Training steps: throughput and utilisation against the device's dense peak.
  if (auto t = p.metrics.find("tokens_per_step"); t != p.metrics.end()) p.metrics["tokens_per_s"] = t->second / p.stats.median;
  if (auto pk = p.metrics.find("peak_flops"); pk != p.metrics.end() && pk->second > 0 && p.declared_flops > 0) {
    p.metrics["mfu"] = p.declared_flops / p.stats.median / pk->second;
  }
}

nlohmann::json to_json(const PointResult& p) {
  nlohmann::json j;
  j["id"] = p.id;
  j["suite"] = p.suite;
  j["bench"] = p.bench;
  j["backend"] = p.backend;
  j["params"] = p.params;
  j["status"] = status_name(p.status);
  j["reason"] = p.reason;
  j["source"] = p.source;
  j["samples_s"] = p.samples_s;
  if (!p.runs_median_s.empty()) j["runs_median_s"] = p.runs_median_s;
  j["stats"] = {{"n", p.stats.n},           {"median_s", p.stats.median}, {"min_s", p.stats.min},
                {"max_s", p.stats.max},     {"mean_s", p.stats.mean},     {"stddev_s", p.stats.stddev},
                {"rel_noise", p.stats.rel_noise}, {"mad_s", p.stats.mad}};
  j["declared"] = {{"flops", p.declared_flops}, {"bytes", p.declared_bytes}};
  j["metrics"] = p.metrics;
  if (p.check) {
    const CheckResult& c = *p.check;
    j["check"] = {{"ok", c.ok},
                  {"max_abs_err", c.max_abs_err},
                  {"max_rel_err", c.max_rel_err},
                  {"tolerance", {{"abs", c.tolerance.abs}, {"rel", c.tolerance.rel}, {"rel_to_max", c.tolerance.rel_to_max}}},
                  {"checked_elements", c.checked_elements},
                  {"worst_ratio", c.worst_ratio},
                  {"worst", c.worst},
                  {"scope", c.scope}};
  }
  if (!p.timing.empty()) j["timing"] = p.timing;
  j["wall_s"] = p.wall_s;
  return j;
}

nlohmann::json to_json(const ResultsFile& f) {
  nlohmann::json run = {{"git_commit", f.run.git_commit},   {"host", f.run.host},
                        {"device", f.run.device},           {"driver", f.run.driver},
                        {"cuda_runtime", f.run.cuda_runtime}, {"nccl", f.run.nccl},
                        {"mpi", f.run.mpi},                 {"command_line", f.run.command_line},
                        {"started_utc", f.run.started_utc}, {"seqscale_version", f.run.seqscale_version},
                        {"world_size", f.run.world_size},   {"ranks", f.run.ranks},
                        {"extra", f.run.extra}};
  nlohmann::json points = nlohmann::json::array();
  for (const auto& p : f.points) points.push_back(to_json(p));
  return {{"schema", f.schema}, {"run", run}, {"points", points}};
}

PointResult point_from_json(const nlohmann::json& j, const std::string& where) {
  JsonFields f(j, where, "points[]");
  PointResult p;
  p.id = f.str("id");
  JsonFields fp(j, where, "points[" + p.id + "]");
  fp.str("id");
  p.suite = fp.str("suite");
  p.bench = fp.str("bench");
  p.backend = fp.str("backend");
  p.params = fp.raw("params");
  if (!p.params.is_object()) fp.fail("params", "must be an object");
  const std::string status = fp.str("status");
  bool known = false;
  for (int i = 0; i < 4; ++i) {
    if (kStatusNames[i] == status) {
      p.status = static_cast<PointStatus>(i);
      known = true;
    }
  }
  if (!known) fp.fail("status", "is '" + status + "', must be ok, oom, failed or skipped");
  p.reason = fp.str_or("reason", "");
  p.source = fp.str("source");
  if (p.source != "measured" && p.source != "model") fp.fail("source", "must be 'measured' or 'model'");
  const auto& samples = fp.raw("samples_s");
  if (!samples.is_array()) fp.fail("samples_s", "must be an array of seconds");
  for (const auto& s : samples) {
    if (!s.is_number() || s.get<double>() < 0) fp.fail("samples_s", "must hold non-negative numbers");
    p.samples_s.push_back(s.get<double>());
  }
  if (const auto* runs = fp.optional("runs_median_s")) {
    if (!runs->is_array()) fp.fail("runs_median_s", "must be an array of seconds");
    for (const auto& s : *runs) {
      if (!s.is_number() || s.get<double>() < 0) fp.fail("runs_median_s", "must hold non-negative numbers");
      p.runs_median_s.push_back(s.get<double>());
    }
  }
  fp.optional("stats");  // derived: recomputed from the samples, never trusted
  if (const auto* d = fp.optional("declared")) {
    JsonFields fd(*d, where, "points[" + p.id + "].declared");
    p.declared_flops = fd.number_or("flops", 0, 0, 1e30);
    p.declared_bytes = fd.number_or("bytes", 0, 0, 1e30);
    fd.reject_unknown();
  }
  if (const auto* m = fp.optional("metrics")) {
    if (!m->is_object()) fp.fail("metrics", "must be an object");
    for (const auto& [k, v] : m->items()) {
      if (!v.is_number()) fp.fail("metrics." + k, "must be a number");
      p.metrics[k] = v.get<double>();
    }
  }
  if (const auto* c = fp.optional("check")) {
    const std::string at = "points[" + p.id + "].check";
    JsonFields fc(*c, where, at);
    CheckResult r;
    const auto& ok = fc.raw("ok");
    if (!ok.is_boolean()) fc.fail("ok", "must be true or false");
    r.ok = ok.get<bool>();
    r.max_abs_err = fc.number_or("max_abs_err", 0, 0, 1e308);
    r.max_rel_err = fc.number_or("max_rel_err", 0, 0, 1e308);
    r.checked_elements = fc.integer_or("checked_elements", 0, 0, std::int64_t{1} << 62);
    r.worst_ratio = fc.number_or("worst_ratio", 0, 0, 1e308);
    r.worst = fc.str_or("worst", "");
    r.scope = fc.str_or("scope", "");
    if (const auto* t = fc.optional("tolerance")) {
      JsonFields ft(*t, where, at + ".tolerance");
      r.tolerance.abs = ft.number_or("abs", 0, 0, 1e308);
      r.tolerance.rel = ft.number_or("rel", 0, 0, 1e308);
      r.tolerance.rel_to_max = ft.number_or("rel_to_max", 0, 0, 1e308);
      ft.reject_unknown();
    }
    fc.reject_unknown();
    p.check = r;
  }
  p.timing = fp.str_or("timing", "");
  if (!p.timing.empty() && p.timing != "cupti" && p.timing != "events" && p.timing != "wall") {
    fp.fail("timing", "is '" + p.timing + "', must be cupti, events or wall");
  }
  p.wall_s = fp.number_or("wall_s", 0, 0, 1e12);
  fp.reject_unknown();
  const auto derived = p.metrics;
  finalize_point(p);
  for (const auto& [k, v] : derived) p.metrics[k] = v;
  return p;
}

ResultsFile results_from_json(const nlohmann::json& j, const std::string& where) {
  JsonFields f(j, where);
  ResultsFile r;
  r.schema = f.str("schema");
  if (r.schema != kResultsSchema) f.fail("schema", "is '" + r.schema + "', expected '" + kResultsSchema + "'");
  JsonFields run(f.raw("run"), where, "run");
  r.run.git_commit = run.str("git_commit");
  r.run.host = run.str("host");
  r.run.device = run.str("device");
  r.run.driver = run.str_or("driver", "");
  r.run.cuda_runtime = run.str_or("cuda_runtime", "");
  r.run.nccl = run.str_or("nccl", "");
  r.run.mpi = run.str_or("mpi", "");
  r.run.command_line = run.str("command_line");
  r.run.started_utc = run.str("started_utc");
  r.run.seqscale_version = run.str_or("seqscale_version", "");
  r.run.world_size = run.integer_or("world_size", 1, 1, 1 << 24);
  if (const auto* ranks = run.optional("ranks")) r.run.ranks = *ranks;
  if (const auto* extra = run.optional("extra")) r.run.extra = *extra;
  run.reject_unknown();
  const auto& points = f.raw("points");
  if (!points.is_array()) f.fail("points", "must be an array");
  for (const auto& p : points) r.points.push_back(point_from_json(p, where));
  f.reject_unknown();
  return r;
}

ResultsFile read_results(const std::string& path) {
  return results_from_json(read_json_file(path, "results file"), path);
}

void write_text_atomic(const std::string& text, const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  if (target.has_parent_path()) fs::create_directories(target.parent_path());
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw std::runtime_error("cannot write " + tmp);
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n <= 0) {
      ::close(fd);
      ::unlink(tmp.c_str());
      throw std::runtime_error("short write to " + tmp);
    }
    done += static_cast<size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    throw std::runtime_error("cannot rename " + tmp + " to " + path);
  }
}

void write_results_atomic(const ResultsFile& f, const std::string& path) {
  write_text_atomic(to_json(f).dump(1) + "\n", path);
}

RunMetadata collect_metadata(const std::string& command_line, bool want_gpu) {
  RunMetadata m;
  m.git_commit = git_commit();
  m.host = host_name();
  m.command_line = command_line;
  m.started_utc = utc_now_iso8601();
  m.seqscale_version = SEQSCALE_VERSION;
  m.mpi = mpi_library_version();
  m.device = "cpu:" + cpu_model_name();
  if (want_gpu) {
    const GpuRuntimeInfo gpu = query_gpu_runtime();
    m.driver = cuda_version_string(gpu.driver_version);
    m.cuda_runtime = cuda_version_string(gpu.runtime_version);
    if (gpu.nccl_version > 0) m.nccl = std::to_string(gpu.nccl_version);
    if (!gpu.devices.empty()) {
      m.device = gpu.devices[0].name;
      m.extra["gpu"] = {{"sm_count", gpu.devices[0].sm_count},
                        {"sm_clock_khz", gpu.devices[0].sm_clock_khz},
                        {"mem_clock_khz", gpu.devices[0].mem_clock_khz},
                        {"memory_bytes", gpu.devices[0].memory_bytes},
                        {"pci_bus_id", gpu.devices[0].pci_bus_id}};
    }
  }
  return m;
}

}  // namespace seqscale
