// Registry, input pattern and checking rules shared by the collective specs.
#include "comm/collectives/collective_spec.h"

#include <cmath>

namespace seqscale::comm {
namespace {
std::vector<CollectiveSpec>& registry() {
  static std::vector<CollectiveSpec> all;
  return all;
}

class CombinedWork final : public Work {
 public:
  explicit CombinedWork(std::vector<WorkPtr> parts) : parts_(std::move(parts)) {}
  void wait() override {
    for (auto& p : parts_) p->wait();
  }
  bool test() override {
    bool done = true;
    for (auto& p : parts_) done = p->test() && done;
    return done;
  }

 private:
  std::vector<WorkPtr> parts_;
};
}  // namespace

bool register_collective(const CollectiveSpec& spec) {
  registry().push_back(spec);
  return true;
}
const std::vector<CollectiveSpec>& registered_collectives() { return registry(); }
const CollectiveSpec* find_collective(std::string_view name) {
  for (const auto& s : registry())
    if (s.name == name) return &s;
  return nullptr;
}

double collective_input(int rank, std::int64_t i, ReduceOp op) {
  if (op == ReduceOp::kProd) return (rank + i) % 3 == 0 ? 2.0 : 1.0;  // product <= 2^8 over 8 ranks
  return static_cast<double>((rank * 5 + i * 3) % 9) - 4.0;           // [-4, 4]: sums exact in fp16
}

double collective_reduce(std::int64_t i, int n, ReduceOp op, DType t) {
  double acc = collective_input(0, i, op);
  for (int r = 1; r < n; ++r) {
    const double x = collective_input(r, i, op);
    switch (op) {
      case ReduceOp::kSum:
      case ReduceOp::kAvg: acc += x; break;
      case ReduceOp::kProd: acc *= x; break;
      case ReduceOp::kMax: acc = std::max(acc, x); break;
      case ReduceOp::kMin: acc = std::min(acc, x); break;
    }
  }
  if (op == ReduceOp::kAvg) {
    acc /= n;
    if (t == DType::kInt32 || t == DType::kInt64) acc = std::trunc(acc);
  }
  return acc;
}

bool collective_close(double got, double want, DType t, ReduceOp op) {
  if (op != ReduceOp::kAvg) return got == want;
  double eps = 1e-6;
  if (t == DType::kFp16) eps = 1.0 / 1024;
  if (t == DType::kBf16) eps = 1.0 / 128;
  if (t == DType::kInt32 || t == DType::kInt64) eps = 1.0;
  return std::abs(got - want) <= eps * (1.0 + std::abs(want));
}

WorkPtr combine_work(std::vector<WorkPtr> parts) { return std::make_unique<CombinedWork>(std::move(parts)); }

}  // namespace seqscale::comm
