// Registry, the executed == emitted check and the shared host math of comm/strategies
// (the free functions, and host_strategy_math() over them).
#include "comm/strategies/strategy.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "comm/str_cat.h"

namespace seqscale::comm {
namespace {
std::vector<StrategyDef>& registry() {
  static std::vector<StrategyDef> all;
  return all;
}
}  // namespace

bool register_strategy(StrategyDef def) {
  registry().push_back(std::move(def));
  return true;
}
const std::vector<StrategyDef>& registered_strategies() { return registry(); }
const StrategyDef* find_strategy(const std::string& name) {
  for (const auto& d : registry())
    if (d.name == name) return &d;
  return nullptr;
}

std::string describe(const CommOp& op) {
  return str_cat({collective_name(op.collective), " on ", group_name(op.group), " (", std::to_string(op.group_size),
                  " ranks), ", std::to_string(op.bytes), " B, ", phase_name(op.phase)});
}

namespace {
// Records `comm`'s calls into `ops` from a forward-phase start until it goes out of scope,
// however run() ends.
class Recording {
 public:
  Recording(Communicator& comm, std::vector<CommOp>* ops) : comm_(comm) {
    comm_.set_phase(Phase::kForward);
    comm_.record_into(ops);
  }
  ~Recording() {
    comm_.record_into(nullptr);
    comm_.set_phase(Phase::kForward);
  }
  Recording(const Recording&) = delete;
  Recording& operator=(const Recording&) = delete;

 private:
  Communicator& comm_;
};
}  // namespace

Tensors run_checked(const StrategyDef& def, Communicator& comm, StrategyMath& math, const RankLayout& layout,
                    std::vector<CommOp>* executed_out) {
  std::vector<CommOp> executed;
  Tensors out;
  {
    const Recording recording(comm, &executed);
    out = def.run(comm, math, layout);
  }
  if (executed_out) *executed_out = executed;
  const CommOps emitted = def.emit(layout, comm.rank());
  auto same = [](const CommOp& a, const CommOp& b) {
    return a.collective == b.collective && a.group == b.group && a.group_size == b.group_size && a.bytes == b.bytes &&
           a.phase == b.phase;
  };
  for (std::size_t i = 0; i < std::max(executed.size(), emitted.size()); ++i) {
    if (i < executed.size() && i < emitted.size() && same(executed[i], emitted[i])) continue;
    auto at = [i](const std::vector<CommOp>& ops) {
      return i < ops.size() ? describe(ops[i]) : str_cat({"no op (", std::to_string(ops.size()), " in all)"});
    };
    const std::string got = at(executed), want = at(emitted);
    throw ExecutedNotEmitted(str_cat({def.name, " (rank ", std::to_string(comm.rank()), "): op ", std::to_string(i),
                                      " executed ", got, "; emitted ", want}));
  }
  return out;
}

TransformerSpec toy_transformer(std::int64_t hidden, std::int64_t heads) {
  TransformerSpec t;
  t.layers = 1;
  t.hidden = hidden;
  t.heads = heads;
  t.kv_heads = heads;
  t.ffn_hidden = 2 * hidden;
  t.dtype = DType::kFp32;
  return t;
}

Plan toy_plan(const RankLayout& layout) {
  Plan p;
  const ParallelDims& d = layout.dims();
  p.tp = d.tp, p.pp = d.pp, p.dp = d.dp, p.ep = d.ep;
  return p;
}

std::vector<float> random_vector(std::int64_t n, std::uint64_t seed, float scale) {
  std::vector<float> out(static_cast<std::size_t>(n));
  std::uint64_t s = seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
  for (auto& x : out) {  // splitmix64
    s += 0x9E3779B97F4A7C15ull;
    std::uint64_t z = s;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    x = scale * (static_cast<float>(z >> 40) / static_cast<float>(1ull << 24) * 2.f - 1.f);
  }
  return out;
}

void matmul(const float* a, const float* b, float* c, int m, int k, int n, bool accumulate) {
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double s = accumulate ? c[i * n + j] : 0.0;
      for (int p = 0; p < k; ++p) s += static_cast<double>(a[i * k + p]) * b[p * n + j];
      c[i * n + j] = static_cast<float>(s);
    }
}

void matmul_tn(const float* a, const float* b, float* c, int m, int k, int n, bool accumulate) {
  for (int i = 0; i < k; ++i)
    for (int j = 0; j < n; ++j) {
      double s = accumulate ? c[i * n + j] : 0.0;
      for (int p = 0; p < m; ++p) s += static_cast<double>(a[p * k + i]) * b[p * n + j];
      c[i * n + j] = static_cast<float>(s);
    }
}

void matmul_nt(const float* a, const float* b, float* c, int m, int n, int k, bool accumulate) {
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < k; ++j) {
      double s = accumulate ? c[i * k + j] : 0.0;
      for (int p = 0; p < n; ++p) s += static_cast<double>(a[i * n + p]) * b[j * n + p];
      c[i * k + j] = static_cast<float>(s);
    }
}

std::vector<float> slice_cols(const std::vector<float>& a, int rows, int cols, int c0, int c1) {
  std::vector<float> out;
  out.reserve(static_cast<std::size_t>(rows) * (c1 - c0));
  for (int r = 0; r < rows; ++r)
    for (int c = c0; c < c1; ++c) out.push_back(a[static_cast<std::size_t>(r) * cols + c]);
  return out;
}

std::vector<float> slice_rows(const std::vector<float>& a, int cols, int r0, int r1) {
  return {a.begin() + static_cast<std::ptrdiff_t>(r0) * cols, a.begin() + static_cast<std::ptrdiff_t>(r1) * cols};
}

namespace {
// Softmax probabilities of one query row against all keys.
void attention_probs(const float* q, const float* k, int lk, int d, int ld, std::vector<double>& p) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  double mx = -1e300;
  for (int j = 0; j < lk; ++j) {
    double s = 0;
    for (int t = 0; t < d; ++t) s += static_cast<double>(q[t]) * k[j * ld + t];
    p[j] = s * scale;
    mx = std::max(mx, p[j]);
  }
  double sum = 0;
  for (int j = 0; j < lk; ++j) sum += (p[j] = std::exp(p[j] - mx));
  for (int j = 0; j < lk; ++j) p[j] /= sum;
}
}  // namespace

void attention_fwd(const float* q, const float* k, const float* v, float* o, int lq, int lk, int d, int ld) {
  std::vector<double> p(lk);
  for (int i = 0; i < lq; ++i) {
    attention_probs(q + i * ld, k, lk, d, ld, p);
    for (int t = 0; t < d; ++t) {
      double s = 0;
      for (int j = 0; j < lk; ++j) s += p[j] * v[j * ld + t];
      o[i * ld + t] = static_cast<float>(s);
    }
  }
}

void attention_bwd(const float* q, const float* k, const float* v, const float* dout, float* dq, float* dk,
                   float* dv, int lq, int lk, int d, int ld) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  std::vector<double> p(lk), dp(lk);
  for (int i = 0; i < lq; ++i) {
    attention_probs(q + i * ld, k, lk, d, ld, p);
    double rowdot = 0;
    for (int j = 0; j < lk; ++j) {
      double s = 0;
      for (int t = 0; t < d; ++t) s += static_cast<double>(dout[i * ld + t]) * v[j * ld + t];
      dp[j] = s;
      rowdot += s * p[j];
    }
    for (int j = 0; j < lk; ++j) {
      const double ds = p[j] * (dp[j] - rowdot) * scale;
      for (int t = 0; t < d; ++t) {
        dq[i * ld + t] += static_cast<float>(ds * k[j * ld + t]);
        dk[j * ld + t] += static_cast<float>(ds * q[i * ld + t]);
        dv[j * ld + t] += static_cast<float>(p[j] * dout[i * ld + t]);
      }
    }
  }
}

void adam_step(float* param, const float* grad, float* m, float* v, std::int64_t n, int step, const AdamConfig& c) {
  const double bc1 = 1.0 - std::pow(c.beta1, step), bc2 = 1.0 - std::pow(c.beta2, step);
  for (std::int64_t i = 0; i < n; ++i) {
    m[i] = c.beta1 * m[i] + (1 - c.beta1) * grad[i];
    v[i] = c.beta2 * v[i] + (1 - c.beta2) * grad[i] * grad[i];
    const double mh = m[i] / bc1, vh = v[i] / bc2;
    param[i] -= static_cast<float>(c.lr * mh / (std::sqrt(vh) + c.eps));
  }
}

namespace {
// Member names hide the free functions: qualified calls below.
class HostStrategyMath final : public StrategyMath {
 public:
  void matmul(const float* a, const float* b, float* c, int m, int k, int n, bool acc) override {
    comm::matmul(a, b, c, m, k, n, acc);
  }
  void matmul_tn(const float* a, const float* b, float* c, int m, int k, int n, bool acc) override {
    comm::matmul_tn(a, b, c, m, k, n, acc);
  }
  void matmul_nt(const float* a, const float* b, float* c, int m, int n, int k, bool acc) override {
    comm::matmul_nt(a, b, c, m, n, k, acc);
  }
  void attention_fwd(const float* q, const float* k, const float* v, float* o, int lq, int lk, int d,
                     int ld) override {
    comm::attention_fwd(q, k, v, o, lq, lk, d, ld);
  }
  void attention_bwd(const float* q, const float* k, const float* v, const float* dout, float* dq, float* dk,
                     float* dv, int lq, int lk, int d, int ld) override {
    comm::attention_bwd(q, k, v, dout, dq, dk, dv, lq, lk, d, ld);
  }
  void adam_step(float* param, const float* grad, float* m, float* v, std::int64_t n, int step,
                 const AdamConfig& c) override {
    comm::adam_step(param, grad, m, v, n, step, c);
  }
};
}  // namespace

StrategyMath& host_strategy_math() {
  static HostStrategyMath math;  // stateless: safe to share between threads
  return math;
}

}  // namespace seqscale::comm
