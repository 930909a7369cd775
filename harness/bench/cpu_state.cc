// CPU backend of BenchState: tracked host allocations (peak = high-water mark of the
// bytes the benchmark holds) and wall-clock timing with batching for short calls.
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>
#include <unordered_map>

#include "harness/bench/execute.h"
#include "harness/bench/sample_stop.h"
#include "common/half.h"

namespace seqscale {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

class CpuBenchState final : public BenchState {
 public:
  CpuBenchState(const MatrixPoint& point) : BenchState(point.params), timing_(point.timing) {
    if (const char* b = std::getenv("SEQSCALE_CPU_MEMORY_BUDGET"); b && *b) budget_bytes_ = std::atoll(b);
  }
  ~CpuBenchState() override {
    for (const auto& [p, bytes] : blocks_) std::free(p);
  }

  Backend backend() const override { return Backend::kCpu; }

  void* alloc(std::size_t bytes) override {
    if (budget_bytes_ > 0 && current_bytes_ + static_cast<std::int64_t>(bytes) > budget_bytes_) {
      throw OutOfMemory("cpu allocation of " + std::to_string(bytes) + " B exceeds the budget of " +
                        std::to_string(budget_bytes_) + " B");
    }
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    if (!p) throw OutOfMemory("host allocation of " + std::to_string(bytes) + " B failed");
    blocks_[p] = static_cast<std::int64_t>(bytes);
    current_bytes_ += static_cast<std::int64_t>(bytes);
    peak_bytes_ = std::max(peak_bytes_, current_bytes_);
    return p;
  }

  void release(void* p) override {
    auto it = blocks_.find(p);
    if (it == blocks_.end()) return;
    current_bytes_ -= it->second;
    std::free(p);
    blocks_.erase(it);
  }

  void fill_random(void* p, std::int64_t count, DType dtype, std::uint64_t seed, float lo, float hi) override {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> dist(lo, hi);
    for (std::int64_t i = 0; i < count; ++i) store(p, i, dtype, dist(rng));
  }

  void fill_value(void* p, std::int64_t count, DType dtype, float value) override {
    for (std::int64_t i = 0; i < count; ++i) store(p, i, dtype, value);
  }

  // Test-only hook (SEQSCALE_TEST_PLANT_WRONG_OUTPUT=1): the first value read back is off
  // by one, as a wrong kernel's output would be, so tests can see a check fail end to end.
  std::vector<double> read_back(const void* p, std::int64_t count, DType dtype) override {
    std::vector<double> out(static_cast<std::size_t>(count));
    for (std::int64_t i = 0; i < count; ++i) out[static_cast<std::size_t>(i)] = load(p, i, dtype);
    if (const char* plant = std::getenv("SEQSCALE_TEST_PLANT_WRONG_OUTPUT"); plant && *plant == '1' && count > 0) {
      if (!planted_) out[0] += 1.0;
      planted_ = true;
    }
    return out;
  }

 protected:
  void run_once(const std::function<void(void*)>& fn) override { fn(nullptr); }

  void exec_timed(const std::function<void(void*)>& fn) override {
    timing_name_ = "wall";
    const auto t0 = Clock::now();
    std::int64_t warm_calls = 0;
    do {
      fn(nullptr);
      ++warm_calls;
    } while (seconds_since(t0) < timing_.warmup_s);
    const double per_call = seconds_since(t0) / static_cast<double>(warm_calls);
    // Batch short calls so the clock's resolution and call overhead vanish in a sample.
    const auto batch = static_cast<std::int64_t>(
        std::max(1.0, std::ceil(timing_.min_sample_s / std::max(per_call, 1e-9))));
    SampleStop stop(timing_);
    while (true) {
      const auto a = Clock::now();
      for (std::int64_t k = 0; k < batch; ++k) fn(nullptr);
      const double t = seconds_since(a) / static_cast<double>(batch);
      samples_.push_back(t);
      if (stop.add(t)) break;
    }
    metrics_["calls_per_sample"] = static_cast<double>(batch);
  }


 public:
  void memory_metrics(std::map<std::string, double>& out) const override {
    out["peak_bytes"] = static_cast<double>(peak_bytes_);
    out["baseline_bytes"] = 0;
  }

 private:
  static double load(const void* p, std::int64_t i, DType dtype) {
    switch (dtype) {
      case DType::kFp32: return static_cast<const float*>(p)[i];
      case DType::kFp16: return fp16_to_float(static_cast<const std::uint16_t*>(p)[i]);
      case DType::kBf16: return bf16_to_float(static_cast<const std::uint16_t*>(p)[i]);
      case DType::kBool: return static_cast<const std::uint8_t*>(p)[i];
      case DType::kInt32: return static_cast<const std::int32_t*>(p)[i];
      case DType::kInt64: return static_cast<double>(static_cast<const std::int64_t*>(p)[i]);
    }
    return 0;
  }

  static void store(void* p, std::int64_t i, DType dtype, float v) {
    switch (dtype) {
      case DType::kFp32: static_cast<float*>(p)[i] = v; break;
      case DType::kFp16: static_cast<std::uint16_t*>(p)[i] = float_to_fp16(v); break;
      case DType::kBf16: static_cast<std::uint16_t*>(p)[i] = float_to_bf16(v); break;
      case DType::kBool: static_cast<std::uint8_t*>(p)[i] = v != 0.f; break;
      case DType::kInt32: static_cast<std::int32_t*>(p)[i] = static_cast<std::int32_t>(v); break;
      case DType::kInt64: static_cast<std::int64_t*>(p)[i] = static_cast<std::int64_t>(v); break;
    }
  }

  TimingPolicy timing_;
  std::unordered_map<void*, std::int64_t> blocks_;
  std::int64_t current_bytes_ = 0;
  std::int64_t peak_bytes_ = 0;
  std::int64_t budget_bytes_ = 0;
  bool planted_ = false;
};

}  // namespace

std::unique_ptr<BenchState> make_cpu_state(const MatrixPoint& point) {
  return std::make_unique<CpuBenchState>(point);
}

}  // namespace seqscale
