// nccl-tests-style collective benchmark on the Communicator (see collective_bench.h).
#include "comm/collectives/collective_bench.h"

#include "harness/nvtx.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "comm/dtype_convert.h"

namespace seqscale::comm {

void* HostMemory::alloc(std::size_t bytes) {
  void* p = std::malloc(bytes ? bytes : 1);
  if (!p) throw std::bad_alloc();
  return p;
}
void HostMemory::release(void* p) { std::free(p); }
void HostMemory::upload(void* dst, const void* host, std::size_t bytes) { std::memcpy(dst, host, bytes); }
void HostMemory::download(void* host, const void* src, std::size_t bytes) { std::memcpy(host, src, bytes); }

namespace {
struct Buffer {
  BenchMemory& mem;
  void* p;
  Buffer(BenchMemory& m, std::size_t bytes) : mem(m), p(m.alloc(bytes)) {}
  ~Buffer() { mem.release(p); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
};
}  // namespace

CollBenchRow bench_collective(Communicator& c, Communicator* host, BenchMemory& mem, const CollectiveSpec& spec,
                              std::int64_t size_bytes, DType t, ReduceOp op, int root, const CollBenchOptions& o) {
  CollBenchRow row;
  row.collective = std::string(spec.name);
  row.dtype = t;
  row.op = op;
  row.root = root;
  const int n = c.group_size(o.group), me = c.group_rank(o.group);
  row.nranks = n;
  const CollectiveCounts counts = spec.counts(size_bytes, t, n);
  row.count = std::max(counts.send, counts.recv);
  const std::int64_t tb = dtype_bytes(t);
  // The size actually moved after rounding to whole elements per rank: the larger of the
  // two buffers (workloads/collective_sizes.h).
  row.size_bytes = row.count * tb;
  if (row.count == 0) {
    row.wrong = -1;
    return row;
  }
  const std::size_t send_bytes = static_cast<std::size_t>(counts.send * tb), recv_bytes = static_cast<std::size_t>(counts.recv * tb);
  Buffer send(mem, send_bytes), recv(mem, recv_bytes);
  std::vector<unsigned char> hs(send_bytes), hr(recv_bytes);
  for (std::int64_t i = 0; i < counts.send; ++i) store_from_double(hs.data(), i, t, collective_input(me, i, op));
  for (std::int64_t i = 0; i < counts.recv; ++i)  // broadcast: every rank seeds its own input
    store_from_double(hr.data(), i, t, spec.kind == Collective::kBroadcast ? collective_input(me, i, op) : -99.0);
  mem.upload(send.p, hs.data(), send_bytes);
  mem.upload(recv.p, hr.data(), recv_bytes);

  // The untimed, checked op.
  spec.launch(c, o.group, send.p, recv.p, counts, t, op, root)->wait();
  std::int64_t wrong = 0;
  if (o.check) {
    mem.download(hr.data(), recv.p, recv_bytes);
    for (std::int64_t i = 0; i < counts.recv; ++i)
      if (!collective_close(load_as_double(hr.data(), i, t), spec.expected(i, me, n, op, root, counts), t, op)) ++wrong;
  }
  for (int i = 0; i < o.warmup; ++i) spec.launch(c, o.group, send.p, recv.p, counts, t, op, root)->wait();
  c.barrier(o.group);
  std::vector<std::int64_t> ns(static_cast<std::size_t>(o.iters));
  using clock = std::chrono::steady_clock;
  // One NVTX range over the timed iterations, named after the collective and size, so a
  // trace of a collectives run reads like its table.
  const NvtxRange range(std::string(spec.name) + " " + std::to_string(size_bytes) + " B");
  for (int i = 0; i < o.iters; ++i) {
    const auto t0 = clock::now();
    spec.launch(c, o.group, send.p, recv.p, counts, t, op, root)->wait();
    ns[i] = std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - t0).count();
  }
  if (host && host->size() > 1) {
    host->all_reduce(GroupKind::kWorld, ns.data(), ns.data(), o.iters, DType::kInt64, ReduceOp::kMax);
    host->all_reduce(GroupKind::kWorld, &wrong, &wrong, 1, DType::kInt64, ReduceOp::kSum);
  }
  double total = 0;
  for (auto v : ns) {
    row.samples_s.push_back(static_cast<double>(v) * 1e-9);
    total += static_cast<double>(v) * 1e-9;
  }
  const double time_s = total / o.iters;
  row.time_us = time_s * 1e6;
  row.algbw_GBps = static_cast<double>(row.size_bytes) / time_s / 1e9;
  row.busbw_GBps = row.algbw_GBps * busbw_factor(spec.kind, n);
  row.wrong = o.check ? wrong : -1;
  return row;
}

std::vector<std::int64_t> size_sweep(std::int64_t min_bytes, std::int64_t max_bytes, double factor) {
  if (min_bytes <= 0 || max_bytes < min_bytes || factor <= 1.0)
    throw std::invalid_argument("collectives: sizes need 0 < min <= max and factor > 1");
  std::vector<std::int64_t> out;
  for (double s = static_cast<double>(min_bytes); s <= static_cast<double>(max_bytes) * (1 + 1e-12); s *= factor)
    out.push_back(static_cast<std::int64_t>(s + 0.5));
  return out;
}

void print_header(std::ostream& os, const std::string& title) {
  os << "# " << title << "\n";
  char line[200];
  std::snprintf(line, sizeof line, "#%12s %12s %6s %6s %5s %11s %12s %12s %8s\n", "size(B)", "count", "type", "redop",
                "root", "time(us)", "algbw(GB/s)", "busbw(GB/s)", "#wrong");
  os << line;
}

void print_row(std::ostream& os, const CollBenchRow& r) {
  char line[200];
  const std::string wrong = r.wrong < 0 ? "N/A" : std::to_string(r.wrong);
  std::snprintf(line, sizeof line, " %12lld %12lld %6s %6s %5d %11.2f %12.3f %12.3f %8s\n",
                static_cast<long long>(r.size_bytes), static_cast<long long>(r.count),
                std::string(dtype_name(r.dtype)).c_str(), std::string(reduce_op_name(r.op)).c_str(), r.root, r.time_us,
                r.algbw_GBps, r.busbw_GBps, wrong.c_str());
  os << line;
}

nlohmann::json to_json(const CollBenchRow& r) {
  return {{"collective", r.collective}, {"size_bytes", r.size_bytes}, {"count", r.count},
          {"dtype", std::string(dtype_name(r.dtype))}, {"op", std::string(reduce_op_name(r.op))},
          {"root", r.root}, {"nranks", r.nranks}, {"time_us", r.time_us}, {"algbw_GBps", r.algbw_GBps},
          {"busbw_GBps", r.busbw_GBps}, {"wrong", r.wrong}, {"samples_s", r.samples_s}};
}

}  // namespace seqscale::comm
