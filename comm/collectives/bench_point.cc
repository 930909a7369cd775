// One point of suite "collectives" for the harness (see bench_point.h).
#include "comm/collectives/bench_point.h"

#include <cstdlib>
#include <stdexcept>

#include "workloads/config_error.h"

namespace seqscale::comm {

bool world_crosses_nodes(int world_size) {
  auto env = [](const char* name) -> int {
    const char* v = std::getenv(name);
    return v ? std::atoi(v) : 0;
  };
  for (const char* nodes : {"SLURM_NNODES", "SLURM_JOB_NUM_NODES"})
    if (env(nodes) > 1) return true;
  for (const char* local : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"})
    if (const int n = env(local); n > 0) return n < world_size;
  return false;
}

void run_collective_bench_point(const std::string& name, BenchState& s, Communicator& c, Communicator* host,
                                BenchMemory& mem) {
  const CollectiveSpec* spec = find_collective(name);
  if (!spec) throw ConfigError("collectives: '" + name + "' is not a registered collective");
  ReduceOp op = ReduceOp::kSum;
  if (s.has("op") && !parse_reduce_op(s.get_string("op"), &op))
    throw ConfigError("benchmark parameter 'op' is '" + s.get_string("op") + "', must be sum, prod, max, min or avg");
  CollBenchOptions o;
  if (s.has("iters")) o.iters = static_cast<int>(s.get_int("iters"));
  if (s.has("warmup")) o.warmup = static_cast<int>(s.get_int("warmup"));
  o.check = s.checks();
  if (s.check_only()) {  // the checked op is all that counts
    o.iters = 1;
    o.warmup = 0;
  }
  const int root = s.has("root") ? static_cast<int>(s.get_int("root")) : 0;
  const CollBenchRow r = bench_collective(c, host, mem, *spec, s.get_int("bytes"), s.get_dtype("dtype"), op, root, o);
  if (r.count == 0) s.skip("size below one element per rank");
  s.add_cost(KernelCost{0, static_cast<double>(r.size_bytes), 0});
  if (o.check) {
    CheckResult check;
    check.ok = r.wrong == 0;
    check.checked_elements = r.count;
    check.worst = std::to_string(r.wrong) + " wrong elements (nccl-tests' rule: exact, or within the dtype's rounding of the reduction)";
    s.record_check(check);
  }
  if (!s.check_only()) s.record_samples(r.samples_s);
  s.set_metric("algbw_GBps", r.algbw_GBps);
  s.set_metric("busbw_GBps", r.busbw_GBps);
  s.set_metric("time_us", r.time_us);
  s.set_metric("wrong_elements", static_cast<double>(r.wrong));
  s.set_metric("nranks", r.nranks);
  s.set_metric("crosses_nodes", world_crosses_nodes(c.size()) ? 1 : 0);  // the tier seqscale calibrate fits
  if (r.wrong > 0) throw CheckFailed("check failed: " + name + ": " + std::to_string(r.wrong) + " wrong elements");
}

}  // namespace seqscale::comm
