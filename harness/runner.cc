#include "harness/runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <regex>
#include <algorithm>

#include "harness/bench/execute.h"
#include "harness/rank_context.h"
#include "workloads/config_error.h"

namespace seqscale {
namespace {

using Clock = std::chrono::steady_clock;
std::atomic<bool> g_stop{false};

void on_signal(int) { g_stop = true; }

nlohmann::json point_to_json(const MatrixPoint& p) {
  return {{"id", p.id},           {"suite", p.suite},     {"bench", p.bench}, {"backend", p.backend},
          {"params", p.params},   {"timeout_s", p.timeout_s}, {"timing", timing_to_json(p.timing)}};
}

MatrixPoint point_from_wire(const nlohmann::json& j) {
  MatrixPoint p;
  p.id = j.at("id").get<std::string>();
  p.suite = j.at("suite").get<std::string>();
  p.bench = j.at("bench").get<std::string>();
  p.backend = j.at("backend").get<std::string>();
  p.params = j.at("params");
  p.timeout_s = j.at("timeout_s").get<double>();
  p.timing = timing_from_json(j.at("timing"), "worker input");
  return p;
}

std::string signal_text(int sig) {
  const char* name = strsignal(sig);
  return "signal " + std::to_string(sig) + " (" + (name ? name : "?") + ")";
}

// One child process speaking the line protocol. Replaced after a crash or a timeout.
class Worker {
 public:
  explicit Worker(const std::string& exe) {
    int to_child[2], from_child[2];
    if (pipe(to_child) != 0 || pipe(from_child) != 0) throw std::runtime_error("pipe() failed");
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork() failed");
    if (pid_ == 0) {
      dup2(to_child[0], 0);
      dup2(from_child[1], 1);
      close(to_child[1]);
      close(from_child[0]);
      execl(exe.c_str(), exe.c_str(), "_worker", static_cast<char*>(nullptr));
      _exit(127);
    }
    close(to_child[0]);
    close(from_child[1]);
    in_ = to_child[1];
    out_ = from_child[0];
  }
  ~Worker() { kill_now(); }

  // Sends a point and waits for its line; returns false with `why` on crash or timeout.
  bool run(const MatrixPoint& point, std::string* line, std::string* why) {
    const std::string msg = point_to_json(point).dump() + "\n";
    if (write(in_, msg.data(), msg.size()) != static_cast<ssize_t>(msg.size())) {
      *why = "worker died before the point started";
      reap(why);
      return false;
    }
    const auto deadline = Clock::now() + std::chrono::duration<double>(point.timeout_s);
    while (true) {
      if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
        *line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return true;
      }
      if (g_stop) {
        *why = "interrupted";
        kill_now();
        return false;
      }
      const double left_ms = std::chrono::duration<double, std::milli>(deadline - Clock::now()).count();
      if (left_ms <= 0) {
        kill_now();
        *why = "timeout: no result after " + std::to_string(point.timeout_s) + " s (killed)";
        return false;
      }
      pollfd pfd{out_, POLLIN, 0};
      const int rc = poll(&pfd, 1, static_cast<int>(std::min(left_ms, 200.0)) + 1);
      if (rc > 0) {
        char buf[65536];
        const ssize_t n = read(out_, buf, sizeof(buf));
        if (n > 0) {
          buffer_.append(buf, static_cast<size_t>(n));
        } else {
          reap(why);
          return false;
        }
      }
    }
  }

  bool alive() const { return pid_ > 0; }

 private:
  void reap(std::string* why) {
    int status = 0;
    if (pid_ > 0 && waitpid(pid_, &status, 0) == pid_) {
      if (WIFSIGNALED(status)) *why = "crashed: " + signal_text(WTERMSIG(status));
      else if (WIFEXITED(status)) *why = "worker exited with code " + std::to_string(WEXITSTATUS(status)) + " without a result";
    }
    pid_ = -1;
    close_fds();
  }
  void kill_now() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    close_fds();
  }
  void close_fds() {
    if (in_ >= 0) close(in_);
    if (out_ >= 0) close(out_);
    in_ = out_ = -1;
  }

  pid_t pid_ = -1;
  int in_ = -1, out_ = -1;
  std::string buffer_;
};

std::string format_duration(double s) {
  const auto total = static_cast<long>(s);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%ld:%02ld:%02ld", total / 3600, (total / 60) % 60, total % 60);
  return buf;
}

int severity(PointStatus s) {
  switch (s) {
    case PointStatus::kFailed: return 3;
    case PointStatus::kOom: return 2;
    case PointStatus::kSkipped: return 1;
    case PointStatus::kOk: return 0;
  }
  return 0;
}

}  // namespace

PointResult merge_rank_results(const std::vector<PointResult>& per_rank) {
  PointResult merged = per_rank.at(0);
  for (size_t r = 1; r < per_rank.size(); ++r) {
    const PointResult& x = per_rank[r];
    if (severity(x.status) > severity(merged.status)) {
      merged.status = x.status;
      merged.reason = "rank " + std::to_string(r) + ": " + x.reason;
      merged.samples_s.clear();
    }
    if (merged.status == PointStatus::kOk && x.samples_s.size() == merged.samples_s.size()) {
      for (size_t i = 0; i < x.samples_s.size(); ++i) merged.samples_s[i] = std::max(merged.samples_s[i], x.samples_s[i]);
    }
    for (const char* key : {"peak_bytes", "baseline_bytes"}) {
      if (auto it = x.metrics.find(key); it != x.metrics.end()) {
        merged.metrics[key] = std::max(merged.metrics.count(key) ? merged.metrics[key] : 0.0, it->second);
      }
    }
    merged.wall_s = std::max(merged.wall_s, x.wall_s);
  }
  if (merged.status != PointStatus::kOk) merged.samples_s.clear();
  finalize_point(merged);
  return merged;
}

std::string self_executable_path() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("seqscale") : p.string();
}

RunSummary run_matrix(const Matrix& matrix, const RunOptions& opt, std::ostream& log) {
  RunSummary sum;
  const auto t0 = Clock::now();
  std::vector<const MatrixPoint*> selected;
  std::regex filter;
  if (!opt.filter.empty()) {
    try {
      filter = std::regex(opt.filter);
    } catch (const std::regex_error& e) {
      throw ConfigError("--filter '" + opt.filter + "' is not a valid regex");
    }
  }
  for (const auto& p : matrix.points) {
    if (opt.filter.empty() || std::regex_search(p.id, filter)) selected.push_back(&p);
  }
  sum.total = static_cast<int>(selected.size());
  if (opt.dry_run) {
    for (const auto* p : selected) log << p->id << "\n";
    return sum;
  }

  bool any_cuda = false;
  for (const auto* p : selected) any_cuda = any_cuda || p->backend == "cuda";
  RankContext* ranks = rank_context();
  const bool root = !ranks || ranks->rank() == 0;
  ResultsFile results;
  if (ranks) {
    // Every rank runs every point together (collectives need all of them) in-process:
    // a worker forked from an MPI rank could not join the job.
    std::string skip_json = "[]";
    std::string error;
    if (root) {
      try {
        if (std::filesystem::exists(opt.results_path)) results = read_results(opt.results_path);
        else results.run = collect_metadata(opt.command_line, any_cuda);
        nlohmann::json ids = nlohmann::json::array();
        for (const auto& p : results.points) {
          if (!(opt.retry_failed && p.status == PointStatus::kFailed)) ids.push_back(p.id);
        }
        skip_json = ids.dump();
      } catch (const std::exception& e) {
        error = e.what();
      }
    }
    error = ranks->broadcast_from_root(error);
    if (!error.empty()) throw ConfigError(error);
    const auto skip = nlohmann::json::parse(ranks->broadcast_from_root(skip_json));
    const RunMetadata mine = collect_metadata(opt.command_line, any_cuda);
    const auto who = ranks->gather_to_root(nlohmann::json{{"host", mine.host}, {"device", mine.device}}.dump());
    if (root) {
      results.run.world_size = ranks->size();
      results.run.ranks = nlohmann::json::array();
      for (size_t r = 0; r < who.size(); ++r) {
        auto j = nlohmann::json::parse(who[r]);
        j["rank"] = r;
        results.run.ranks.push_back(j);
      }
    }
    int index = 0;
    for (const auto* p : selected) {
      ++index;
      if (std::find(skip.begin(), skip.end(), p->id) != skip.end()) {
        ++sum.resumed;
        continue;
      }
      ranks->barrier();
      const PointResult mine_r = execute_point(*p);
      const auto all = ranks->gather_to_root(to_json(mine_r).dump());
      ++sum.ran;
      if (!root) continue;
      std::vector<PointResult> per_rank;
      for (const auto& text : all) per_rank.push_back(point_from_json(nlohmann::json::parse(text), "rank result"));
      const PointResult r = merge_rank_results(per_rank);
      switch (r.status) {
        case PointStatus::kOk: ++sum.ok; break;
        case PointStatus::kOom: ++sum.oom; break;
        case PointStatus::kFailed: ++sum.failed; break;
        case PointStatus::kSkipped: ++sum.skipped; break;
      }
      std::erase_if(results.points, [&](const PointResult& x) { return x.id == r.id; });
      results.points.push_back(r);
      write_results_atomic(results, opt.results_path);
      log << "[" << index << "/" << sum.total << "] " << status_name(r.status) << " " << r.id
          << (r.reason.empty() ? "" : "  (" + r.reason + ")") << "\n";
    }
    if (root && sum.ran == 0 && !std::filesystem::exists(opt.results_path)) write_results_atomic(results, opt.results_path);
    sum.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
    return sum;
  }
  if (std::filesystem::exists(opt.results_path)) {
    results = read_results(opt.results_path);  // corrupt -> ConfigError, the file is left alone
    const RunMetadata now = collect_metadata(opt.command_line, any_cuda);
    if (any_cuda && now.device != results.run.device && !results.run.device.starts_with("cpu:")) {
      throw ConfigError(opt.results_path + ": field 'run.device' is '" + results.run.device +
                        "' but this machine is '" + now.device + "': use another --out");
    }
    results.run.extra["resumed_utc"].push_back(now.started_utc);
  } else {
    results.run = collect_metadata(opt.command_line, any_cuda);
  }

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  const bool tty = isatty(2);

  std::unique_ptr<Worker> worker;
  int index = 0;
  for (const auto* p : selected) {
    ++index;
    if (g_stop) break;
    if (const PointResult* done = results.find(p->id);
        done && !(opt.retry_failed && done->status == PointStatus::kFailed)) {
      ++sum.resumed;
      continue;
    }
    const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
    const double eta = sum.ran > 0 ? elapsed / sum.ran * (sum.total - index + 1 - 0) : 0;
    if (tty) {
      log << "\r\033[K[" << index << "/" << sum.total << "] " << format_duration(elapsed) << " elapsed, ETA "
          << format_duration(eta) << "  " << p->id << std::flush;
    }
    PointResult r;
    if (opt.isolation == Isolation::kNone) {
      r = execute_point(*p);
    } else {
      if (!worker || !worker->alive() || opt.isolation == Isolation::kProcess) {
        worker = std::make_unique<Worker>(opt.self_exe);
      }
      std::string line, why;
      bool parsed = false;
      if (worker->run(*p, &line, &why)) {
        try {
          r = point_from_json(nlohmann::json::parse(line), "worker output");
          parsed = true;
        } catch (const std::exception& e) {
          why = std::string("unreadable worker output: ") + e.what();
        }
      }
      if (!parsed) {
        worker.reset();
        if (why == "interrupted") break;
        r.id = p->id;
        r.suite = p->suite;
        r.bench = p->bench;
        r.backend = p->backend;
        r.params = p->params;
        r.status = PointStatus::kFailed;
        r.reason = why;
      }
    }
    ++sum.ran;
    switch (r.status) {
      case PointStatus::kOk: ++sum.ok; break;
      case PointStatus::kOom: ++sum.oom; break;
      case PointStatus::kFailed: ++sum.failed; break;
      case PointStatus::kSkipped: ++sum.skipped; break;
    }
    std::erase_if(results.points, [&](const PointResult& x) { return x.id == r.id; });
    results.points.push_back(r);
    write_results_atomic(results, opt.results_path);
    if (!tty) {
      log << "[" << index << "/" << sum.total << "] " << status_name(r.status) << " " << r.id;
      if (r.status == PointStatus::kOk) log << "  median " << r.stats.median * 1e6 << " us";
      if (!r.reason.empty()) log << "  (" << r.reason << ")";
      log << "\n";
    }
  }
  if (tty) log << "\r\033[K";
  sum.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  return sum;
}

int worker_main() {
  // The protocol owns the original stdout; anything a benchmark prints goes to stderr.
  FILE* proto = fdopen(dup(1), "w");
  dup2(2, 1);
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    const MatrixPoint p = point_from_wire(nlohmann::json::parse(line));
    const PointResult r = execute_point(p);
    const std::string out = to_json(r).dump() + "\n";
    std::fwrite(out.data(), 1, out.size(), proto);
    std::fflush(proto);
    // A failed CUDA point may leave a sticky error: start the next point in a new process.
    if (r.status == PointStatus::kFailed && p.backend == "cuda") return 0;
  }
  return 0;
}

}  // namespace seqscale
