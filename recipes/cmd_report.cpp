// `mega report RUN_DIR [RUN_DIR ...] [-o report.html] [--loss-scale auto|linear|log]`: one self-contained
// HTML page comparing the runs (recipes/report.h).
#include <filesystem>
#include <iostream>

#include "core/atomic_file.h"
#include "recipes/commands.h"
#include "recipes/report.h"

namespace mega::cli {

int report(const Args& args) {
  const char* usage =
      "usage: mega report RUN_DIR [RUN_DIR ...] [-o report.html] [--loss-scale auto|linear|log]\n"
      "Writes one HTML page (no scripts, no network) plotting the runs' metrics.jsonl side by side, with\n"
      "final/best metrics, each resolved recipe (differing keys highlighted) and this machine's versions.\n"
      "A run still going is read as far as it is written. Default output: report.html.\n";
  std::vector<std::string> dirs;
  std::string out = "report.html";
  ReportOptions options;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      std::cout << usage;
      return 0;
    } else if ((a == "-o" || a == "--output") && i + 1 < args.size()) {
      out = args[++i];
    } else if (a == "--loss-scale" && i + 1 < args.size()) {
      const std::string& s = args[++i];
      if (s == "auto") options.loss_scale = Scale::Auto;
      else if (s == "linear") options.loss_scale = Scale::Linear;
      else if (s == "log") options.loss_scale = Scale::Log;
      else {
        std::cerr << "mega report: --loss-scale takes auto, linear or log, not '" << s << "'\n";
        return 2;
      }
    } else if (!a.empty() && a[0] == '-') {
      std::cerr << "mega report: unknown option '" << a << "'\n" << usage;
      return 2;
    } else {
      dirs.push_back(a);
    }
  }
  if (dirs.empty()) {
    std::cerr << usage;
    return 2;
  }
  std::vector<RunData> runs;
  for (const std::string& dir : dirs) {
    runs.push_back(read_run(dir));
    for (const std::string& note : runs.back().notes) std::cerr << "mega report: " << dir << ": " << note << "\n";
  }
  if (const auto folder = std::filesystem::path(out).parent_path(); !folder.empty())
    std::filesystem::create_directories(folder);
  write_file_atomically(out, render_report(runs, version_text(), options));
  std::cout << "report: " << out << "\n";
  return 0;
}

}  // namespace mega::cli
