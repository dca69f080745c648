// What a run reports: metrics.jsonl (one JSON object per logged step or evaluation) and the console
// (a one-line progress bar on a terminal, plain log lines otherwise).
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <utility>
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
  // Opens run_dir/metrics.jsonl for appending. When resuming from `resume_step`, rows past that step
  // (written after the checkpoint by the interrupted run) are dropped first, so the file reads as one
  // clean run; a torn last line (a kill or a full disk while writing: no newline or not JSON) is cut
  // away with a warning on stderr; a bad row before the last is an error naming the file and line.
  // Nothing is written when the constructor fails.
  MetricsLog(const std::string& path, int64_t resume_step = -1);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  // Appends one line with a single write. A failed or short write (a full disk) is undone (the file is
  // cut back to its last whole line) and retried a few times; then it is an error naming the file.
  // Then feeds the sinks.
  void write(const nlohmann::json& row);
  void add_sink(std::unique_ptr<MetricsSink> sink) { sinks_.push_back(std::move(sink)); }
  // True when the log already holds an evaluation row of `split` at `step` (a finished run resumed).
  bool has_eval(int64_t step, const std::string& split) const;

 private:
  std::string path_;
  int fd_ = -1;
  int64_t rows_written_ = 0;  // by this process, for the fault injection
  std::set<std::pair<int64_t, std::string>> evals_;
  std::vector<std::unique_ptr<MetricsSink>> sinks_;
};

class Progress {
 public:
  Progress(int64_t total_steps, int64_t start_step, bool terminal);
  // Redraws the bar (terminal) or prints a line (otherwise) for `step`; `skipped` (updates skipped for a
  // non-finite loss or gradient so far) is shown when not 0.
  void update(int64_t step, double loss, double lr, double tokens_per_second, int64_t skipped = 0);
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
