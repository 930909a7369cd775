// NVTX ranges from plain C++: seqscale_cuda installs nvtxRangePushA/Pop at static-init
// time; elsewhere a range costs two null checks. Name ranges after the point and the
// phase ("forward", "backward", "optimizer", the collective) so an Nsight Systems trace
// of a run reads like the matrix.
#pragma once
#include <string>

namespace seqscale {

void install_nvtx_hooks(void (*push)(const char*), void (*pop)());

class NvtxRange {
 public:
  explicit NvtxRange(const std::string& name);
  ~NvtxRange();
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;
};

}  // namespace seqscale
