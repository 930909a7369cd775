// CUDA benchmarks of the vocabulary cross-entropy, chunked (GEMMs through cuBLAS plus the
// row kernels; axes tokens, hidden, vocab, vocab_chunk, dtype) and over given logits (the
// materialised path; axes tokens, vocab, dtype). FLOPs and bytes declared by
// cross_entropy_cost.h; the workspace is allocated from the point's pool, so its peak is
// measured. Each point is checked against the double reference before it is timed.
// Run: seqscale bench --matrix transformer_kernels --filter 'cross_entropy_.*/cuda/' --out DIR
#include <cublas_v2.h>

#include "common/check_cublas.h"
#include "kernels/cross_entropy/cross_entropy.cuh"
#include "kernels/cross_entropy/cross_entropy_bench.h"
#include "kernels/cross_entropy/cross_entropy_cost.h"

namespace seqscale {
namespace {

// Created on first use: a body touches the device only inside its calls.
class LazyCublas {
 public:
  LazyCublas() = default;
  LazyCublas(const LazyCublas&) = delete;
  LazyCublas& operator=(const LazyCublas&) = delete;
  ~LazyCublas() {
    if (h_) (void)cublasDestroy(h_);
  }
  cublasHandle_t get() {
    if (!h_) CUBLAS_CHECK(cublasCreate(&h_));
    return h_;
  }

 private:
  cublasHandle_t h_ = nullptr;
};

struct DeviceHead {
  void* hidden;
  void* weight;
  std::int32_t* targets;
};

DeviceHead alloc_head(BenchState& s, const CrossEntropyShape& sh, DType io) {
  const auto es = static_cast<std::size_t>(dtype_bytes(io));
  DeviceHead h{s.alloc(es * static_cast<std::size_t>(sh.tokens * sh.hidden)),
               s.alloc(es * static_cast<std::size_t>(sh.vocab * sh.hidden)), s.alloc_array<std::int32_t>(sh.tokens)};
  const float a = cross_entropy_weight_bound(sh.hidden);
  s.fill_random(h.hidden, sh.tokens * sh.hidden, io, 1);
  s.fill_random(h.weight, sh.vocab * sh.hidden, io, 2, -a, a);
  fill_cross_entropy_targets(s, h.targets, sh.tokens, sh.vocab, 3);
  return h;
}

SEQSCALE_BENCH(cross_entropy_fwd_cuda, "cross_entropy_fwd", "kernels", Backend::kCuda, [](BenchState& s) {
  CrossEntropyFwdParams p;
  p.shape = cross_entropy_shape_of(s);
  p.io = s.get_dtype();
  const KernelCost cost = cross_entropy_fwd_cost(p.shape, p.io);
  s.add_cost(cost);
  const DeviceHead h = alloc_head(s, p.shape, p.io);
  p.hidden = h.hidden;
  p.weight = h.weight;
  p.targets = h.targets;
  p.loss = s.alloc_array<float>(p.shape.tokens);
  p.lse = s.alloc_array<float>(p.shape.tokens);
  p.workspace = s.alloc(static_cast<std::size_t>(cost.workspace_bytes));
  LazyCublas cublas;
  const auto run = [&](void* stream) {
    p.cublas = cublas.get();
    cross_entropy_fwd(p, static_cast<cudaStream_t>(stream));
  };
  s.check(run, [&] { return check_cross_entropy_fwd(s, p.shape, p.hidden, p.weight, p.targets, p.loss, p.lse, p.io); });
  s.exec(run);
});

SEQSCALE_BENCH(cross_entropy_bwd_cuda, "cross_entropy_bwd", "kernels", Backend::kCuda, [](BenchState& s) {
  CrossEntropyBwdParams p;
  p.shape = cross_entropy_shape_of(s);
  p.io = s.get_dtype();
  const KernelCost cost = cross_entropy_bwd_cost(p.shape, p.io);
  s.add_cost(cost);
  const DeviceHead h = alloc_head(s, p.shape, p.io);
  p.hidden = h.hidden;
  p.weight = h.weight;
  p.targets = h.targets;
  float* lse = s.alloc_array<float>(p.shape.tokens);
  float* dloss = s.alloc_array<float>(p.shape.tokens);
  s.fill_random(dloss, p.shape.tokens, DType::kFp32, 4, 0.5f, 1.5f);
  p.lse = lse;
  p.dloss = dloss;
  LazyCublas cublas;
  {  // lse comes from the forward, as in training; its loss and workspace are gone before the backward's
    CrossEntropyFwdParams f;
    f.hidden = p.hidden;
    f.weight = p.weight;
    f.targets = p.targets;
    f.lse = lse;
    f.loss = s.alloc_array<float>(p.shape.tokens);
    f.workspace = s.alloc(static_cast<std::size_t>(cross_entropy_fwd_cost(p.shape, p.io).workspace_bytes));
    f.shape = p.shape;
    f.io = p.io;
    s.setup_call([&](void* stream) {
      f.cublas = cublas.get();
      cross_entropy_fwd(f, static_cast<cudaStream_t>(stream));
    });
    s.release(f.workspace);
    s.release(f.loss);
  }
  p.dhidden = s.alloc(static_cast<std::size_t>(dtype_bytes(p.io) * p.shape.tokens * p.shape.hidden));
  p.dweight = s.alloc_array<float>(p.shape.vocab * p.shape.hidden);
  p.workspace = s.alloc(static_cast<std::size_t>(cost.workspace_bytes));
  const auto run = [&](void* stream) {
    p.cublas = cublas.get();
    cross_entropy_bwd(p, static_cast<cudaStream_t>(stream));
  };
  s.check(run, [&] {
    return check_cross_entropy_bwd(s, p.shape, p.hidden, p.weight, p.targets, p.dloss, p.dhidden, p.dweight, p.io);
  });
  s.exec(run);
});

SEQSCALE_BENCH(cross_entropy_logits_fwd_cuda, "cross_entropy_logits_fwd", "kernels", Backend::kCuda, [](BenchState& s) {
  CrossEntropyLogitsFwdParams p;
  p.tokens = s.get_int("tokens");
  p.vocab = s.get_int("vocab");
  p.io = s.get_dtype();
  s.add_cost(cross_entropy_logits_fwd_cost(p.tokens, p.vocab, p.io));
  void* logits = s.alloc(static_cast<std::size_t>(dtype_bytes(p.io) * p.tokens * p.vocab));
  auto* targets = s.alloc_array<std::int32_t>(p.tokens);
  s.fill_random(logits, p.tokens * p.vocab, p.io, 1, -4.f, 4.f);
  fill_cross_entropy_targets(s, targets, p.tokens, p.vocab, 3);
  p.logits = logits;
  p.targets = targets;
  p.loss = s.alloc_array<float>(p.tokens);
  p.lse = s.alloc_array<float>(p.tokens);
  const auto run = [&](void* stream) { cross_entropy_logits_fwd(p, static_cast<cudaStream_t>(stream)); };
  s.check(run, [&] {
    return check_cross_entropy_logits_fwd(s, p.logits, p.targets, p.loss, p.lse, p.tokens, p.vocab, p.io);
  });
  s.exec(run);
});

SEQSCALE_BENCH(cross_entropy_logits_bwd_cuda, "cross_entropy_logits_bwd", "kernels", Backend::kCuda, [](BenchState& s) {
  CrossEntropyLogitsBwdParams p;
  p.tokens = s.get_int("tokens");
  p.vocab = s.get_int("vocab");
  p.io = s.get_dtype();
  s.add_cost(cross_entropy_logits_bwd_cost(p.tokens, p.vocab, p.io));
  const auto bytes = static_cast<std::size_t>(dtype_bytes(p.io) * p.tokens * p.vocab);
  void* logits = s.alloc(bytes);
  auto* targets = s.alloc_array<std::int32_t>(p.tokens);
  float* lse = s.alloc_array<float>(p.tokens);
  float* dloss = s.alloc_array<float>(p.tokens);
  s.fill_random(logits, p.tokens * p.vocab, p.io, 1, -4.f, 4.f);
  fill_cross_entropy_targets(s, targets, p.tokens, p.vocab, 3);
  s.fill_random(dloss, p.tokens, DType::kFp32, 4, 0.5f, 1.5f);
  p.logits = logits;
  p.targets = targets;
  p.lse = lse;
  p.dloss = dloss;
  p.dlogits = s.alloc(bytes);
  CrossEntropyLogitsFwdParams f;
  f.logits = logits;
  f.targets = targets;
  f.loss = static_cast<float*>(s.alloc(static_cast<std::size_t>(4 * p.tokens)));
  f.lse = lse;
  f.tokens = p.tokens;
  f.vocab = p.vocab;
  f.io = p.io;
  s.setup_call([&](void* stream) { cross_entropy_logits_fwd(f, static_cast<cudaStream_t>(stream)); });
  const auto run = [&](void* stream) { cross_entropy_logits_bwd(p, static_cast<cudaStream_t>(stream)); };
  s.check(run, [&] {
    return check_cross_entropy_logits_bwd(s, p.logits, p.targets, p.dloss, p.dlogits, p.tokens, p.vocab, p.io);
  });
  s.exec(run);
});

}  // namespace
}  // namespace seqscale
