#include "workloads/json_fields.h"

#include <fstream>

#include <cmath>

namespace seqscale {

nlohmann::json read_json_file(const std::string& path, const std::string& what) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot open " + what);
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    throw ConfigError(path + ": corrupt " + what + " (not valid JSON: " + std::string(e.what()) + ")");
  }
}


JsonFields::JsonFields(const nlohmann::json& obj, std::string where, std::string path)
    : obj_(obj), where_(std::move(where)), path_(std::move(path)) {
  if (!obj_.is_object()) {
    throw ConfigError(where_ + ": " + (path_.empty() ? "document" : "field '" + path_ + "'") +
                      " must be a JSON object");
  }
}

std::string JsonFields::field_path(const std::string& key) const {
  return path_.empty() ? key : path_ + "." + key;
}

void JsonFields::fail(const std::string& key, const std::string& message) const {
  throw ConfigError(where_ + ": field '" + field_path(key) + "' " + message);
}

bool JsonFields::has(const std::string& key) const { return obj_.contains(key); }

const nlohmann::json* JsonFields::optional(const std::string& key) {
  seen_.insert(key);
  auto it = obj_.find(key);
  return it == obj_.end() ? nullptr : &*it;
}

const nlohmann::json& JsonFields::raw(const std::string& key) {
  const nlohmann::json* v = optional(key);
  if (!v) fail(key, "is missing");
  return *v;
}

std::string JsonFields::str(const std::string& key) {
  const auto& v = raw(key);
  if (!v.is_string()) fail(key, "must be a string");
  return v.get<std::string>();
}

std::string JsonFields::str_or(const std::string& key, const std::string& fallback) {
  return has(key) ? str(key) : (seen_.insert(key), fallback);
}

std::int64_t JsonFields::integer(const std::string& key, std::int64_t min, std::int64_t max) {
  const auto& v = raw(key);
  if (!v.is_number_integer() && !(v.is_number_float() && std::floor(v.get<double>()) == v.get<double>())) {
    fail(key, "must be an integer");
  }
  const auto value = v.is_number_integer() ? v.get<std::int64_t>()
                                           : static_cast<std::int64_t>(v.get<double>());
  if (value < min || value > max) {
    fail(key, "is " + std::to_string(value) + ", must be in [" + std::to_string(min) + ", " +
                  std::to_string(max) + "]");
  }
  return value;
}

std::int64_t JsonFields::integer_or(const std::string& key, std::int64_t fallback,
                                    std::int64_t min, std::int64_t max) {
  if (!has(key)) {
    seen_.insert(key);
    return fallback;
  }
  return integer(key, min, max);
}

double JsonFields::number(const std::string& key, double min, double max) {
  const auto& v = raw(key);
  if (!v.is_number()) fail(key, "must be a number");
  const double value = v.get<double>();
  if (!std::isfinite(value) || value < min || value > max) {
    fail(key, "is " + v.dump() + ", must be in [" + nlohmann::json(min).dump() + ", " +
                  nlohmann::json(max).dump() + "]");
  }
  return value;
}

double JsonFields::number_or(const std::string& key, double fallback, double min, double max) {
  if (!has(key)) {
    seen_.insert(key);
    return fallback;
  }
  return number(key, min, max);
}

bool JsonFields::boolean_or(const std::string& key, bool fallback) {
  const nlohmann::json* v = optional(key);
  if (!v) return fallback;
  if (!v->is_boolean()) fail(key, "must be true or false");
  return v->get<bool>();
}

void JsonFields::reject_unknown() const {
  for (const auto& [key, value] : obj_.items()) {
    if (!seen_.count(key)) fail(key, "is not a known field");
  }
}

}  // namespace seqscale
