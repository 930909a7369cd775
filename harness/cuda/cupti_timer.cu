#include "harness/cuda/cupti_timer.h"

#include <cstdlib>
#include <mutex>

#if SEQSCALE_HAVE_CUPTI
#include <cupti.h>
#endif

namespace seqscale {

#if SEQSCALE_HAVE_CUPTI
namespace {

constexpr size_t kBufferBytes = 1 << 20;  // ~4k kernel records

// The current sample's window. The completion callback runs on the thread that flushes
// and, for buffers that fill up (step-sized samples launch more than 4k kernels), on
// CUPTI's worker thread: every access holds the mutex.
struct SampleWindow {
  std::mutex m;
  std::uint64_t marker = ~0ull;  // CUPTI time at begin_sample; records before it are ignored
  std::uint64_t first_start = 0;
  std::uint64_t last_end = 0;
};
SampleWindow g_window;

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
  *size = *buffer ? kBufferBytes : 0;  // size 0: CUPTI drops records rather than crash
  *max_records = 0;
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  if (buffer && valid > 0) {
    std::lock_guard<std::mutex> lock(g_window.m);
    CUpti_Activity* record = nullptr;
    while (cuptiActivityGetNextRecord(buffer, valid, &record) == CUPTI_SUCCESS) {
      if (record->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL && record->kind != CUPTI_ACTIVITY_KIND_KERNEL) continue;
      const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(record);
      // Incomplete records (a forced flush delivers them) carry zero timestamps.
      if (k->start == 0 || k->end < k->start) continue;
      // A record from before this sample's marker belongs to an earlier sample (or to the
      // L2 flush): counting it would stretch the span back in time.
      if (k->start < g_window.marker) continue;
      if (g_window.first_start == 0 || k->start < g_window.first_start) g_window.first_start = k->start;
      if (k->end > g_window.last_end) g_window.last_end = k->end;
    }
  }
  std::free(buffer);
}

}  // namespace

bool CuptiKernelTimer::start(std::string* why) {
  if (const char* off = std::getenv("SEQSCALE_NO_CUPTI"); off && *off && *off != '0') {
    *why = "SEQSCALE_NO_CUPTI is set";
    return false;
  }
  if (cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed) != CUPTI_SUCCESS ||
      cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) != CUPTI_SUCCESS) {
    *why = "CUPTI activity API unavailable (another profiler attached?)";
    return false;
  }
  active_ = true;
  return true;
}

void CuptiKernelTimer::stop() noexcept {
  if (!active_) return;
  cuptiActivityDisable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
  // Forced: a buffer with an incomplete record would otherwise stay with CUPTI, a leak
  // that grows with every point of a long-lived worker.
  cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
  active_ = false;
}

void CuptiKernelTimer::begin_sample() {
  // Deliver (and so drop) everything recorded so far, then open the window. The stream is
  // idle here, so every kernel of the sample starts after the marker: its launch alone
  // takes microseconds, far more than any skew of CUPTI's GPU-to-CPU time normalisation.
  cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
  std::uint64_t now = 0;
  if (cuptiGetTimestamp(&now) != CUPTI_SUCCESS) now = ~0ull;  // no marker: the sample falls back
  std::lock_guard<std::mutex> lock(g_window.m);
  g_window.marker = now;
  g_window.first_start = g_window.last_end = 0;
}

double CuptiKernelTimer::end_sample() {
  // Forced, so the sample's records arrive even when their buffer is not full; the caller
  // synchronised the stream, so they are complete. The flush returns once delivered.
  cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
  std::lock_guard<std::mutex> lock(g_window.m);
  if (g_window.first_start == 0 || g_window.last_end <= g_window.first_start) return -1;
  return static_cast<double>(g_window.last_end - g_window.first_start) * 1e-9;
}

#else

bool CuptiKernelTimer::start(std::string* why) {
  *why = "built without CUPTI";
  return false;
}
void CuptiKernelTimer::stop() noexcept {}
void CuptiKernelTimer::begin_sample() {}
double CuptiKernelTimer::end_sample() { return -1; }

#endif

}  // namespace seqscale
