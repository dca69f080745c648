// metrics.jsonl and console progress.
#include "recipes/metrics.h"

#include <cstdio>
#include <filesystem>
#include <sstream>
#include <vector>

#include "core/error.h"

namespace mega {

MetricsLog::MetricsLog(const std::string& path, int64_t resume_step) : path_(path) {
  if (resume_step >= 0 && std::filesystem::exists(path)) {
    std::vector<std::string> kept;
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
      auto row = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      // A torn last line of a killed run is not valid JSON: dropped with the rows past the checkpoint.
      if (row.is_object() && row.value("step", int64_t{0}) <= resume_step) kept.push_back(line);
    }
    std::string tmp = path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      for (const std::string& line : kept) out << line << "\n";
      MEGA_CHECK(out.good(), "cannot write '", tmp, "'");
    }
    std::filesystem::rename(tmp, path);
  }
  out_.open(path, std::ios::app);
  MEGA_CHECK(out_.good(), "cannot open '", path, "' for writing");
}

void MetricsLog::write(const nlohmann::json& row) {
  out_ << row.dump() << "\n";
  out_.flush();
  for (const auto& sink : sinks_) sink->write(row);
}

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

void Progress::update(int64_t step, double loss, double lr, double tokens_per_second) {
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  double done = static_cast<double>(step - start_), left = static_cast<double>(total_ - step);
  std::string eta = done > 0 ? format_duration(elapsed / done * left) : "?";
  char line[200];
  if (terminal_) {
    constexpr int kWidth = 24;
    int filled = total_ > 0 ? static_cast<int>(kWidth * step / total_) : 0;
    std::string bar(filled, '#');
    bar.resize(kWidth, '.');
    std::snprintf(line, sizeof line, "\r[%s] %lld/%lld  loss %.4f  lr %.2e  %.0f tok/s  ETA %s\x1b[K", bar.c_str(),
                  static_cast<long long>(step), static_cast<long long>(total_), loss, lr, tokens_per_second,
                  eta.c_str());
    bar_drawn_ = true;
  } else {
    std::snprintf(line, sizeof line, "step %lld/%lld  loss %.4f  lr %.2e  %.0f tok/s  ETA %s\n",
                  static_cast<long long>(step), static_cast<long long>(total_), loss, lr, tokens_per_second,
                  eta.c_str());
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
