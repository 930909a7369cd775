// Kernel-time samples from CUPTI activity records: per sample, the span from the first
// kernel's start to the last kernel's end on the device, free of launch overhead and of the
// event-record gaps. Off when the matrix says "cupti": false or SEQSCALE_NO_CUPTI=1 (so
// nsys / ncu can own CUPTI), or when CUPTI is unavailable: then CUDA events are the timer.
#pragma once
#include <cstdint>
#include <string>

namespace seqscale {

class CuptiKernelTimer {
 public:
  // Returns false (and why) when CUPTI cannot be used in this process.
  bool start(std::string* why);
  void stop();
  void begin_sample();
  // Flushes the activity buffers and returns the sample's kernel span in seconds, or a
  // negative value when no kernel record arrived.
  double end_sample();
  bool active() const { return active_; }

 private:
  bool active_ = false;
};

}  // namespace seqscale
