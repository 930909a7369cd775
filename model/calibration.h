// Calibration: the efficiencies that turn declared work (FLOPs, bytes, collective payloads)
// into time. `seqscale calibrate` measures them on a device and writes this file; without
// one, predict/maxseq use default_calibration(), whose numbers are documented (with their
// source) in calibration.cc and model/README.md.
//
// File format (schema "seqscale.calibration/1"):
//   {"schema": "seqscale.calibration/1", "device": "NVIDIA H100 80GB HBM3", "source": "...",
//    "default_compute_efficiency": 0.5,
//    "compute_efficiency": {"gemm": 0.81, "attention_fused": 0.55, "layernorm_fwd": 0.8},
//    "default_comm_efficiency": 0.7,
//    "comm_efficiency": {"nvlink": {"all_reduce": 0.78}, "ib": {"all_to_all": 0.6}}}
// Efficiencies are fractions of the cluster's peak (FLOP/s, HBM bytes/s, link bytes/s) in
// (0, 1]. Compute keys are kernel names or kernel kinds (see compute_efficiency()).
#pragma once
#include <map>
#include <string>
#include <string_view>

#include "workloads/step_program.h"

namespace seqscale {

inline constexpr std::string_view kCalibrationSchema = "seqscale.calibration/1";

enum class LinkTier : std::uint8_t { kNvlink, kIb };
std::string_view tier_name(LinkTier t);

struct Calibration {
  std::string device;   // the GPU it was measured on ("" for defaults)
  std::string source;   // "default" or the file it was loaded from / how it was measured
  double default_compute_efficiency = 0.5;
  std::map<std::string, double, std::less<>> compute;  // kernel name or kind -> efficiency
  double default_comm_efficiency = 0.7;
  // "nvlink" / "ib" -> collective name (collective_name()) -> bus-bandwidth efficiency
  std::map<std::string, std::map<std::string, double, std::less<>>, std::less<>> comm;

  // Lookup order: the exact kernel name ("attention_fused_bwd"), then the name without a
  // trailing _fwd/_bwd/_recompute ("attention_fused"), then default_compute_efficiency.
  double compute_efficiency(std::string_view kernel) const;
  // Size-aware: a measured calibration also holds keys "kernel@k" for the size class
  // k = floor(log2(work)), work = declared FLOPs (bytes for kernels declaring none). The
  // nearest class within 4 of the op's wins (small GEMMs and big ones differ by 2-3x);
  // without one, the name-only lookup above.
  double compute_efficiency(std::string_view kernel, double work) const;
  static int size_class(double work);
  double comm_efficiency(Collective c, LinkTier tier) const;
};

Calibration default_calibration();
// Strict: unknown fields, wrong types, efficiencies outside (0, 1] and a wrong schema throw
// ConfigError naming the file and the field.
Calibration load_calibration(const std::string& path);
// Writes to path + ".tmp" then renames, so a reader never sees half a file.
void save_calibration(const Calibration& cal, const std::string& path);

}  // namespace seqscale
