// CUDA backend of BenchState. Timing: warm-up, then per sample an L2 flush (memset of
// 2x the L2 size, outside the timed region), CUDA events around the call, stop when the
// relative noise is below max_noise (after min_samples) or at the cap; NVTX range per
// point. Memory: every benchmark allocation comes from the device's stream-ordered pool,
// whose UsedMemHigh attribute (reset at the start of the point) is the peak; the context
// (+ cuBLAS/NCCL) footprint measured before the point is reported apart as baseline.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <nvtx3/nvToolsExt.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>

#include "harness/bench/execute.h"
#include "harness/bench/sample_stop.h"
#include "harness/cuda/cupti_timer.h"
#include "harness/bench/stats.h"
#include "harness/clock_state.h"
#include "harness/gpu_runtime.h"
#include "kernels/common/check.h"

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

class CudaBenchState final : public BenchState {
 public:
  explicit CudaBenchState(const MatrixPoint& point) : BenchState(point.params), timing_(point.timing) {
    std::string why;
    if (!gpu_available(&why)) throw SkipPoint(why);
    int device = 0;
    if (const char* d = std::getenv("SEQSCALE_DEVICE"); d && *d) device = std::atoi(d);
    CUDA_CHECK(cudaSetDevice(device));
    CUDA_CHECK(cudaFree(nullptr));  // create the context now, so the baseline includes it
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool_, device));
    std::uint64_t keep = ~0ull;  // keep freed pool memory: no OS calls inside timed regions
    CUDA_CHECK(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &keep));
    std::uint64_t zero = 0;
    CUDA_CHECK(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrUsedMemHigh, &zero));
    size_t free_b = 0, total_b = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    baseline_bytes_ = static_cast<double>(total_b - free_b);
    CUDA_CHECK(cudaDeviceGetAttribute(&l2_bytes_, cudaDevAttrL2CacheSize, device));
    CUDA_CHECK(cudaEventCreate(&start_));
    CUDA_CHECK(cudaEventCreate(&stop_));
  }

  ~CudaBenchState() override {
    for (void* p : blocks_) cudaFreeAsync(p, stream_);
    if (flush_) cudaFreeAsync(flush_, stream_);
    cudaStreamSynchronize(stream_);
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
    cudaStreamDestroy(stream_);
    cudaMemPoolTrimTo(pool_, 0);
  }

  Backend backend() const override { return Backend::kCuda; }

  void* alloc(std::size_t bytes) override {
    void* p = nullptr;
    const cudaError_t err = cudaMallocAsync(&p, bytes, stream_);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // out-of-memory is not sticky: clear it and record the point as oom
      throw OutOfMemory("cudaMallocAsync of " + std::to_string(bytes) + " B: out of device memory");
    }
    CUDA_CHECK(err);
    blocks_.push_back(p);
    return p;
  }

  void release(void* p) override {
    auto it = std::find(blocks_.begin(), blocks_.end(), p);
    if (it == blocks_.end()) return;
    CUDA_CHECK(cudaFreeAsync(p, stream_));
    blocks_.erase(it);
  }

  void fill_random(void* p, std::int64_t n, DType dtype, std::uint64_t seed, float lo, float hi) override {
    fill(p, n, dtype, seed, lo, hi, true);
  }
  void fill_value(void* p, std::int64_t n, DType dtype, float value) override {
    fill(p, n, dtype, 0, value, value, false);
  }

  void exec(const std::function<void(void*)>& fn) override {
    using Clock = std::chrono::steady_clock;
    void* stream = static_cast<void*>(stream_);
    if (timing_.flush_l2 && !flush_ && l2_bytes_ > 0) flush_ = alloc_untracked(2 * static_cast<size_t>(l2_bytes_));
    char bus[32] = {};
    int device = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    if (cudaDeviceGetPCIBusId(bus, sizeof(bus), device) == cudaSuccess) pci_bus_id_ = bus;
    nvtxRangePushA("warmup");
    const auto w0 = Clock::now();
    do {
      fn(stream);
      CUDA_CHECK(cudaStreamSynchronize(stream_));
    } while (std::chrono::duration<double>(Clock::now() - w0).count() < timing_.warmup_s);
    nvtxRangePop();
    nvtxRangePushA("samples");
    CuptiKernelTimer cupti;
    std::string no_cupti = "disabled by the matrix";
    if (timing_.cupti) cupti.start(&no_cupti);
    std::vector<double> event_samples;
    SampleStop stop(timing_);
    while (true) {
      if (flush_) CUDA_CHECK(cudaMemsetAsync(flush_, static_cast<int>(samples_.size() & 0xff), 2 * static_cast<size_t>(l2_bytes_), stream_));
      if (cupti.active()) {
        CUDA_CHECK(cudaStreamSynchronize(stream_));
        cupti.begin_sample();
      }
      CUDA_CHECK(cudaEventRecord(start_, stream_));
      fn(stream);
      CUDA_CHECK(cudaEventRecord(stop_, stream_));
      CUDA_CHECK(cudaEventSynchronize(stop_));
      float ms = 0;
      CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
      event_samples.push_back(ms * 1e-3);
      // CUPTI's kernel span when it saw the kernels; the event interval otherwise.
      const double kernel_s = cupti.active() ? cupti.end_sample() : -1;
      const double t = kernel_s > 0 ? kernel_s : ms * 1e-3;
      samples_.push_back(t);
      if (stop.add(t)) break;
    }
    // Clocks after the samples: a throttled run (power or thermal cap) shows here.
    for (const auto& [k, v] : read_gpu_clock_state(pci_bus_id_)) metrics_[k] = v;
    const bool used_cupti = cupti.active();
    cupti.stop();
    nvtxRangePop();
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    metrics_["l2_flushed"] = flush_ ? 1 : 0;
    metrics_["timer_cupti"] = used_cupti ? 1 : 0;
    metrics_["event_median_s"] = summarize(event_samples).median;  // kept beside the CUPTI timing
  }

  void memory_metrics(std::map<std::string, double>& out) const override {
    std::uint64_t high = 0;
    if (cudaMemPoolGetAttribute(pool_, cudaMemPoolAttrUsedMemHigh, &high) == cudaSuccess) {
      out["peak_bytes"] = static_cast<double>(high) - (flush_ ? 2.0 * l2_bytes_ : 0.0);
    }
    out["baseline_bytes"] = baseline_bytes_;
  }

 private:
  void* alloc_untracked(size_t bytes) {
    void* p = nullptr;
    CUDA_CHECK(cudaMallocAsync(&p, bytes, stream_));
    return p;
  }

  void fill(void* p, std::int64_t n, DType dtype, std::uint64_t seed, float lo, float hi, bool random) {
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
  cudaMemPool_t pool_ = nullptr;
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
  std::vector<void*> blocks_;
  void* flush_ = nullptr;
  int l2_bytes_ = 0;
  double baseline_bytes_ = 0;
  std::string pci_bus_id_;
};

const bool installed = [] {
  install_cuda_state_factory([](const MatrixPoint& p) -> std::unique_ptr<BenchState> {
    return std::make_unique<CudaBenchState>(p);
  });
  return true;
}();

}  // namespace
}  // namespace seqscale
