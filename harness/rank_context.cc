#include "harness/rank_context.h"

#include <cstdlib>

namespace seqscale {
namespace {
RankContext* (*g_factory)() = nullptr;

int env_int(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : 0;
}
}  // namespace

void install_rank_context_factory(RankContext* (*factory)()) { g_factory = factory; }

bool launched_multi_rank() {
  return env_int("OMPI_COMM_WORLD_SIZE") > 1 || env_int("PMI_SIZE") > 1 || env_int("PMIX_SIZE") > 1 ||
         (std::getenv("SLURM_STEP_ID") && env_int("SLURM_NTASKS") > 1);
}

RankContext* rank_context() {
  static RankContext* ctx = (launched_multi_rank() && g_factory) ? g_factory() : nullptr;
  return ctx;
}

}  // namespace seqscale
