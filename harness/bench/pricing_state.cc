// The model's side of a benchmark point: the same body runs against a BenchState that
// executes nothing. Allocations are counted (their sum is the predicted peak), exec() is
// not called through, and the declared cost is priced by the roofline with the
// calibrated efficiency. So `bench --source model` and a measured run describe the same
// points with the same ids, and every disagreement points at one declaration.
#include "harness/bench/pricing.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <string_view>
#include <unordered_map>

#include "model/roofline.h"
#include "workloads/op_kinds.h"

namespace seqscale {
namespace {

class PricingState final : public BenchState {
 public:
  PricingState(const MatrixPoint& p, Backend b) : BenchState(p.params), backend_(b) {}
  Backend backend() const override { return backend_; }
  void* alloc(std::size_t bytes) override {
    live_ += static_cast<std::int64_t>(bytes);
    bytes_ = std::max(bytes_, live_);
    // Distinct, never-dereferenced addresses: bodies touch memory only through exec/fill.
    next_ += (bytes + 255) / 256 * 256 + 256;
    sizes_[next_] = static_cast<std::int64_t>(bytes);
    return reinterpret_cast<void*>(next_);
  }
  void release(void* p) override {
    auto it = sizes_.find(reinterpret_cast<std::uintptr_t>(p));
    if (it == sizes_.end()) return;
    live_ -= it->second;
    sizes_.erase(it);
  }
  void fill_random(void*, std::int64_t, DType, std::uint64_t, float, float) override {}
  void fill_value(void*, std::int64_t, DType, float) override {}
  std::vector<double> read_back(const void*, std::int64_t count, DType) override {
    return std::vector<double>(static_cast<std::size_t>(count), 0.0);  // never read: nothing ran
  }
  bool executes() const override { return false; }
  void memory_metrics(std::map<std::string, double>& out) const override {
    out["peak_bytes"] = static_cast<double>(bytes_);
  }
  bool executed() const { return executed_; }

 protected:
  void exec_timed(const std::function<void(void*)>&) override { executed_ = true; }
  void run_once(const std::function<void(void*)>&) override {}

 private:
  Backend backend_;
  std::int64_t bytes_ = 0;  // high-water mark of live_
  std::int64_t live_ = 0;
  std::unordered_map<std::uintptr_t, std::int64_t> sizes_;
  std::uintptr_t next_ = 0x100000;
  bool executed_ = false;
};

}  // namespace

PointResult price_point(const MatrixPoint& point, const ClusterSpec& cluster, const Calibration& cal) {
  PointResult r = result_for(point);
  r.source = "model";
  // The body of the point's own backend: its allocations are the memory being predicted.
  // Bodies touch devices only inside exec() and fill_*(), which this state never runs.
  const Backend own = point.backend == "cuda" ? Backend::kCuda : Backend::kCpu;
  const BenchDef* def = find_bench(point.bench, own);
  if (!def) def = find_bench(point.bench, own == Backend::kCuda ? Backend::kCpu : Backend::kCuda);
  if (!def) {
    r.status = PointStatus::kSkipped;
    r.reason = "benchmark '" + point.bench + "' is not registered in this build";
    return r;
  }
  PricingState state(point, point.backend == "cuda" ? Backend::kCuda : Backend::kCpu);
  try {
    def->body(state);
  } catch (const std::exception& e) {
    r.status = PointStatus::kFailed;
    r.reason = std::string("pricing failed: ") + e.what();
    return r;
  }
  DType dtype = DType::kBf16;
  if (point.params.contains("dtype") && point.params["dtype"].is_string()) {
    parse_dtype(point.params["dtype"].get<std::string>(), &dtype);
  }
  // The efficiency of the op kind the benchmark measures, the one `seqscale calibrate` fits
  // from its measured points (workloads/op_kinds.h); a benchmark of no single op kind
  // without a program (the copy ceiling) is priced at the default.
  const double work = state.cost().flops > 0 ? state.cost().flops : state.cost().bytes;
  const std::optional<std::string_view> kind = bench_op_kind(point.bench);
  const double eff = kind ? cal.compute_efficiency(*kind, work) : cal.default_compute_efficiency;
  r.declared_flops = state.cost().flops;
  r.declared_bytes = state.cost().bytes;
  if (const StepProgram* prog = state.declared_program()) {
    double t = 0;
    for (const StepOp& op : prog->ops) {
      if (const auto* c = std::get_if<ComputeOp>(&op)) t += compute_time_s(*c, cluster, cal);
    }
    r.samples_s = {t};
  } else {
    r.samples_s = {compute_time_s(state.cost(), dtype, cluster, eff)};
  }
  state.memory_metrics(r.metrics);
  r.metrics["efficiency"] = eff;
  r.status = static_cast<double>(r.metrics["peak_bytes"]) > static_cast<double>(cluster.gpu_memory_bytes)
                 ? PointStatus::kOom
                 : PointStatus::kOk;
  if (r.status == PointStatus::kOom) {
    r.reason = "predicted peak exceeds the GPU's memory";
    r.samples_s.clear();
  }
  finalize_point(r);
  return r;
}

}  // namespace seqscale
