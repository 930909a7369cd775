// Strict JSON object reader: every field must be known, every required field present,
// every value of the right type and range. Errors name the file and the field path.
#pragma once
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "workloads/config_error.h"

namespace seqscale {

// The JSON document in `path`; ConfigError "PATH: cannot open <what>" or "PATH: corrupt
// <what> (not valid JSON: ...)" otherwise.
nlohmann::json read_json_file(const std::string& path, const std::string& what = "file");

class JsonFields {
 public:
  // `where` is the file (or "--plan") and `path` the object's position inside it.
  JsonFields(const nlohmann::json& obj, std::string where, std::string path = "");

  std::string str(const std::string& key);
  std::string str_or(const std::string& key, const std::string& fallback);
  std::int64_t integer(const std::string& key, std::int64_t min, std::int64_t max);
  std::int64_t integer_or(const std::string& key, std::int64_t fallback, std::int64_t min,
                          std::int64_t max);
  double number(const std::string& key, double min, double max);
  double number_or(const std::string& key, double fallback, double min, double max);
  bool boolean_or(const std::string& key, bool fallback);
  const nlohmann::json& raw(const std::string& key);  // required, any type
  const nlohmann::json* optional(const std::string& key);
  bool has(const std::string& key) const;

  // Call last: rejects any field the reader was not asked about.
  void reject_unknown() const;

  [[noreturn]] void fail(const std::string& key, const std::string& message) const;
  std::string field_path(const std::string& key) const;

 private:
  const nlohmann::json& obj_;
  std::string where_;
  std::string path_;
  std::set<std::string> seen_;
};

}  // namespace seqscale
