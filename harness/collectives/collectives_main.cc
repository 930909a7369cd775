// seqscale_collectives: the collective benchmark as a standalone MPI program, printing an
// nccl-tests-like table and optionally results-schema JSON. Run under mpirun / srun:
//   mpirun -np 4 seqscale_collectives -b 8 -e 64M -f 4 -c all_reduce -d fp32 -o sum
//   mpirun -np 8 seqscale_collectives -c all -d all -o all --results out/coll.json
//   mpirun -np 1 seqscale_collectives --backend nccl -b 1G -e 1G      (CUDA + NCCL builds)
// Flags (nccl-tests names): -b min size, -e max size, -f factor (K/M/G suffixes),
// -c collective|all, -d dtype|all, -o op|all, -r root, -n iters, -w warm-ups,
// -k 0 to skip the check; --backend mpi|nccl; --json FILE (rows); --results FILE
// (results schema, suite "collectives"). Exit status 1 when any element is wrong.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "comm/collectives/bench_point.h"
#include "comm/collectives/collective_bench.h"
#include "comm/mpi/mpi_communicator.h"
#include "harness/results/results.h"
#include "workloads/config_error.h"
#include "comm/nccl/nccl_communicator.h"

namespace {
using namespace seqscale;
using namespace seqscale::comm;

std::int64_t parse_size(const std::string& s) {
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  const std::string suffix = end ? std::string(end) : "";
  if (suffix == "K" || suffix == "k") v *= 1024;
  else if (suffix == "M" || suffix == "m") v *= 1024.0 * 1024;
  else if (suffix == "G" || suffix == "g") v *= 1024.0 * 1024 * 1024;
  else if (!suffix.empty() || end == s.c_str()) throw std::invalid_argument("size '" + s + "'");
  return static_cast<std::int64_t>(v);
}

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "seqscale_collectives: %s\n", msg.c_str());
  std::exit(2);
}

struct Args {
  std::int64_t min_bytes = 8, max_bytes = 8 << 20;
  double factor = 2;
  std::string collective = "all", dtype = "fp32", op = "sum", backend = "mpi", json, results;
  int root = 0;
  CollBenchOptions bench;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) usage_error("flag " + f + " needs a value");
      return argv[++i];
    };
    if (f == "-b") a.min_bytes = parse_size(val());
    else if (f == "-e") a.max_bytes = parse_size(val());
    else if (f == "-f") a.factor = std::stod(val());
    else if (f == "-c") a.collective = val();
    else if (f == "-d") a.dtype = val();
    else if (f == "-o") a.op = val();
    else if (f == "-r") a.root = std::stoi(val());
    else if (f == "-n") a.bench.iters = std::stoi(val());
    else if (f == "-w") a.bench.warmup = std::stoi(val());
    else if (f == "-k") a.bench.check = std::stoi(val()) != 0;
    else if (f == "--backend") a.backend = val();
    else if (f == "--json") a.json = val();
    else if (f == "--results") a.results = val();
    else if (f == "-h" || f == "--help") {
      std::puts("usage: seqscale_collectives [-b MIN] [-e MAX] [-f FACTOR] [-c NAME|all] [-d DTYPE|all] [-o OP|all]\n"
                "       [-r ROOT] [-n ITERS] [-w WARMUP] [-k 0|1] [--backend mpi|nccl] [--json F] [--results F]");
      std::exit(0);
    } else {
      usage_error("unknown flag '" + f + "'");
    }
  }
  if (a.bench.iters < 1) usage_error("-n must be >= 1");
  return a;
}

std::vector<DType> dtypes(const std::string& s) {
  if (s == "all") return {DType::kFp32, DType::kFp16, DType::kBf16, DType::kInt32, DType::kInt64};
  DType t;
  if (!parse_dtype(s, &t)) usage_error("-d is '" + s + "', not a dtype");
  return {t};
}
std::vector<ReduceOp> ops(const std::string& s) {
  if (s == "all") return {ReduceOp::kSum, ReduceOp::kProd, ReduceOp::kMax, ReduceOp::kMin, ReduceOp::kAvg};
  ReduceOp op;
  if (!parse_reduce_op(s, &op)) usage_error("-o is '" + s + "', must be sum, prod, max, min, avg or all");
  return {op};
}

}  // namespace

int main(int argc, char** argv) {
  MpiSession session(&argc, &argv);
  Args a;
  try {
    a = parse(argc, argv);
  } catch (const std::exception& e) {  // std::stod / std::stoi / parse_size on a bad value
    usage_error(std::string("bad flag value: ") + e.what());
  }
  std::unique_ptr<Communicator> host;
  try {
    host = make_mpi_world_communicator();  // reads SEQSCALE_COMM_TIMEOUT_S: a bad value is a usage error
  } catch (const ConfigError& e) {
    usage_error(e.what());
  }
  const bool root_rank = host->rank() == 0;

  std::unique_ptr<Communicator> dev;
  std::unique_ptr<BenchMemory> mem;
  Communicator* comm = host.get();
  std::string backend = "cpu";
  if (a.backend == "nccl") {
#if SEQSCALE_HAVE_NCCL
    try {
      dev = make_nccl_communicator(*host, RankLayout::for_world(host->size(), {}), -1);
    } catch (const ConfigError& e) {  // SEQSCALE_NCCL_ALLTOALL
      usage_error(e.what());
    }
    mem = make_device_memory(*dev);
    comm = dev.get();
    backend = "cuda";
#else
    usage_error("--backend nccl: this build has no NCCL");
#endif
  } else if (a.backend == "mpi") {
    mem = std::make_unique<HostMemory>();
  } else {
    usage_error("--backend is '" + a.backend + "', must be mpi or nccl");
  }

  std::vector<const CollectiveSpec*> specs;
  for (const auto& s : registered_collectives())
    if (a.collective == "all" || s.name == a.collective) specs.push_back(&s);
  if (specs.empty()) usage_error("-c is '" + a.collective + "', not a collective");
  if (a.root < 0 || a.root >= host->size()) usage_error("-r must name a rank");

  ResultsFile results;
  nlohmann::json rows = nlohmann::json::array();
  if (root_rank && !a.results.empty()) {
    std::ostringstream cmd;
    for (int i = 0; i < argc; ++i) cmd << (i ? " " : "") << argv[i];
    results.run = collect_metadata(cmd.str(), backend == "cuda");
    results.run.world_size = host->size();
  }
  std::int64_t wrong_total = 0;
  for (const auto* spec : specs) {
    for (DType t : dtypes(a.dtype)) {
      for (ReduceOp op : spec->uses_op ? ops(a.op) : std::vector<ReduceOp>{ReduceOp::kSum}) {
        if (root_rank) {
          std::ostringstream title;
          title << spec->name << " on " << comm->backend() << ", " << comm->size() << " ranks";
          print_header(std::cout, title.str());
        }
        for (std::int64_t size : size_sweep(a.min_bytes, a.max_bytes, a.factor)) {
          const CollBenchRow r = bench_collective(*comm, host.get(), *mem, *spec, size, t, op, a.root, a.bench);
          if (r.count == 0) continue;
          wrong_total += std::max<std::int64_t>(r.wrong, 0);
          if (!root_rank) continue;
          print_row(std::cout, r);
          rows.push_back(to_json(r));
          if (!a.results.empty()) {
            PointResult p;
            p.suite = "collectives";
            p.bench = r.collective;
            p.backend = backend;
            p.params = {{"bytes", r.size_bytes}, {"dtype", std::string(dtype_name(t))},
                        {"op", std::string(reduce_op_name(op))}, {"nranks", r.nranks}};
            p.id = point_id(p.suite, p.bench, p.backend, p.params);
            p.samples_s = r.samples_s;
            p.declared_bytes = static_cast<double>(r.size_bytes);
            p.metrics = {{"algbw_GBps", r.algbw_GBps}, {"busbw_GBps", r.busbw_GBps}, {"time_us", r.time_us},
                         {"wrong_elements", static_cast<double>(r.wrong)}, {"nranks", r.nranks},
                         {"crosses_nodes", world_crosses_nodes(host->size()) ? 1.0 : 0.0}};
            p.status = r.wrong > 0 ? PointStatus::kFailed : PointStatus::kOk;
            if (r.wrong > 0) p.reason = std::to_string(r.wrong) + " wrong elements";
            finalize_point(p);
            results.points.push_back(std::move(p));
          }
        }
        if (root_rank) std::cout << std::flush;
      }
    }
  }
  if (root_rank) {
    std::printf("# Out of bounds values : %lld %s\n", static_cast<long long>(wrong_total), wrong_total ? "FAILED" : "OK");
    if (!a.json.empty()) std::ofstream(a.json) << rows.dump(1) << "\n";
    if (!a.results.empty()) write_results_atomic(results, a.results);
  }
  dev.reset();
  return wrong_total ? 1 : 0;
}
