// seqscale report RESULTS... --out DIR: a self-contained report folder (index.html that opens
// offline with no script, index.md, every figure as PNG and SVG, and the data it drew in
// DIR/data/), rendered by reports/report.py with Debian's python3 + matplotlib. Reports read
// results and never write into results/.
//
// This file gathers everything the figures need that is not in a results file, so python only
// draws: the published anchors `seqscale validate` knows (computed here by the model library,
// or --validate FILE), the cost model's memory sweeps (--memory-sweep FILE, default
// reports/sweeps/*.json: one model, cluster and plan priced along the sequence length or the
// MSA depth with naive and fused attention, every memory term kept in order), the cluster
// files' peaks (the roofline's fallback ceilings) and the commit and date for model-only
// figures. Two different max-sequence files, never confused:
//   --scaling FILE           `seqscale maxseq --json` output: the model's search over a
//                            preset's plans per GPU count (the Figure 9 view);
//   --measured-max-seq FILE  `seqscale bench --maxseq` output, DIR/measured_max_seq.json: the
//                            hardware bisection, rows with measured_max and predicted_max
//                            (results/SCHEMA.md); a RESULTS folder holding one is read too.
//   seqscale report out/run --scaling best.json --out out/report
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "harness/build_info.h"
#include "harness/cli/verb.h"
#include "harness/results/results.h"
#include "model/anchors.h"
#include "model/calibration.h"
#include "model/estimate.h"
#include "workloads/json_fields.h"
#include "workloads/plan.h"
#include "workloads/specs.h"

namespace seqscale::cli {
namespace {

namespace fs = std::filesystem;

// RESULTS arguments: a results.json file, or a folder holding one (or, below it, several).
// Zero files in the end is an error: a report of nothing would only hide a wrong path.
std::vector<std::string> collect_results(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  for (const auto& in : inputs) {
    if (!fs::exists(in)) throw ConfigError(in + ": no such results file or folder");
    if (!fs::is_directory(in)) {
      files.push_back(in);
      continue;
    }
    if (fs::exists(fs::path(in) / "results.json")) {
      files.push_back((fs::path(in) / "results.json").string());
      continue;
    }
    std::vector<std::string> found;
    for (const auto& e : fs::recursive_directory_iterator(in)) {
      if (e.is_regular_file() && e.path().filename() == "results.json") found.push_back(e.path().string());
    }
    if (found.empty()) throw ConfigError(in + ": no results.json in this folder or below");
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

// A maxseq file is a JSON array of {model, cluster, gpus, preset, max_seq, ...}; a corrupt
// one is a one-line error naming the entry and field, before python runs.
void check_scaling_file(const std::string& path) {
  const nlohmann::json doc = read_json_file(path, "maxseq file");
  if (!doc.is_array() || doc.empty()) throw ConfigError(path + ": expected the non-empty JSON array of seqscale maxseq --json");
  for (std::size_t i = 0; i < doc.size(); ++i) {
    const auto& e = doc[i];
    auto bad = [&](const char* field, const char* why) {
      throw ConfigError(path + ": entry " + std::to_string(i) + ": field '" + field + "' " + why);
    };
    if (!e.is_object()) throw ConfigError(path + ": entry " + std::to_string(i) + " is not an object");
    for (const char* f : {"gpus", "max_seq"})
      if (!e.contains(f) || !e[f].is_number_integer() || e[f].get<std::int64_t>() < 0) bad(f, "must be a non-negative integer");
    if (e["gpus"].get<std::int64_t>() == 0) bad("gpus", "must be positive");
    for (const char* f : {"preset", "model", "cluster"})
      if (!e.contains(f) || !e[f].is_string()) bad(f, "must be a string");
  }
}

// A measured_max_seq.json (`seqscale bench --maxseq`) is a JSON array of rows, each with
// bench, backend, axis and measured_max / predicted_max (an integer, or null).
void check_measured_max_seq_file(const std::string& path) {
  const nlohmann::json doc = read_json_file(path, "measured max-sequence file");
  if (!doc.is_array()) throw ConfigError(path + ": expected the JSON array of seqscale bench --maxseq (measured_max_seq.json)");
  for (std::size_t i = 0; i < doc.size(); ++i) {
    const auto& r = doc[i];
    auto bad = [&](const char* field, const char* why) {
      throw ConfigError(path + ": row " + std::to_string(i) + ": field '" + field + "' " + why);
    };
    if (!r.is_object()) throw ConfigError(path + ": row " + std::to_string(i) + " is not an object");
    for (const char* f : {"bench", "backend", "axis"})
      if (!r.contains(f) || !r[f].is_string()) bad(f, "must be a string");
    for (const char* f : {"measured_max", "predicted_max"})
      if (!r.contains(f) || !(r[f].is_null() || r[f].is_number_integer())) bad(f, "must be an integer or null");
  }
}

// The bisection files that sit in the RESULTS folders given (bench --maxseq --out DIR writes
// DIR/results.json and DIR/measured_max_seq.json side by side).
std::vector<std::string> measured_max_seq_beside(const std::vector<std::string>& inputs) {
  std::vector<std::string> out;
  for (const auto& in : inputs) {
    const fs::path f = fs::path(in) / "measured_max_seq.json";
    if (fs::is_directory(in) && fs::exists(f)) out.push_back(f.string());
  }
  return out;
}

// The rows of `seqscale validate --json`, from the same library call.
nlohmann::json anchors_json() {
  nlohmann::json arr = nlohmann::json::array();
  for (const AnchorRow& r : validate_anchors()) {
    const double err = r.published != 0 ? (r.predicted - r.published) / r.published : 0.0;
    arr.push_back({{"group", r.group}, {"name", r.name}, {"source", r.source}, {"unit", r.unit},
                   {"published", r.published}, {"predicted", r.predicted}, {"error", err},
                   {"tolerance", r.tolerance}, {"grid_step", r.grid_step}, {"in_grid_cell", r.in_grid_cell()},
                   {"claimed", r.claimed}, {"ok", r.ok()}, {"note", r.note}});
  }
  return arr;
}

// A memory sweep (reports/sweeps/*.json): one model, cluster, GPU count and base plan, priced
// at every value of one axis with each attention variant appended to the plan.
//   {"name": "gpt-30b-attention", "model": "gpt-30b", "cluster": "dgx-a100-40g", "gpus": 32,
//    "plan": "tp=32,sp=megatron,zero=1,recompute=full",
//    "variants": {"naive": "attn=materialized,mask=fp32", "fused": "attn=fused,mask=none"},
//    "axis": "seq" | "msa_depth", "values": [2048, 4096], "seq": 384 (msa_depth: the fixed N_res)}
struct MemorySweep {
  std::string path, name, description, model, cluster, plan, axis;
  std::int64_t gpus = 1, seq = 0;
  std::vector<std::pair<std::string, std::string>> variants;
  std::vector<std::int64_t> values;
};

MemorySweep load_sweep(const std::string& path) {
  const nlohmann::json doc = read_json_file(path, "memory sweep");
  if (!doc.is_object()) throw ConfigError(path + ": a memory sweep is a JSON object");
  JsonFields f(doc, path);
  MemorySweep s;
  s.path = path;
  s.name = f.str("name");
  s.description = f.str_or("description", "");
  s.model = f.str("model");
  s.cluster = f.str("cluster");
  s.gpus = f.integer("gpus", 1, 1 << 20);
  s.plan = f.str_or("plan", "");
  s.axis = f.str("axis");
  if (s.axis != "seq" && s.axis != "msa_depth") f.fail("axis", "must be seq or msa_depth");
  s.seq = f.integer_or("seq", 0, 0, std::int64_t{1} << 32);
  const nlohmann::json& variants = f.raw("variants");
  if (!variants.is_object() || variants.empty()) f.fail("variants", "must be an object of name: plan keys");
  for (const auto& [name, extra] : variants.items()) {
    if (!extra.is_string()) f.fail("variants", "'" + name + "' must be a plan string");
    s.variants.emplace_back(name, extra.get<std::string>());
  }
  // Naive before fused, whatever the file's key order (nlohmann sorts keys).
  std::sort(s.variants.begin(), s.variants.end(), [](const auto& a, const auto& b) {
    return (a.first == "naive" ? 0 : 1) < (b.first == "naive" ? 0 : 1);
  });
  const nlohmann::json& values = f.raw("values");
  if (!values.is_array() || values.empty()) f.fail("values", "must be a non-empty array of positive integers");
  for (const auto& v : values) {
    if (!v.is_number_integer() || v.get<std::int64_t>() <= 0) f.fail("values", "must be a non-empty array of positive integers");
    s.values.push_back(v.get<std::int64_t>());
  }
  f.reject_unknown();
  return s;
}

// Prices every (value, variant) of a sweep. A point the plan rejects (the shape does not
// divide) is kept with its reason: the figure draws it as a gap, never as a zero.
nlohmann::json price_sweep(const MemorySweep& s) {
  const ModelSpec base = load_model(s.model);
  const ClusterSpec cluster = load_cluster(s.cluster);
  if (s.axis == "msa_depth" && !base.is_evoformer()) {
    throw ConfigError(s.path + ": field 'axis' is msa_depth but model '" + base.name + "' is not an Evoformer");
  }
  const Calibration cal = default_calibration();
  nlohmann::json points = nlohmann::json::array();
  for (const std::int64_t v : s.values) {
    for (const auto& [variant, extra] : s.variants) {
      ModelSpec model = base;
      RunShape shape{s.seq, 1, 0};
      if (s.axis == "seq") shape.seq = v;
      else std::get<EvoformerSpec>(model.arch).n_seq = v;
      const std::string plan_text = s.plan.empty() ? extra : s.plan + "," + extra;
      nlohmann::json p = {{"x", v}, {"variant", variant}, {"plan", plan_text}};
      try {
        const Estimate e = estimate(model, cluster, parse_plan(plan_text), s.gpus, shape, cal);
        p["plan"] = plan_to_string(e.plan);
        p["fits"] = e.fits;
        p["why_not"] = e.why_not;
        p["peak_bytes"] = e.memory.peak();
        p["binding"] = std::string(mem_term_name(e.memory.binding()));
        nlohmann::json terms = nlohmann::json::array();  // in MemTerm order: the stacking order
        for (int i = 0; i < static_cast<int>(MemTerm::kCount); ++i) {
          terms.push_back({{"term", std::string(mem_term_name(static_cast<MemTerm>(i)))}, {"bytes", e.memory.bytes[i]}});
        }
        p["terms"] = terms;
        p["step_s"] = e.time.step;
      } catch (const ConfigError& err) {
        p["error"] = err.what();
      }
      points.push_back(p);
    }
  }
  return {{"name", s.name}, {"description", s.description}, {"file", s.path}, {"model", base.name},
          {"cluster", cluster.name}, {"gpu", cluster.gpu}, {"gpus", s.gpus}, {"axis", s.axis},
          {"seq", s.seq}, {"capacity_bytes", cluster.gpu_memory_bytes}, {"points", points}};
}

// Every cluster file's peaks: the roofline's ceilings when the device measured none.
nlohmann::json clusters_json() {
  nlohmann::json arr = nlohmann::json::array();
  const fs::path dir = fs::path(workloads_dir()) / "clusters";
  if (!fs::is_directory(dir)) return arr;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".json") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    const ClusterSpec c = load_cluster(file.string());
    arr.push_back({{"name", c.name}, {"file", file.filename().string()}, {"gpu", c.gpu},
                   {"gpus_per_node", c.gpus_per_node}, {"gpu_memory_bytes", c.gpu_memory_bytes},
                   {"peak_bf16_TFLOPs", c.peak_bf16_flops / 1e12}, {"peak_fp32_TFLOPs", c.peak_fp32_flops / 1e12},
                   {"hbm_GBps", c.hbm_bytes_per_s / 1e9}, {"nvlink_GBps", c.nvlink_bytes_per_s / 1e9},
                   {"ib_GBps", c.ib_bytes_per_s / 1e9}});
  }
  return arr;
}

std::vector<std::string> default_sweeps() {
  std::vector<std::string> out;
  const fs::path dir = fs::path(source_root()) / "reports" / "sweeps";
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".json") out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

int run_python(std::vector<std::string> argv_s, const std::string& python) {
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::cout.flush();
  const pid_t pid = fork();
  if (pid == 0) {
    execv(argv[0], argv.data());
    std::cerr << "seqscale report: cannot run " << python << " (--python names a python3 with matplotlib)\n";
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int run_report(const std::vector<std::string>& args) {
  po::options_description opts;
  std::vector<std::string> inputs, scaling, measured_max_seq, sweeps;
  std::string out_dir, python, validate_file;
  opts.add_options()
    ("results", po::value(&inputs)->multitoken(), "results.json files, or folders holding them")
    ("out", po::value(&out_dir)->required(), "output folder: index.html, index.md, figures (PNG + SVG), data/")
    ("python", po::value(&python)->default_value("/usr/bin/python3"), "python with matplotlib")
    ("scaling", po::value(&scaling)->multitoken(), "seqscale maxseq --json files: max sequence vs GPU count")
    ("measured-max-seq", po::value(&measured_max_seq)->multitoken(),
     "measured_max_seq.json files of seqscale bench --maxseq (also found in RESULTS folders)")
    ("memory-sweep", po::value(&sweeps)->multitoken(), "memory sweep files (default: reports/sweeps/*.json)")
    ("no-memory-sweep", "draw no memory sweep")
    ("validate", po::value(&validate_file), "seqscale validate --json file (default: computed now)");
  po::positional_options_description pos;
  pos.add("results", -1);
  po::variables_map vm;
  if (!parse_args("report", args, opts, vm, &pos, "RESULTS... --out DIR [--scaling MAXSEQ.json...] [--memory-sweep SWEEP.json...]")) {
    return 0;
  }
  // A report from model files alone (--scaling) is allowed; from nothing at all it is not.
  if (inputs.empty() && scaling.empty()) {
    throw UsageError("seqscale report: no results files given (RESULTS...: results.json files or folders holding them)");
  }
  const std::vector<std::string> files = collect_results(inputs);
  for (const auto& f : files) read_results(f);  // validate first: a corrupt file is a one-line error, not a traceback
  for (const auto& f : scaling) check_scaling_file(f);
  for (const auto& f : measured_max_seq_beside(inputs)) {
    if (std::find(measured_max_seq.begin(), measured_max_seq.end(), f) == measured_max_seq.end()) measured_max_seq.push_back(f);
  }
  for (const auto& f : measured_max_seq) check_measured_max_seq_file(f);
  if (sweeps.empty() && !vm.count("no-memory-sweep")) sweeps = default_sweeps();

  nlohmann::json anchors;
  if (vm.count("validate")) {
    anchors = read_json_file(validate_file, "validate file");
    if (!anchors.is_array()) throw ConfigError(validate_file + ": expected the JSON array of seqscale validate --json");
  } else {
    anchors = anchors_json();
  }
  nlohmann::json memory = nlohmann::json::array();
  for (const auto& f : sweeps) memory.push_back(price_sweep(load_sweep(f)));

  const std::string data_dir = out_dir + "/data";
  std::error_code ec;
  fs::create_directories(data_dir, ec);
  if (ec) throw ConfigError("--out: cannot create " + data_dir + ": " + ec.message());
  write_text_atomic(anchors.dump(1) + "\n", data_dir + "/validate.json");
  write_text_atomic(memory.dump(1) + "\n", data_dir + "/memory_sweeps.json");
  write_text_atomic(clusters_json().dump(1) + "\n", data_dir + "/clusters.json");
  const nlohmann::json meta = {{"commit", git_commit()}, {"generated_utc", utc_now_iso8601()},
                               {"command_line", "seqscale report"}};
  write_text_atomic(meta.dump(1) + "\n", data_dir + "/meta.json");

  std::vector<std::string> argv_s = {python, source_root() + "/reports/report.py", "--out", out_dir, "--data", data_dir};
  for (const auto& f : scaling) argv_s.insert(argv_s.end(), {"--scaling", f});
  for (const auto& f : measured_max_seq) argv_s.insert(argv_s.end(), {"--measured-max-seq", f});
  argv_s.insert(argv_s.end(), files.begin(), files.end());
  const int rc = run_python(argv_s, python);
  if (rc == 2) return 2;  // report.py printed its one-line input error
  if (rc != 0) {
    std::cerr << "seqscale report: report.py failed (exit " << rc << ")\n";
    return 1;
  }
  std::cout << out_dir << "/index.html\n" << out_dir << "/index.md\n";
  return 0;
}

}  // namespace
SEQSCALE_VERB("report", "render a report folder (HTML, Markdown, PNG + SVG figures) from results", run_report);
}  // namespace seqscale::cli
