// Reads a softmax benchmark point's shape (axes B, N, H, rows, cols): shared by the CPU and
// CUDA registrations.
#pragma once
#include "harness/bench/registry.h"
#include "kernels/softmax/softmax_cost.h"

namespace seqscale {

inline SoftmaxShape softmax_shape_of(const BenchState& s) {
  SoftmaxShape sh;
  sh.batch = s.get_int("B");
  sh.n = s.get_int("N");
  sh.heads = s.get_int("H");
  sh.rows = s.get_int("rows");
  sh.cols = s.get_int("cols");
  return sh;
}

}  // namespace seqscale
