#include "harness/cuda/cupti_timer.h"

#include <cstdlib>

#if SEQSCALE_HAVE_CUPTI
#include <cupti.h>
#endif

namespace seqscale {

#if SEQSCALE_HAVE_CUPTI
namespace {

constexpr size_t kBufferBytes = 1 << 20;
// Filled by the completion callback (called from cuptiActivityFlushAll on this thread).
std::uint64_t g_first_start = 0;
std::uint64_t g_last_end = 0;

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
  *size = kBufferBytes;
  *max_records = 0;
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  CUpti_Activity* record = nullptr;
  while (cuptiActivityGetNextRecord(buffer, valid, &record) == CUPTI_SUCCESS) {
    if (record->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL || record->kind == CUPTI_ACTIVITY_KIND_KERNEL) {
      const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(record);
      if (k->start == 0 && k->end == 0) continue;
      if (g_first_start == 0 || k->start < g_first_start) g_first_start = k->start;
      if (k->end > g_last_end) g_last_end = k->end;
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

void CuptiKernelTimer::stop() {
  if (!active_) return;
  cuptiActivityFlushAll(0);
  cuptiActivityDisable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
  active_ = false;
}

void CuptiKernelTimer::begin_sample() {
  cuptiActivityFlushAll(0);  // drop records of anything before the sample (the L2 flush)
  g_first_start = g_last_end = 0;
}

double CuptiKernelTimer::end_sample() {
  cuptiActivityFlushAll(0);
  if (g_first_start == 0 || g_last_end <= g_first_start) return -1;
  return static_cast<double>(g_last_end - g_first_start) * 1e-9;
}

#else

bool CuptiKernelTimer::start(std::string* why) {
  *why = "built without CUPTI";
  return false;
}
void CuptiKernelTimer::stop() {}
void CuptiKernelTimer::begin_sample() {}
double CuptiKernelTimer::end_sample() { return -1; }

#endif

}  // namespace seqscale
