// Benchmarks declare their axes' meaning and the work they do; only the harness keeps
// time (warm-up, L2 flush, events, repetitions, noise stop), tracks memory and writes
// results. A benchmark is registered once per backend, in the kernel's own folder:
//
//   SEQSCALE_BENCH(layernorm_fwd_cpu, "layernorm_fwd", "kernels", seqscale::Backend::kCpu,
//                  [](seqscale::BenchState& s) {
//     const auto rows = s.get_int("rows"), cols = s.get_int("cols");
//     s.add_cost(layernorm_fwd_cost(rows, cols, s.get_dtype("dtype")));  // the model's declaration
//     auto* x = s.alloc_array<float>(rows * cols); ...
//     s.check([&](void*) { layernorm_fwd_cpu(...); },                 // one untimed call,
//             [&] { return compare_values("y", y, reference_y, tol); });  // then the check
//     s.exec([&](void*) { layernorm_fwd_cpu(...); });                   // only then timing
//   });
//
// Check before time (llm.c's dev/cuda): a body with a CPU reference makes one checked call
// before warm-up. A failed check makes the point `failed` ("check failed: ...") and it is
// not timed; with check_only (`seqscale bench --check-only`) exec() returns at once, so a
// matrix tells in seconds which kernels are right on a new device.
//
// CUDA benchmarks live in .cu files (seqscale_cuda) and receive the cudaStream_t as void*.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/check_result.h"
#include "workloads/dtype.h"
#include "workloads/step_program.h"

namespace seqscale {

enum class Backend : std::uint8_t { kCpu, kCuda };
std::string_view backend_name(Backend b);

// Thrown by BenchState::alloc when the device (or the CPU budget) is exhausted: the point
// is recorded as `oom`, a data point and not a crash.
class OutOfMemory : public std::runtime_error {
 public:
  explicit OutOfMemory(const std::string& what) : std::runtime_error(what) {}
};
// Thrown by BenchState::skip: the point is recorded as `skipped` with the reason.
class SkipPoint : public std::runtime_error {
 public:
  explicit SkipPoint(const std::string& what) : std::runtime_error(what) {}
};
// Thrown by BenchState::check when the output disagrees with the reference: `failed`.
class CheckFailed : public std::runtime_error {
 public:
  explicit CheckFailed(const std::string& what) : std::runtime_error(what) {}
};

class BenchState {
 public:
  virtual ~BenchState() = default;

  // The point's parameters (matrix axes). Missing or mistyped -> ConfigError naming it.
  const nlohmann::json& params() const { return params_; }
  std::int64_t get_int(const std::string& name) const;
  double get_float(const std::string& name) const;
  std::string get_string(const std::string& name) const;
  DType get_dtype(const std::string& name = "dtype") const;
  bool has(const std::string& name) const { return params_.contains(name); }

  virtual Backend backend() const = 0;

  // Declared work: the harness derives TFLOP/s and GB/s and the fraction of the floors.
  void add_cost(const KernelCost& c) { cost_.flops += c.flops; cost_.bytes += c.bytes; cost_.workspace_bytes += c.workspace_bytes; }
  const KernelCost& cost() const { return cost_; }

  // Memory the benchmark owns for the point: device memory on kCuda (stream-ordered pool,
  // high-water mark), tracked host memory on kCpu. Throws OutOfMemory. Freed after the point.
  virtual void* alloc(std::size_t bytes) = 0;
  // Gives memory back before the point ends (the step executor replays frees); the peak
  // keeps its high-water mark.
  virtual void release(void* p) = 0;
  template <typename T> T* alloc_array(std::int64_t count) {
    return static_cast<T*>(alloc(static_cast<std::size_t>(count) * sizeof(T)));
  }
  // Uniform random values in [lo, hi) written in `dtype` (fp32/fp16/bf16) wherever `p` lives.
  virtual void fill_random(void* p, std::int64_t count, DType dtype, std::uint64_t seed,
                           float lo = -1.f, float hi = 1.f) = 0;
  virtual void fill_value(void* p, std::int64_t count, DType dtype, float value) = 0;

  // One untimed call of `fn` (synchronised), then `compare` (which reads the outputs back
  // with read_back and compares them with the CPU reference). Records the result; throws
  // CheckFailed when it is not ok. Does nothing where nothing executes (the model's side)
  // or when the matrix turned checks off. Call before exec(), once per point.
  void check(const std::function<void(void* stream)>& fn, const std::function<CheckResult()>& compare);
  // True when check() will run: bodies gather the reference's inputs (read_back) only then.
  bool checks() const { return executes() && check_enabled_; }
  // A body that cannot check this point (no reference at this size) says why; with
  // check-only the point is then `skipped` with that reason.
  void no_check(const std::string& why) { no_check_reason_ = why; }
  const std::string& no_check_reason() const { return no_check_reason_; }
  // One untimed call that prepares inputs (e.g. the forward whose statistics a backward
  // benchmark reads); runs only where the body executes.
  void setup_call(const std::function<void(void* stream)>& fn) {
    if (executes()) run_once(fn);
  }
  // `count` values of `dtype` at `p` (device or host memory of this backend) as doubles.
  virtual std::vector<double> read_back(const void* p, std::int64_t count, DType dtype) = 0;
  const std::optional<CheckResult>& check_result() const { return check_; }
  // Rows `rows` (each `row_elems` values of `dtype`, row-major from `p`) back to back, as
  // floats: the values a kernel saw, exactly (fp16/bf16 widen to float losslessly). One
  // read when `rows` is every row, one per row otherwise.
  std::vector<float> read_rows(const void* p, const std::vector<std::int64_t>& rows, std::int64_t row_elems,
                               DType dtype);

  // Runs `fn` (given the CUDA stream on kCuda, nullptr on kCpu) under the harness's timing
  // rules and records the samples. Call once per point. Returns at once with check_only.
  void exec(const std::function<void(void* stream)>& fn) {
    if (!check_only_) exec_timed(fn);
  }
  bool check_only() const { return check_only_; }
  // "cupti", "events" (CUDA events: CUPTI off, unavailable, or it missed a sample) or
  // "wall" (CPU clock); empty before exec.
  const std::string& timing() const { return timing_name_; }
  // False on the model's side (`bench --source model`): exec() does not run the body's
  // work, so a body whose memory lives inside exec declares it another way (replaying its
  // StepProgram's memory events through alloc/release).
  virtual bool executes() const { return true; }

  // For suites that must keep their own time (collectives: barrier, then max over ranks,
  // nccl-tests method): hand the harness the per-iteration seconds instead of calling exec.
  void record_samples(std::vector<double> seconds) { samples_ = std::move(seconds); }
  // ...and their own check (collectives: the untimed op's output against the expected data).
  void record_check(const CheckResult& r) {
    if (checks()) check_ = r;
  }

  // Extra per-point numbers (e.g. busbw_GBps, wrong_elements); written under "metrics".
  void set_metric(const std::string& name, double value) { metrics_[name] = value; }
  // The whole StepProgram the body runs, when it has one: the model's side then prices its
  // ComputeOps one by one (each kernel at its calibrated efficiency) instead of the
  // declared total at one efficiency. Ignored by a measured run.
  void declare_program(std::shared_ptr<const StepProgram> program) { program_ = std::move(program); }
  const StepProgram* declared_program() const { return program_.get(); }
  [[noreturn]] void skip(const std::string& why) { throw SkipPoint(why); }

  // Harness side.
  explicit BenchState(nlohmann::json params) : params_(std::move(params)) {}
  void set_check_mode(bool enabled, bool check_only) {
    check_enabled_ = enabled;
    check_only_ = check_only;
  }
  const std::map<std::string, double>& metrics() const { return metrics_; }
  const std::vector<double>& samples() const { return samples_; }
  // Called after the body returns (its locals destroyed): a backend raises here what it
  // could not throw earlier (a failed free inside a destructor), so the point fails.
  virtual void finish() {}
  // Memory numbers of the point (peak_bytes, baseline_bytes, ...), filled by the backend.
  virtual void memory_metrics(std::map<std::string, double>& out) const = 0;

 protected:
  // The backend's timing loop (warm-up, samples, stop rule) behind exec().
  virtual void exec_timed(const std::function<void(void* stream)>& fn) = 0;
  // One call of `fn`, finished (the stream synchronised) when it returns.
  virtual void run_once(const std::function<void(void* stream)>& fn) = 0;

  nlohmann::json params_;
  KernelCost cost_;
  std::map<std::string, double> metrics_;
  std::shared_ptr<const StepProgram> program_;
  std::vector<double> samples_;
  std::string timing_name_;
  std::optional<CheckResult> check_;
  std::string no_check_reason_;
  bool check_enabled_ = true;
  bool check_only_ = false;
};

struct BenchDef {
  std::string name;    // "layernorm_fwd", "evoformer_attn_fused_fwd", "all_reduce": what it measures in workloads/op_kinds.h
  std::string suite;   // "kernels", "collectives", "steps"
  Backend backend = Backend::kCpu;
  std::function<void(BenchState&)> body;
};

bool register_bench(BenchDef def);
// A plug-in whose benchmarks follow another registry (the collectives suite: one benchmark
// per registered collective spec) registers a function that calls register_bench for each;
// it runs once, at the first registered_benches() or find_bench(), after every static
// registration (SEQSCALE_BENCH_SOURCE).
bool register_bench_source(void (*add)());
const std::vector<BenchDef>& registered_benches();
const BenchDef* find_bench(const std::string& name, Backend backend);

}  // namespace seqscale

#define SEQSCALE_BENCH(id, name, suite, backend, ...) \
  static const bool seqscale_bench_##id = ::seqscale::register_bench({name, suite, backend, __VA_ARGS__})
#define SEQSCALE_BENCH_SOURCE(id, add) \
  static const bool seqscale_bench_source_##id = ::seqscale::register_bench_source(add)
