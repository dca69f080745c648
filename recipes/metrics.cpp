// metrics.jsonl and console progress.
#include "recipes/metrics.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/atomic_file.h"
#include "core/error.h"

namespace mega {

namespace {

// Fault injection for the disk-full tests (tests/test_trainer.cpp): MEGA_FAULT_METRICS_FULL=ROW[:TIMES]
// makes this process's ROW-th metrics row (1-based) and those after it fail like a full disk: half the
// line is written, then ENOSPC. TIMES bounds the failing attempts (default: all of them), so a disk
// that frees up again can be simulated too.
struct MetricsFault {
  int64_t row = 0;       // 0: off
  int64_t times = -1;    // failing attempts left; -1: unbounded
};

MetricsFault metrics_fault_from_env() {
  MetricsFault fault;
  const char* value = std::getenv("MEGA_FAULT_METRICS_FULL");
  if (!value || !*value) return fault;
  std::string text(value);
  size_t colon = text.find(':');
  fault.row = std::stoll(text.substr(0, colon));
  if (colon != std::string::npos) fault.times = std::stoll(text.substr(colon + 1));
  return fault;
}

MetricsFault& metrics_fault() {
  static MetricsFault fault = metrics_fault_from_env();
  return fault;
}

// One write(2) of the whole buffer; false (errno set) on an error or a short write.
bool write_whole(int fd, const std::string& text, int64_t row) {
  MetricsFault& fault = metrics_fault();
  if (fault.row > 0 && row >= fault.row && fault.times != 0) {
    if (fault.times > 0) fault.times -= 1;
    if (::write(fd, text.data(), text.size() / 2) < 0) return false;
    errno = ENOSPC;
    return false;
  }
  ssize_t written = ::write(fd, text.data(), text.size());
  if (written == static_cast<ssize_t>(text.size())) return true;
  if (written >= 0) errno = ENOSPC;  // a short write: the device is full
  return false;
}

// A metrics row as the trainer writes it: a JSON object with an integer "step".
bool is_row(const nlohmann::json& row) { return row.is_object() && row.contains("step") && row["step"].is_number_integer(); }

}  // namespace

MetricsLog::MetricsLog(const std::string& path, int64_t resume_step) : path_(path) {
  if (resume_step >= 0 && std::filesystem::exists(path)) {
    std::ifstream in(path, std::ios::binary);
    MEGA_CHECK(in.good(), "cannot read metrics log '", path, "'");
    std::stringstream buffer;
    buffer << in.rdbuf();
    const std::string text = buffer.str();
    std::string kept;
    bool changed = false;
    int64_t line_number = 0;
    for (size_t begin = 0; begin < text.size();) {
      size_t newline = text.find('\n', begin);
      const bool complete = newline != std::string::npos;
      const size_t end = complete ? newline : text.size();
      const std::string line = text.substr(begin, end - begin);
      const bool last = !complete || end + 1 >= text.size();
      begin = complete ? newline + 1 : text.size();
      line_number += 1;
      auto row = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (!complete || !is_row(row)) {
        // The last line of a killed run, or of a disk that filled up, may be torn: cut away. A bad line
        // with rows after it was not written by the trainer, and the log cannot be trusted.
        MEGA_CHECK(last, path, ":", line_number, ": not a metrics row (a JSON object with an integer step): '",
                   line.substr(0, 80), "'");
        std::fprintf(stderr, "warning: %s:%lld: cut away a torn last line (%s)\n", path.c_str(),
                     static_cast<long long>(line_number), complete ? "not a metrics row" : "no line end");
        changed = true;
        continue;
      }
      const int64_t step = row["step"].get<int64_t>();
      if (step > resume_step) {
        changed = true;
        continue;
      }
      if (row.contains("split") && row["split"].is_string()) evals_.emplace(step, row["split"].get<std::string>());
      kept += line;
      kept += '\n';
    }
    if (changed) {
      write_file_atomically(path, kept);
    }
  }
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  MEGA_CHECK(fd_ >= 0, "cannot open '", path, "' for writing: ", std::strerror(errno));
}

MetricsLog::~MetricsLog() {
  if (fd_ >= 0) ::close(fd_);
}

void MetricsLog::write(const nlohmann::json& row) {
  constexpr int kAttempts = 3;
  const std::string line = row.dump() + "\n";
  rows_written_ += 1;
  int error = 0;
  for (int attempt = 1; attempt <= kAttempts; ++attempt) {
    struct stat before {};
    MEGA_CHECK(::fstat(fd_, &before) == 0, "cannot stat '", path_, "': ", std::strerror(errno));
    if (write_whole(fd_, line, rows_written_)) {
      if (is_row(row) && row.contains("split") && row["split"].is_string())
        evals_.emplace(row["step"].get<int64_t>(), row["split"].get<std::string>());
      for (const auto& sink : sinks_) sink->write(row);
      return;
    }
    error = errno;
    // Undo a partial line so the log never holds a torn row, then give the disk a moment.
    if (::ftruncate(fd_, before.st_size) != 0) break;
    if (attempt < kAttempts) std::this_thread::sleep_for(std::chrono::milliseconds(100 * attempt));
  }
  fail("cannot write the metrics log '", path_, "': ", std::strerror(error), " (", kAttempts,
       " attempts); the run stops here, and --resume continues from the last checkpoint once there is room");
}

bool MetricsLog::has_eval(int64_t step, const std::string& split) const { return evals_.count({step, split}) > 0; }

std::string format_duration(double seconds) {
  char text[32];
  long s = static_cast<long>(seconds + 0.5);
  if (s >= 3600) std::snprintf(text, sizeof text, "%ldh%02ldm", s / 3600, s % 3600 / 60);
  else if (s >= 60) std::snprintf(text, sizeof text, "%ldm%02lds", s / 60, s % 60);
  else std::snprintf(text, sizeof text, "%lds", s);
  return text;
}

Progress::Progress(int64_t total_steps, int64_t start_step, bool terminal)
    : total_(total_steps), start_(start_step), terminal_(terminal) {}

void Progress::update(int64_t step, double loss, double lr, double tokens_per_second, int64_t skipped) {
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  double done = static_cast<double>(step - start_), left = static_cast<double>(total_ - step);
  std::string eta = done > 0 ? format_duration(elapsed / done * left) : "?";
  // Updates skipped for a non-finite loss or gradient: a run heading for divergence shows it.
  std::string skipped_text = skipped > 0 ? "  skipped " + std::to_string(skipped) : "";
  char line[200];
  if (terminal_) {
    constexpr int kWidth = 24;
    int filled = total_ > 0 ? static_cast<int>(kWidth * step / total_) : 0;
    std::string bar(filled, '#');
    bar.resize(kWidth, '.');
    std::snprintf(line, sizeof line, "\r[%s] %lld/%lld  loss %.4f  lr %.2e  %.0f tok/s  ETA %s%s\x1b[K", bar.c_str(),
                  static_cast<long long>(step), static_cast<long long>(total_), loss, lr, tokens_per_second,
                  eta.c_str(), skipped_text.c_str());
    bar_drawn_ = true;
  } else {
    std::snprintf(line, sizeof line, "step %lld/%lld  loss %.4f  lr %.2e  %.0f tok/s  ETA %s%s\n",
                  static_cast<long long>(step), static_cast<long long>(total_), loss, lr, tokens_per_second,
                  eta.c_str(), skipped_text.c_str());
  }
  std::fputs(line, stdout);
  std::fflush(stdout);
}

void Progress::message(const std::string& text) {
  if (bar_drawn_) std::fputs("\r\x1b[K", stdout);
  std::fputs((text + "\n").c_str(), stdout);
  bar_drawn_ = false;
  std::fflush(stdout);
}

void Progress::finish() {
  if (bar_drawn_) std::fputs("\n", stdout);
  bar_drawn_ = false;
  std::fflush(stdout);
}

}  // namespace mega
