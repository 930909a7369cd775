#include "harness/isolation.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "harness/bench/execute.h"

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

}  // namespace

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


std::atomic<bool>& stop_requested() { return g_stop; }

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

void restore_default_handlers() {
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
}

IsolatedExecutor::IsolatedExecutor(Isolation isolation, std::string self_exe)
    : isolation_(isolation), exe_(std::move(self_exe)) {}

IsolatedExecutor::~IsolatedExecutor() = default;

std::optional<PointResult> IsolatedExecutor::run(const MatrixPoint& p) {
  if (isolation_ == Isolation::kNone) return execute_point(p);
  if (!worker_ || !worker_->alive() || isolation_ == Isolation::kProcess) worker_ = std::make_unique<Worker>(exe_);
  std::string line, why;
  if (worker_->run(p, &line, &why)) {
    try {
      return point_from_json(nlohmann::json::parse(line), "worker output");
    } catch (const std::exception& e) {
      why = std::string("unreadable worker output: ") + e.what();
    }
  }
  worker_.reset();
  if (why == "interrupted") return std::nullopt;
  PointResult r = result_for(p);
  r.status = PointStatus::kFailed;
  r.reason = why;
  return r;
}

std::string self_executable_path() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("seqscale") : p.string();
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
