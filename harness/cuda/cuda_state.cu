// CUDA backend of BenchState.
//
// Timing: warm-up, then per sample an L2 flush (memset of 2x the L2 size, outside the
// timed region), CUDA events around the call and, when CUPTI is on, the sample's kernel
// span from CUPTI activity records; stop when the relative noise is below max_noise (after
// min_samples) or at the cap; NVTX ranges per phase. A point's samples all come from one
// timer: CUPTI's when it saw kernels in every sample (timing "cupti"), else the events'
// (timing "events", metric cupti_fallback_samples = how many samples CUPTI missed, e.g.
// every sample of a memcpy-only benchmark). Mixing the two in one point would add the
// launch and event gaps to some samples only, which reads as noise.
//
// Memory: every benchmark allocation (alloc) comes from a stream-ordered pool created for
// the point (cudaMemPoolCreate) whose UsedMemHigh is peak_bytes, with nothing subtracted.
// Libraries allocate elsewhere: cuBLAS >= 12.2 takes its workspace with cudaMallocAsync
// from the device's current pool, so its memory shows apart, as library_pool_peak_bytes
// (that pool's high-water during the point). The L2-flush buffer is a plain cudaMalloc made
// before the body runs (2x L2: 100 MiB on H100), in neither number; if it does not fit the
// point is oom. baseline_bytes is the device memory in use before the point (context,
// cuBLAS, NCCL, other processes). Both pools keep freed memory (release threshold max), so
// no timed region waits on the OS; the point's pool is destroyed with the state.
//
// Errors: CUDA_CHECK throws LibraryError with the CUDA error string, which execute_point
// records as the point's reason. release() and the destructor never throw: release logs
// the first failed free to stderr and the next harness call on this state throws it; the
// destructor checks nothing (after a sticky error every call returns it again). The worker
// process is replaced after a failed CUDA point (harness/isolation.cc), so a sticky error
// never reaches the next point.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "harness/bench/execute.h"
#include "harness/bench/sample_stop.h"
#include "harness/bench/stats.h"
#include "harness/clock_state.h"
#include "harness/cuda/cupti_timer.h"
#include "harness/gpu_runtime.h"
#include "harness/nvtx.h"
#include "common/check_cuda.h"
#include "common/half.h"

namespace seqscale {
namespace {

__device__ __forceinline__ float hash_uniform(std::uint64_t seed, std::int64_t i, float lo, float hi) {
  std::uint64_t z = seed + 0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(i + 1);  // splitmix64
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return lo + (hi - lo) * static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
}

template <typename T> __device__ __forceinline__ T cast_from(float v) { return static_cast<T>(v); }
template <> __device__ __forceinline__ __half cast_from(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 cast_from(float v) { return __float2bfloat16_rn(v); }

template <typename T>
__global__ void fill_kernel(T* p, std::int64_t n, std::uint64_t seed, float lo, float hi, bool random) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    p[i] = cast_from<T>(random ? hash_uniform(seed, i, lo, hi) : lo);
  }
}

template <typename T>
void launch_fill(void* p, std::int64_t n, std::uint64_t seed, float lo, float hi, bool random, cudaStream_t s) {
  if (n == 0) return;
  const auto blocks = static_cast<unsigned>(std::min<std::int64_t>((n + 255) / 256, 65535));
  fill_kernel<T><<<blocks, 256, 0, s>>>(static_cast<T*>(p), n, seed, lo, hi, random);
  CUDA_CHECK_LAUNCH();
}

double host_value(const unsigned char* raw, std::int64_t i, DType dtype) {
  switch (dtype) {
    case DType::kFp32: return reinterpret_cast<const float*>(raw)[i];
    case DType::kFp16: return fp16_to_float(reinterpret_cast<const std::uint16_t*>(raw)[i]);
    case DType::kBf16: return bf16_to_float(reinterpret_cast<const std::uint16_t*>(raw)[i]);
    case DType::kBool: return raw[i];
    case DType::kInt32: return reinterpret_cast<const std::int32_t*>(raw)[i];
    case DType::kInt64: return static_cast<double>(reinterpret_cast<const std::int64_t*>(raw)[i]);
  }
  return 0;
}

class CudaBenchState final : public BenchState {
 public:
  explicit CudaBenchState(const MatrixPoint& point) : BenchState(point.params), timing_(point.timing) {
    std::string why;
    if (!gpu_available(&why)) throw SkipPoint(why);
    try {
      open();
    } catch (...) {
      close();  // a constructor that throws gets no destructor: give back what open() took
      throw;
    }
  }

  ~CudaBenchState() override { close(); }
  CudaBenchState(const CudaBenchState&) = delete;
  CudaBenchState& operator=(const CudaBenchState&) = delete;

  Backend backend() const override { return Backend::kCuda; }

  // Zero bytes gives nullptr (cudaMalloc's convention; the pool API leaves it unspecified).
  void* alloc(std::size_t bytes) override {
    throw_deferred_error();
    if (bytes == 0) return nullptr;
    void* p = nullptr;
    const cudaError_t err = cudaMallocFromPoolAsync(&p, bytes, pool_, stream_);
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();  // out-of-memory is not sticky: clear it and record the point as oom
      throw OutOfMemory("cudaMallocFromPoolAsync of " + std::to_string(bytes) + " B: out of device memory");
    }
    CUDA_CHECK(err);
    blocks_.push_back(p);
    return p;
  }

  // Never throws: it runs from destructors (EvoformerBlockCudaOps frees through it while a
  // CUDA_CHECK exception unwinds). A failed free is logged and thrown by the next harness
  // call on this state (alloc, fill, read_back, the next call of the timed function).
  void release(void* p) noexcept override {
    // Newest first: frees mostly mirror allocations (the step executor replays a stack).
    auto it = std::find(blocks_.rbegin(), blocks_.rend(), p);
    if (it == blocks_.rend()) return;
    blocks_.erase(std::next(it).base());
    const cudaError_t err = cudaFreeAsync(p, stream_);
    if (err == cudaSuccess) return;
    (void)cudaGetLastError();  // a non-sticky error must not resurface in an unrelated check
    if (failed_releases_++ == 0) {
      deferred_error_ = err;
      std::fprintf(stderr, "seqscale: cudaFreeAsync in release failed: %s\n", cudaGetErrorString(err));
    }
  }

  void fill_random(void* p, std::int64_t n, DType dtype, std::uint64_t seed, float lo, float hi) override {
    fill(p, n, dtype, seed, lo, hi, true);
  }
  void fill_value(void* p, std::int64_t n, DType dtype, float value) override {
    fill(p, n, dtype, 0, value, value, false);
  }

  std::vector<double> read_back(const void* p, std::int64_t n, DType dtype) override {
    throw_deferred_error();
    std::vector<unsigned char> raw(static_cast<std::size_t>(n * dtype_bytes(dtype)));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    if (!raw.empty()) CUDA_CHECK(cudaMemcpy(raw.data(), p, raw.size(), cudaMemcpyDeviceToHost));
    std::vector<double> out(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) out[static_cast<std::size_t>(i)] = host_value(raw.data(), i, dtype);
    return out;
  }

  // The body has returned: a free that failed in one of its destructors fails the point.
  void finish() override {
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    throw_deferred_error();
  }

  void memory_metrics(std::map<std::string, double>& out) const override {
    // Read even after a failure (an oom point's peak says how far it got); a query that
    // fails (sticky error) leaves the number out rather than writing a wrong one.
    std::uint64_t high = 0;
    if (pool_ && cudaMemPoolGetAttribute(pool_, cudaMemPoolAttrUsedMemHigh, &high) == cudaSuccess) {
      out["peak_bytes"] = static_cast<double>(high);
    }
    if (library_pool_ && cudaMemPoolGetAttribute(library_pool_, cudaMemPoolAttrUsedMemHigh, &high) == cudaSuccess) {
      out["library_pool_peak_bytes"] = static_cast<double>(high);
    }
    out["baseline_bytes"] = baseline_bytes_;
  }

 protected:
  void run_once(const std::function<void(void*)>& fn) override {
    throw_deferred_error();
    fn(static_cast<void*>(stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    throw_deferred_error();
  }

  void exec_timed(const std::function<void(void*)>& fn) override {
    using Clock = std::chrono::steady_clock;
    throw_deferred_error();
    void* stream = static_cast<void*>(stream_);
    char bus[32] = {};
    int device = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    if (cudaDeviceGetPCIBusId(bus, sizeof(bus), device) == cudaSuccess) pci_bus_id_ = bus;
    {
      NvtxRange range("warmup");
      const auto w0 = Clock::now();
      do {
        fn(stream);
        CUDA_CHECK(cudaStreamSynchronize(stream_));
        throw_deferred_error();
      } while (std::chrono::duration<double>(Clock::now() - w0).count() < timing_.warmup_s);
    }
    NvtxRange range("samples");
    CuptiKernelTimer cupti;  // its destructor turns CUPTI off if fn throws
    std::string no_cupti = "disabled by the matrix";
    if (timing_.cupti) cupti.start(&no_cupti);
    const bool cupti_on = cupti.active();
    // Both timers per sample. The stop rule follows CUPTI while it has seen every sample
    // and the events from the first miss on (both rules started together, so the time cap
    // means the same in either).
    std::vector<double> event_s, cupti_s;
    std::int64_t missed = 0;
    SampleStop stop_events(timing_), stop_cupti(timing_);
    while (true) {
      if (flush_) CUDA_CHECK(cudaMemsetAsync(flush_, static_cast<int>(event_s.size() & 0xff), flush_bytes_, stream_));
      if (cupti_on) {
        CUDA_CHECK(cudaStreamSynchronize(stream_));
        cupti.begin_sample();
      }
      CUDA_CHECK(cudaEventRecord(start_, stream_));
      fn(stream);
      CUDA_CHECK(cudaEventRecord(stop_, stream_));
      CUDA_CHECK(cudaEventSynchronize(stop_));
      throw_deferred_error();
      float ms = 0;
      CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
      const double ev = ms * 1e-3;
      event_s.push_back(ev);
      const double span = cupti_on ? cupti.end_sample() : -1;
      if (span > 0) {
        cupti_s.push_back(span);
      } else {
        ++missed;
      }
      bool done = stop_events.add(ev);
      if (missed == 0) done = stop_cupti.add(span);
      if (done) break;
    }
    // Clocks after the samples: a throttled run (power or thermal cap) shows here.
    for (const auto& [k, v] : read_gpu_clock_state(pci_bus_id_)) metrics_[k] = v;
    cupti.stop();
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    const bool all_cupti = cupti_on && missed == 0;
    samples_ = all_cupti ? cupti_s : event_s;
    timing_name_ = all_cupti ? "cupti" : "events";
    metrics_["timer_cupti"] = all_cupti ? 1 : 0;  // 1: samples_s are CUPTI spans
    if (cupti_on) metrics_["cupti_fallback_samples"] = static_cast<double>(missed);  // absent: CUPTI off
    metrics_["l2_flushed"] = flush_ ? 1 : 0;
    metrics_["event_median_s"] = summarize(event_s).median;  // kept beside the CUPTI timing
  }

 private:
  void open() {
    int device = 0;
    if (const char* d = std::getenv("SEQSCALE_DEVICE"); d && *d) device = std::atoi(d);
    CUDA_CHECK(cudaSetDevice(device));
    CUDA_CHECK(cudaFree(nullptr));  // create the context now, so the baseline includes it
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreate(&start_));
    CUDA_CHECK(cudaEventCreate(&stop_));
    std::uint64_t keep = ~0ull;  // keep freed pool memory: no OS calls inside timed regions

    // The point's own pool: a new pool's high-water mark starts at zero.
    cudaMemPoolProps props{};
    props.allocType = cudaMemAllocationTypePinned;
    props.handleTypes = cudaMemHandleTypeNone;
    props.location.type = cudaMemLocationTypeDevice;
    props.location.id = device;
    CUDA_CHECK(cudaMemPoolCreate(&pool_, &props));
    CUDA_CHECK(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &keep));

    // The pool libraries' cudaMallocAsync draws from (the device's current pool, the
    // default one unless someone set another); its high-water mark resets to zero, the
    // only value the driver accepts.
    CUDA_CHECK(cudaDeviceGetMemPool(&library_pool_, device));
    CUDA_CHECK(cudaMemPoolSetAttribute(library_pool_, cudaMemPoolAttrReleaseThreshold, &keep));
    std::uint64_t zero = 0;
    CUDA_CHECK(cudaMemPoolSetAttribute(library_pool_, cudaMemPoolAttrUsedMemHigh, &zero));

    size_t free_b = 0, total_b = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    baseline_bytes_ = static_cast<double>(total_b - free_b);

    // The L2-flush buffer, before the body's setup and outside both pools: the body's own
    // peak stays exact whether it comes before exec (the layer benches' model side replays
    // its whole program first) or inside it. Not taken where nothing is timed.
    int l2_bytes = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&l2_bytes, cudaDevAttrL2CacheSize, device));
    if (timing_.flush_l2 && !timing_.check_only && l2_bytes > 0) {
      flush_bytes_ = 2 * static_cast<std::size_t>(l2_bytes);
      const cudaError_t err = cudaMalloc(&flush_, flush_bytes_);
      if (err == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();
        flush_ = nullptr;
        throw OutOfMemory("cudaMalloc of the " + std::to_string(flush_bytes_) +
                          " B L2-flush buffer: out of device memory");
      }
      CUDA_CHECK(err);
    }
  }

  // Gives everything back; never throws. Nothing is checked: after a sticky error (an
  // illegal address) every call returns that error again, and the point's reason already
  // carries it from the CUDA_CHECK that saw it first.
  void close() noexcept {
    for (void* p : blocks_) (void)cudaFreeAsync(p, stream_);
    blocks_.clear();
    if (stream_) (void)cudaStreamSynchronize(stream_);
    if (pool_) (void)cudaMemPoolDestroy(pool_);  // its memory goes back to the device
    if (flush_) (void)cudaFree(flush_);
    if (start_) (void)cudaEventDestroy(start_);
    if (stop_) (void)cudaEventDestroy(stop_);
    if (stream_) (void)cudaStreamDestroy(stream_);
    if (library_pool_) (void)cudaMemPoolTrimTo(library_pool_, 0);  // what libraries freed
    if (failed_releases_ > 1) std::fprintf(stderr, "seqscale: %d frees failed in all\n", failed_releases_);
    (void)cudaGetLastError();  // a non-sticky teardown error must not fail the next point's first check
    pool_ = library_pool_ = nullptr;
    flush_ = nullptr;
    start_ = stop_ = nullptr;
    stream_ = nullptr;
  }

  // The first failed free (see release), as the CUDA_CHECK it could not throw.
  void throw_deferred_error() const {
    if (deferred_error_ != cudaSuccess) {
      throw LibraryError("CUDA", "cudaFreeAsync(p, stream) in an earlier release", __FILE__, __LINE__,
                         cudaGetErrorString(deferred_error_));
    }
  }

  void fill(void* p, std::int64_t n, DType dtype, std::uint64_t seed, float lo, float hi, bool random) {
    throw_deferred_error();
    switch (dtype) {
      case DType::kFp32: launch_fill<float>(p, n, seed, lo, hi, random, stream_); break;
      case DType::kFp16: launch_fill<__half>(p, n, seed, lo, hi, random, stream_); break;
      case DType::kBf16: launch_fill<__nv_bfloat16>(p, n, seed, lo, hi, random, stream_); break;
      case DType::kBool: launch_fill<std::uint8_t>(p, n, seed, lo, hi, random, stream_); break;
      case DType::kInt32: launch_fill<std::int32_t>(p, n, seed, lo, hi, random, stream_); break;
      case DType::kInt64: launch_fill<std::int64_t>(p, n, seed, lo, hi, random, stream_); break;
    }
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  TimingPolicy timing_;
  cudaStream_t stream_ = nullptr;
  cudaMemPool_t pool_ = nullptr;          // the benchmark's allocations: peak_bytes
  cudaMemPool_t library_pool_ = nullptr;  // the device's current pool: library_pool_peak_bytes
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
  std::vector<void*> blocks_;             // live allocations from pool_
  void* flush_ = nullptr;
  std::size_t flush_bytes_ = 0;
  double baseline_bytes_ = 0;
  std::string pci_bus_id_;
  cudaError_t deferred_error_ = cudaSuccess;  // the first failed free
  int failed_releases_ = 0;
};

const bool installed = [] {
  install_cuda_state_factory([](const MatrixPoint& p) -> std::unique_ptr<BenchState> {
    return std::make_unique<CudaBenchState>(p);
  });
  return true;
}();

}  // namespace
}  // namespace seqscale
