#include "harness/results/results_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace seqscale {
namespace {

void upsert(ResultsFile& f, PointResult p) {
  std::erase_if(f.points, [&](const PointResult& x) { return x.id == p.id; });
  f.points.push_back(std::move(p));
}

}  // namespace

ResultsFile load_results_and_journal(const std::string& path) {
  ResultsFile f;
  if (std::filesystem::exists(path)) f = read_results(path);
  std::ifstream journal(path + ".journal");
  std::string line;
  while (std::getline(journal, line)) {
    if (line.empty()) continue;
    try {
      upsert(f, point_from_json(nlohmann::json::parse(line), path + ".journal"));
    } catch (const std::exception&) {
      break;  // a torn last line from a killed run: the point in flight, rerun it
    }
  }
  return f;
}

ResultsWriter::ResultsWriter(std::string path, ResultsFile initial, double compact_every_s)
    : path_(std::move(path)), results_(std::move(initial)), compact_every_s_(compact_every_s) {
  const std::filesystem::path p(path_);
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
  journal_fd_ = ::open((path_ + ".journal").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (journal_fd_ < 0) throw std::runtime_error("cannot open " + path_ + ".journal for appending");
}

ResultsWriter::~ResultsWriter() {
  try {
    compact();
  } catch (...) {
  }
  if (journal_fd_ >= 0) ::close(journal_fd_);
  if (!dirty_) ::unlink((path_ + ".journal").c_str());
}

void ResultsWriter::add(const PointResult& p) {
  const std::string line = to_json(p).dump() + "\n";
  // One write() of the whole line: O_APPEND makes it land after any earlier line.
  if (::write(journal_fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    throw std::runtime_error("short write to " + path_ + ".journal");
  }
  ::fdatasync(journal_fd_);
  upsert(results_, p);
  dirty_ = true;
  const auto now = std::chrono::steady_clock::now();
  if (!compacted_once_ || std::chrono::duration<double>(now - last_compact_).count() >= compact_every_s_) compact();
}

void ResultsWriter::compact() {
  if (!dirty_ && compacted_once_) return;
  write_results_atomic(results_, path_);
  // The full file now holds every journaled point: start the journal afresh.
  if (::ftruncate(journal_fd_, 0) != 0) throw std::runtime_error("cannot truncate " + path_ + ".journal");
  dirty_ = false;
  compacted_once_ = true;
  last_compact_ = std::chrono::steady_clock::now();
}

}  // namespace seqscale
