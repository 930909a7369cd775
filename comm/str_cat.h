// str_cat("a", s, std::to_string(n)): builds messages without `"literal" + std::string&&`,
// which GCC 12 flags with a false -Wrestrict at -O3.
#pragma once
#include <initializer_list>
#include <string>
#include <string_view>

namespace seqscale::comm {
inline std::string str_cat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (auto p : parts) out.append(p);
  return out;
}
}  // namespace seqscale::comm
