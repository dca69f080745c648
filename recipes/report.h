// `mega report`: one self-contained HTML page comparing run folders (output_dir of `mega train`):
// inline-SVG plots of training loss (raw and smoothed), eval metrics, learning rate, gradient norm and
// tokens/s against step (and loss against wall time), a table of final and best metrics, each run's
// resolved recipe with the keys that differ between runs highlighted, and the machine it was made on.
// No script, font or network request: the file opens anywhere, and can be mailed or archived.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace mega {

// What a run folder holds, read as far as it is written (a run may still be going).
struct RunData {
  std::string dir;    // as given
  std::string label;  // its name in legends and tables
  std::vector<nlohmann::json> train_rows;  // metrics.jsonl rows without "split", in file order
  std::vector<nlohmann::json> eval_rows;   // rows with "split" (val, test)
  std::vector<std::pair<std::string, std::string>> recipe;  // recipe.yaml flattened: "optim.lr" -> "0.002"
  std::string recipe_text;                                   // recipe.yaml as written
  std::vector<std::string> notes;  // what was missing or skipped (a torn last line, no recipe.yaml, ...)
};

// Reads dir/metrics.jsonl and dir/recipe.yaml. A last line that is not valid JSON (a run writing it) is
// skipped with a note; a bad line before it is an error naming the file and line.
RunData read_run(const std::string& dir);

enum class Scale { Auto, Linear, Log };  // Auto: log when the values span more than a factor of 20

struct ReportOptions {
  Scale loss_scale = Scale::Auto;
  double smoothing = 0.6;  // EMA weight of the smoothed loss curve (TensorBoard's default)
};

// The page for `runs`; `machine` is shown verbatim (escaped) as the machine and versions section.
std::string render_report(const std::vector<RunData>& runs, const std::string& machine,
                          const ReportOptions& options = {});

// TensorBoard's smoothing: an exponential moving average, debiased for its zero start
// (smoothed_i = ema_i / (1 - weight^(i+1))); non-finite values pass through and do not enter the average.
std::vector<double> ema_smooth(const std::vector<double>& values, double weight);

std::string html_escape(const std::string& text);

}  // namespace mega
