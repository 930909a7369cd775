#include "harness/bench/execute.h"

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <thread>

#include "harness/nvtx.h"
#include "workloads/config_error.h"

namespace seqscale {
namespace {

StateFactory& cuda_factory() {
  static StateFactory f;
  return f;
}

}  // namespace

void install_cuda_state_factory(StateFactory factory) { cuda_factory() = std::move(factory); }

PointResult execute_point(const MatrixPoint& point) {
  const auto t0 = std::chrono::steady_clock::now();
  PointResult r = result_for(point);
  const Backend backend = point.backend == "cuda" ? Backend::kCuda : Backend::kCpu;
  const BenchDef* def = find_bench(point.bench, backend);
  std::unique_ptr<BenchState> state;
  try {
    if (!def) {
      throw SkipPoint("benchmark '" + point.bench + "' has no " + point.backend +
                      " implementation in this build");
    }
    if (backend == Backend::kCuda) {
      std::string why;
      if (!cuda_factory()) throw SkipPoint("no CUDA device: seqscale was built without CUDA");
      state = cuda_factory()(point);  // throws SkipPoint without a device
    } else {
      state = make_cpu_state(point);
    }
    state->set_check_mode(point.timing.check, point.timing.check_only);
    NvtxRange range(point.id);  // the whole point: setup, check, warm-up, samples
    def->body(*state);
    state->finish();
    if (point.timing.check_only) {
      // Nothing is timed: the point is ok when its check passed, skipped when it has none.
      if (!state->check_result()) {
        throw SkipPoint("check-only: " + (state->no_check_reason().empty() ? std::string("this benchmark has no CPU reference to check against")
                                                                          : state->no_check_reason()));
      }
    } else if (state->samples().empty()) {
      throw std::runtime_error("benchmark recorded no samples (exec not called)");
    }
    r.status = PointStatus::kOk;
  } catch (const OutOfMemory& e) {
    r.status = PointStatus::kOom;
    r.reason = e.what();
  } catch (const SkipPoint& e) {
    r.status = PointStatus::kSkipped;
    r.reason = e.what();
  } catch (const std::exception& e) {
    r.status = PointStatus::kFailed;
    r.reason = e.what();
  }
  if (state) {
    if (r.status == PointStatus::kOk) {
      r.samples_s = state->samples();
      r.timing = state->timing();
    }
    r.check = state->check_result();
    r.declared_flops = state->cost().flops;
    r.declared_bytes = state->cost().bytes;
    for (const auto& [k, v] : state->metrics()) r.metrics[k] = v;
    state->memory_metrics(r.metrics);
  }
  finalize_point(r);
  r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

void register_selftest_benches() {
  static const bool once = [] {
    register_bench({"selftest", "selftest", Backend::kCpu, [](BenchState& s) {
      const std::string mode = s.get_string("mode");
      const std::int64_t n = s.has("n") ? s.get_int("n") : 1024;
      auto* buf = s.alloc_array<float>(n);
      s.fill_value(buf, n, DType::kFp32, 1.f);
      s.add_cost({static_cast<double>(n), 8.0 * static_cast<double>(n), 0});
      if (mode == "oom") throw OutOfMemory("planted out-of-memory");
      if (mode == "fail") throw std::runtime_error("planted failure");
      if (mode == "crash") std::raise(SIGSEGV);
      if (mode == "abort") std::abort();
      if (mode == "hang") std::this_thread::sleep_for(std::chrono::hours(1));
      if (s.has("sleep_ms")) std::this_thread::sleep_for(std::chrono::milliseconds(s.get_int("sleep_ms")));
      if (mode != "ok") throw ConfigError("selftest: mode must be ok|oom|fail|crash|hang|abort");
      s.exec([&](void*) {
        float acc = 0;
        for (std::int64_t i = 0; i < n; ++i) acc += buf[i];
        buf[0] = acc * 1e-30f;
      });
    }});
    return true;
  }();
  (void)once;
}

}  // namespace seqscale

namespace seqscale {
namespace {
const bool selftest_registered = (register_selftest_benches(), true);
}  // namespace
}  // namespace seqscale
