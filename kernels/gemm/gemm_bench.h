// What the CPU and CUDA GEMM benchmarks share: the check of C = A B (row-major, [M,K] x
// [K,N]) against the double reference (gemm_ref.h) on an even sample of C's rows, as many
// as fit the check budget (each row costs N x K multiply-adds; B is read whole).
#pragma once
#include <string>
#include <vector>

#include "harness/bench/registry.h"
#include "kernels/gemm/gemm_ref.h"

namespace seqscale {

inline CheckResult check_gemm(BenchState& s, const void* a, const void* b, const void* c, std::int64_t m, std::int64_t n,
                              std::int64_t k, DType io) {
  const auto rows = sample_indices(m, slices_within_budget(m, static_cast<double>(n) * static_cast<double>(k)));
  const std::vector<float> got = s.read_rows(c, rows, n, io);
  const std::vector<float> a_rows = s.read_rows(a, rows, k, io);
  std::vector<std::int64_t> all_k(static_cast<std::size_t>(k));
  for (std::int64_t i = 0; i < k; ++i) all_k[static_cast<std::size_t>(i)] = i;
  const std::vector<float> b_all = s.read_rows(b, all_k, n, io);
  const auto r_count = static_cast<std::int64_t>(rows.size());
  std::vector<double> want(static_cast<std::size_t>(r_count * n));
  gemm_ref(a_rows.data(), b_all.data(), want.data(), r_count, n, k);
  CheckResult r = compare_values("c", got, want, gemm_tolerance(io, k));
  if (r_count < m) r.scope = std::to_string(r_count) + " of " + std::to_string(m) + " rows of C";
  return r;
}

}  // namespace seqscale
