// CUDA benchmarks of the device ceilings: cuBLASLt GEMM (the bf16 FLOP rate every compute
// efficiency is measured against) and device-to-device copy (the bandwidth ceiling).
#include "harness/bench/registry.h"
#include "common/check_cuda.h"
#include "kernels/gemm/gemm_bench.h"
#include "kernels/gemm/gemm.cuh"
#include "kernels/gemm/gemm_cost.h"

namespace seqscale {
namespace {

SEQSCALE_BENCH(gemm_cuda, "gemm", "kernels", Backend::kCuda, [](BenchState& s) {
  const std::int64_t m = s.get_int("m"), n = s.get_int("n"), k = s.get_int("k");
  const DType io = s.get_dtype();
  const KernelCost cost = gemm_cost(m, n, k, io);
  s.add_cost(cost);
  const auto es = static_cast<std::size_t>(dtype_bytes(io));
  GemmParams p;
  p.m = m;
  p.n = n;
  p.k = k;
  p.io = io;
  p.a = s.alloc(es * static_cast<std::size_t>(m * k));
  p.b = s.alloc(es * static_cast<std::size_t>(k * n));
  p.c = s.alloc(es * static_cast<std::size_t>(m * n));
  void* workspace = s.alloc(static_cast<std::size_t>(cost.workspace_bytes));
  s.fill_random(const_cast<void*>(p.a), m * k, io, 1);
  s.fill_random(const_cast<void*>(p.b), k * n, io, 2);
  std::unique_ptr<GemmRunner> runner;  // created on first call: the device is touched only there
  const auto run = [&](void* stream) {
    if (!runner) runner = std::make_unique<GemmRunner>(workspace, static_cast<std::size_t>(cost.workspace_bytes));
    runner->run(p, static_cast<cudaStream_t>(stream));
  };
  s.check(run, [&] { return check_gemm(s, p.a, p.b, p.c, m, n, k, io); });
  s.exec(run);
});

SEQSCALE_BENCH(copy_cuda, "copy", "kernels", Backend::kCuda, [](BenchState& s) {
  const std::int64_t bytes = s.get_int("bytes");
  s.add_cost(copy_cost(bytes));
  void* src = s.alloc(static_cast<std::size_t>(bytes));
  void* dst = s.alloc(static_cast<std::size_t>(bytes));
  s.fill_random(src, bytes, DType::kBool, 7, 0.f, 255.f);  // a byte pattern a stale copy would not match
  const auto run = [&](void* stream) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<std::size_t>(bytes), cudaMemcpyDeviceToDevice,
                               static_cast<cudaStream_t>(stream)));
  };
  // The copy is exact: its check compares a sample of bytes of dst with src, tolerance 0.
  s.check(run, [&] {
    const std::int64_t row = 4096, rows = bytes / row;
    const auto picked = sample_indices(rows, 256);
    CheckResult r = compare_values("dst", s.read_rows(dst, picked, row, DType::kBool), s.read_rows(src, picked, row, DType::kBool),
                                   CheckTolerance{});
    if (static_cast<std::int64_t>(picked.size()) < rows) r.scope = std::to_string(picked.size()) + " of " + std::to_string(rows) + " 4 KiB blocks";
    return r;
  });
  s.exec(run);
});

}  // namespace
}  // namespace seqscale
