// What a run reports: metrics.jsonl (one JSON object per logged step or evaluation) and the console
// (a one-line progress bar on a terminal, plain log lines otherwise).
#pragma once
#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mega {

// Another destination for every row (the TensorBoard event file, recipes/tensorboard.h).
class MetricsSink {
 public:
  virtual ~MetricsSink() = default;
  virtual void write(const nlohmann::json& row) = 0;
};

class MetricsLog {
 public:
  // Opens run_dir/metrics.jsonl. When resuming from `resume_step`, rows past that step (written after
  // the checkpoint by the interrupted run) are dropped first, so the file reads as one clean run.
  MetricsLog(const std::string& path, int64_t resume_step = -1);
  void write(const nlohmann::json& row);  // appends one line and flushes, then feeds the sinks
  void add_sink(std::unique_ptr<MetricsSink> sink) { sinks_.push_back(std::move(sink)); }

 private:
  std::string path_;
  std::ofstream out_;
  std::vector<std::unique_ptr<MetricsSink>> sinks_;
};

class Progress {
 public:
  Progress(int64_t total_steps, int64_t start_step, bool terminal);
  // Redraws the bar (terminal) or prints a line (otherwise) for `step`.
  void update(int64_t step, double loss, double lr, double tokens_per_second);
  void message(const std::string& text);  // a line of its own, above the bar
  void finish();

 private:
  int64_t total_, start_;
  bool terminal_;
  bool bar_drawn_ = false;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

std::string format_duration(double seconds);  // "1h02m", "3m05s", "12s"

}  // namespace mega
