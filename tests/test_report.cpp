// `mega report`: reading run folders (also one still being written), the page's plots, legend, tables,
// escaping, the highlighted recipe keys, and (when Chromium is installed) that the page renders.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "recipes/report.h"

using namespace mega;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::path(::testing::TempDir()) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void write(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// A finished run folder as `mega train` leaves it: 8 logged steps, 2 evaluations and the test row.
fs::path sample_run(const fs::path& dir, double lr, const std::string& note) {
  fs::create_directories(dir);
  write(dir / "recipe.yaml", "# resolved\noptim:\n  name: adam\n  lr: " + std::to_string(lr) +
                                 "\ntrain:\n  max_steps: 80\n  note: \"" + note + "\"\n");
  std::ostringstream rows;
  for (int step = 10; step <= 80; step += 10) {
    const double loss = 2.3 / (1 + lr * 100 * step);
    rows << nlohmann::json{{"step", step}, {"epoch", 0}, {"loss", loss}, {"lr", lr}, {"grad_norm", 1.0 / step},
                           {"tokens_per_s", 1000.0 + step}, {"skipped_steps", 0}, {"wall_time", 1.7e9 + step}}
                .dump()
         << "\n";
    if (step % 40 == 0)
      rows << nlohmann::json{{"step", step}, {"split", "val"}, {"val_loss", loss}, {"val_accuracy", lr * step}}.dump()
           << "\n";
  }
  rows << nlohmann::json{{"step", 80}, {"split", "test"}, {"test_loss", 1.0}, {"test_accuracy", lr * 70}}.dump()
       << "\n";
  write(dir / "metrics.jsonl", rows.str());
  return dir;
}

}  // namespace

TEST(Report, EmaSmoothingIsTensorBoards) {
  // weight 0.5: ema 0.5 then 1.75, debiased by 1 - 0.5 and 1 - 0.25.
  const std::vector<double> smoothed = ema_smooth({1, 3}, 0.5);
  ASSERT_EQ(smoothed.size(), 2u);
  EXPECT_DOUBLE_EQ(smoothed[0], 1.0);
  EXPECT_DOUBLE_EQ(smoothed[1], 1.75 / 0.75);
  for (double v : ema_smooth({4, 4, 4, 4}, 0.9)) EXPECT_DOUBLE_EQ(v, 4.0);
}

TEST(Report, ComparesTwoRunsWithPlotsLegendAndDifferingKeys) {
  const fs::path root = fresh_dir("report_two");
  const std::string hostile = "<script>alert('x')</script>&";
  std::vector<RunData> runs{read_run(sample_run(root / "lr_small", 0.001, hostile).string()),
                            read_run(sample_run(root / "lr_big", 0.002, hostile).string())};
  EXPECT_EQ(runs[0].train_rows.size(), 8u);
  EXPECT_EQ(runs[0].eval_rows.size(), 3u);
  EXPECT_TRUE(runs[0].notes.empty());
  const std::string html = render_report(runs, "mega 0.1.0 <test machine>");

  // Plots: training loss (against step and wall time), lr, grad norm, tokens/s, and the 4 eval metrics.
  EXPECT_EQ(count(html, "<svg"), 9u);
  EXPECT_NE(html.find("training loss (faint: raw; solid: EMA 0.6)</text>"), std::string::npos);
  EXPECT_NE(html.find("against wall time"), std::string::npos);
  EXPECT_NE(html.find("learning rate"), std::string::npos);
  EXPECT_NE(html.find("gradient norm"), std::string::npos);
  EXPECT_NE(html.find("throughput"), std::string::npos);
  EXPECT_NE(html.find("val_accuracy"), std::string::npos);
  EXPECT_NE(html.find("polyline"), std::string::npos);
  // Auto scale: no series spans a factor of 20 (gradient norm 1/80..1/10), so every axis is linear.
  EXPECT_EQ(html.find("(log scale)"), std::string::npos);
  // One colour per run, named in every plot's legend.
  EXPECT_GE(count(html, "stroke='#1f77b4' stroke-width='3'/><text x="), 9u);
  EXPECT_GE(count(html, ">lr_small</text>"), 9u);
  EXPECT_GE(count(html, ">lr_big</text>"), 9u);
  // The one recipe key that differs is highlighted; the shared ones are not.
  EXPECT_NE(html.find("<tr class='diff'><td class='key'>optim.lr</td>"), std::string::npos);
  EXPECT_EQ(count(html, "<tr class='diff'>"), 2u);  // in the table of differing keys and in the full one
  EXPECT_NE(html.find("<tr><td class='key'>optim.name</td>"), std::string::npos);
  // Final and best metrics: val_accuracy (lr * step) is best at step 80, 0.16 for lr 0.002, in bold as the
  // best of both runs.
  EXPECT_NE(html.find("<td class='num best'>0.16 (80)</td>"), std::string::npos);
  // Everything read from files is escaped: no markup gets through.
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;"), std::string::npos);
  EXPECT_NE(html.find("mega 0.1.0 &lt;test machine&gt;"), std::string::npos);

  // --loss-scale log: the training loss (against step and wall time) and the eval losses.
  ReportOptions log_loss;
  log_loss.loss_scale = Scale::Log;
  EXPECT_EQ(count(render_report(runs, "", log_loss), "(log scale)</text>"), 4u);
  fs::remove_all(root);
}

TEST(Report, ReadsARunStillBeingWritten) {
  const fs::path dir = fresh_dir("report_running<i>");
  write(dir / "metrics.jsonl",
        "{\"step\":10,\"loss\":2.0,\"lr\":0.001}\n{\"step\":20,\"loss\":1.9,\"lr\":0.001}\n{\"step\":30,\"lo");
  RunData run = read_run(dir.string());
  EXPECT_EQ(run.train_rows.size(), 2u);
  ASSERT_EQ(run.notes.size(), 2u);  // the torn line, and no recipe.yaml yet
  EXPECT_NE(run.notes[0].find("line (3) is incomplete"), std::string::npos) << run.notes[0];
  EXPECT_NE(run.notes[1].find("no recipe.yaml"), std::string::npos);
  const std::string html = render_report({run}, "");
  EXPECT_NE(html.find("is incomplete and was ignored"), std::string::npos);
  EXPECT_NE(html.find("report_running&lt;i&gt;"), std::string::npos);  // a folder name is escaped too
  EXPECT_EQ(html.find("<i>"), std::string::npos);
  EXPECT_GE(count(html, "<svg"), 2u);  // loss and learning rate

  // A bad line that is not the last is damage, not a run in progress: an error naming file and line.
  write(dir / "metrics.jsonl", "{\"step\":10,\"loss\":2.0}\nnot json\n{\"step\":30,\"loss\":1.8}\n");
  try {
    read_run(dir.string());
    FAIL() << "a malformed middle line was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("metrics.jsonl line 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_run((dir / "missing").string()), Error);
  fs::remove_all(dir);
}

TEST(Report, CommandWritesTheFileAtomicallyAndPrintsItsPath) {
  const fs::path root = fresh_dir("report_cli");
  sample_run(root / "a", 0.001, "x");
  sample_run(root / "b", 0.002, "y");
  const fs::path out = root / "out" / "report.html";
  const std::string command = std::string(MEGA_BINARY) + " report " + (root / "a").string() + " " +
                              (root / "b").string() + " -o " + out.string() + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string printed;
  char buffer[256];
  while (std::fgets(buffer, sizeof buffer, pipe)) printed += buffer;
  EXPECT_EQ(pclose(pipe), 0) << printed;
  EXPECT_EQ(printed, "report: " + out.string() + "\n");
  ASSERT_TRUE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out.string() + ".tmp"));
  std::ifstream in(out);
  std::stringstream html;
  html << in.rdbuf();
  EXPECT_NE(html.str().find("Machine and versions"), std::string::npos);
  EXPECT_NE(html.str().find("oneDNN: "), std::string::npos);  // `mega version`'s text
  fs::remove_all(root);
}

// Chromium draws the page: its screenshot must hold far more than a blank page's (a page whose SVG
// failed to parse renders as an error box or nothing). Skipped where Chromium is not installed.
TEST(Report, RendersInHeadlessChromium) {
  const char* chromium = "/usr/bin/chromium";
  if (!fs::exists(chromium)) GTEST_SKIP() << "chromium is not installed (apt-get install chromium)";
  const fs::path root = fresh_dir("report_chromium");
  std::vector<RunData> runs{read_run(sample_run(root / "lr_small", 0.001, "a").string()),
                            read_run(sample_run(root / "lr_big", 0.002, "b").string())};
  write_file_atomically((root / "report.html").string(), render_report(runs, "machine"));
  write(root / "blank.html", "<!DOCTYPE html><html><body></body></html>");
  auto screenshot = [&](const std::string& page) {
    const fs::path png = root / (page + ".png");
    const std::string command = std::string("timeout 120 ") + chromium +
                                " --headless --no-sandbox --disable-gpu --disable-quic --no-first-run"
                                " --disable-background-networking --disable-component-update --disable-sync"
                                " --user-data-dir=" + (root / ("profile_" + page)).string() +
                                " --screenshot=" + png.string() + " --window-size=1200,2000 file://" +
                                (root / (page + ".html")).string() + " > /dev/null 2>&1";
    EXPECT_EQ(std::system(command.c_str()), 0) << command;
    std::ifstream in(png, std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    return bytes.str();
  };
  const std::string blank = screenshot("blank"), report = screenshot("report");
  ASSERT_GT(blank.size(), 8u);
  ASSERT_GT(report.size(), 8u);
  EXPECT_EQ(report.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  // Measured: a blank 1200x2000 page compresses to a few kB, this report to over 100 kB.
  EXPECT_GT(report.size(), 10 * blank.size()) << "report " << report.size() << " bytes, blank " << blank.size();
  std::set<char> distinct(report.begin(), report.end());
  EXPECT_GT(distinct.size(), 200u);
  fs::remove_all(root);
}
