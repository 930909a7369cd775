// Kernel-time samples from CUPTI activity records: per sample, the span from the first
// kernel's start to the last kernel's end on the device, free of launch overhead and of the
// event-record gaps. Off when the matrix says "cupti": false or SEQSCALE_NO_CUPTI=1 (so
// nsys / ncu can own CUPTI), or when CUPTI is unavailable: then CUDA events are the timer.
//
// A sample counts only records whose start is at or after the CUPTI timestamp taken in
// begin_sample, so a late buffer from an earlier sample (CUPTI's worker thread delivers
// full buffers whenever it likes) cannot stretch the span. end_sample flushes with
// CUPTI_ACTIVITY_FLAG_FLUSH_FORCED, so a half-full buffer is delivered too; a sample with
// no kernel record (memcpy-only work) returns a negative span and the caller falls back to
// its event time for the whole point.
#pragma once
#include <cstdint>
#include <string>

namespace seqscale {

class CuptiKernelTimer {
 public:
  CuptiKernelTimer() = default;
  // Stops CUPTI if still on (a body that threw mid-sample): never throws.
  ~CuptiKernelTimer() { stop(); }
  CuptiKernelTimer(const CuptiKernelTimer&) = delete;
  CuptiKernelTimer& operator=(const CuptiKernelTimer&) = delete;

  // Returns false (and why) when CUPTI cannot be used in this process.
  bool start(std::string* why);
  // Force-flushes (so no buffer stays with CUPTI between points) and disables tracing.
  void stop() noexcept;
  // Call with the stream idle: drops earlier records and sets the sample's start marker.
  void begin_sample();
  // Call with the sample's work finished (stream synchronised): force-flushes and returns
  // the sample's kernel span in seconds, or a negative value when no kernel record of the
  // sample arrived.
  double end_sample();
  bool active() const { return active_; }

 private:
  bool active_ = false;
};

}  // namespace seqscale
