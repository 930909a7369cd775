// Calibration: the efficiencies that turn declared work (FLOPs, bytes, collective payloads)
// into time. `seqscale calibrate` measures them on a device and writes this file; without
// one, predict/maxseq use default_calibration(), whose numbers are documented (with their
// source) in calibration.cc and model/README.md.
//
// File format (schema "seqscale.calibration/1"):
//   {"schema": "seqscale.calibration/1", "device": "NVIDIA H100 80GB HBM3", "source": "...",
//    "default_compute_efficiency": 0.5,
//    "compute_efficiency": {"gemm": 0.81, "gemm@40": 0.83, "attention_fused": 0.55},
//    "default_comm_efficiency": 0.7,
//    "comm_efficiency": {"nvlink": {"all_reduce": 0.78}, "ib": {"all_to_all": 0.6}}}
// Efficiencies are fractions of the cluster's peak (FLOP/s, HBM bytes/s, link bytes/s) in
// (0, 1]. A compute key is an op kind (workloads/op_kinds.h), optionally with a size class
// "@k" (see compute_efficiency()); any other key is an error, so a file keyed by other
// names cannot be loaded and silently ignored.
#pragma once
#include <map>
#include <string>
#include <string_view>

#include "workloads/op_kinds.h"
#include "workloads/step_program.h"

namespace seqscale {

inline constexpr std::string_view kCalibrationSchema = "seqscale.calibration/1";

enum class LinkTier : std::uint8_t { kNvlink, kIb };
std::string_view tier_name(LinkTier t);

struct Calibration {
  std::string device;   // the GPU it was measured on ("" for defaults)
  std::string source;   // "default" or the file it was loaded from / how it was measured
  double default_compute_efficiency = 0.5;
  std::map<std::string, double, std::less<>> compute;  // op kind, or "op_kind@k" -> efficiency
  double default_comm_efficiency = 0.7;
  // "nvlink" / "ib" -> collective name (collective_name()) -> bus-bandwidth efficiency
  std::map<std::string, std::map<std::string, double, std::less<>>, std::less<>> comm;

  // The efficiency of an op kind: its own key, else its family's ("attention_fused_bwd"
  // falls back to "attention_fused"), else default_compute_efficiency. Throws
  // std::logic_error for a name that is not an op kind (workloads/op_kinds.h).
  double compute_efficiency(std::string_view op_kind) const;
  // Size-aware: a measured calibration also holds keys "op_kind@k" for the size class
  // k = floor(log2(work)), work = declared FLOPs (bytes for ops declaring none). Small GEMMs
  // and big ones differ by 2-3x, so the nearest class within 4 of the op's wins, its own
  // before its family's: op_kind@near, op_kind, family@near, family, the default.
  double compute_efficiency(std::string_view op_kind, double work) const;
  static int size_class(double work);
  static std::string size_class_key(std::string_view op_kind, int size_class);  // "gemm@40"
  double comm_efficiency(Collective c, LinkTier tier) const;
};

Calibration default_calibration();
// Strict: unknown fields, wrong types, efficiencies outside (0, 1] and a wrong schema throw
// ConfigError naming the file and the field.
Calibration load_calibration(const std::string& path);
// Writes to path + ".tmp" then renames, so a reader never sees half a file.
void save_calibration(const Calibration& cal, const std::string& path);

}  // namespace seqscale
