// `mega lra-table RUN_DIR...`: the Long Range Arena table of finished runs next to the paper's Mega row.
// Each run directory (a trainer's output_dir) gives its task from recipe.yaml (data.task, and the task's
// own keys where a column depends on them) and its final test accuracy from the last "test" row of
// metrics.jsonl ({"step", "split": "test", "test_loss", "test_accuracy"}, written once training ends).
// The paper's row is Mega (full attention) of Ma et al. 2022, arXiv 2209.10655, Table 2.
#include <yaml-cpp/yaml.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "recipes/commands.h"

namespace fs = std::filesystem;

namespace mega::cli {

namespace {

constexpr std::array<const char*, 6> kColumns = {"ListOps", "Text", "Retrieval", "Image", "Pathfinder", "Path-X"};
constexpr std::array<double, 6> kPaperMega = {63.14, 90.43, 91.25, 90.44, 96.01, 97.98};
constexpr double kPaperMegaAverage = 88.21;

// Which column a run belongs to: the first row whose task matches and, when it names one, whose own
// data key (data.<task>.<key>) has the value. Path-X is Pathfinder at 128 x 128.
struct ColumnRule {
  const char* task;
  const char* key;    // "" : any run of the task
  const char* value;  // the key's value, as YAML writes it
  const char* column;
};
constexpr ColumnRule kColumnRules[] = {
    {"listops", "", "", "ListOps"},
    {"text", "", "", "Text"},
    {"retrieval", "", "", "Retrieval"},
    {"image", "", "", "Image"},
    {"pathfinder", "resolution", "128", "Path-X"},
    {"pathfinder", "", "", "Pathfinder"},
};

// The column index of a run, or nullopt for a task outside the LRA table.
std::optional<size_t> run_column(const std::string& recipe_path) {
  YAML::Node recipe;
  try {
    recipe = YAML::LoadFile(recipe_path);
  } catch (const YAML::Exception& e) {
    fail(recipe_path, ": not a readable recipe: ", e.what());
  }
  const YAML::Node task_node = recipe["data"]["task"];
  MEGA_CHECK(task_node && task_node.IsScalar(), recipe_path, ": has no data.task");
  const std::string task = task_node.as<std::string>();
  for (const ColumnRule& rule : kColumnRules) {
    if (task != rule.task) continue;
    if (*rule.key) {
      const YAML::Node value = recipe["data"][task][rule.key];
      if (!value || !value.IsScalar() || value.as<std::string>() != rule.value) continue;
    }
    for (size_t c = 0; c < kColumns.size(); ++c)
      if (std::string(kColumns[c]) == rule.column) return c;
  }
  return std::nullopt;
}

// The accuracy of the last test evaluation in metrics.jsonl.
double final_test_accuracy(const std::string& metrics_path) {
  std::ifstream in(metrics_path);
  MEGA_CHECK(in.good(), metrics_path, ": missing or unreadable");
  std::optional<double> accuracy;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    nlohmann::json row;
    try {
      row = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail(metrics_path, ":", number, ": not JSON: ", e.what());
    }
    if (row.value("split", "") != "test") continue;
    MEGA_CHECK(row.contains("test_accuracy") && row["test_accuracy"].is_number(), metrics_path, ":", number,
               ": a test row without a numeric test_accuracy");
    accuracy = row["test_accuracy"].get<double>();
  }
  MEGA_CHECK(accuracy, metrics_path, ": no test evaluation (has the run finished?)");
  return *accuracy;
}

std::string cell(const std::optional<double>& value) {
  if (!value) return "-";
  char text[32];
  std::snprintf(text, sizeof text, "%.2f", *value);
  return text;
}

void print_row(const std::string& name, const std::array<std::optional<double>, 6>& values,
               const std::optional<double>& average) {
  std::printf("%-10s", name.c_str());
  for (const auto& v : values) std::printf(" %10s", cell(v).c_str());
  std::printf(" %10s\n", cell(average).c_str());
}

}  // namespace

int lra_table(const Args& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << "usage: mega lra-table RUN_DIR...\n"
                 "Prints the Long Range Arena table (test accuracy, %) of finished runs next to the Mega paper's\n"
                 "row. Each RUN_DIR is a run's output_dir: recipe.yaml says its task, metrics.jsonl its final test\n"
                 "accuracy. Tasks without a run show '-'; Avg needs all six.\n";
    return args.empty() ? 2 : 0;
  }
  std::array<std::optional<double>, 6> ours;
  std::array<std::string, 6> source;
  for (const std::string& dir : args) {
    MEGA_CHECK(fs::is_directory(dir), "mega lra-table: '", dir, "' is not a run directory");
    const std::string recipe = (fs::path(dir) / "recipe.yaml").string();
    const std::optional<size_t> column = run_column(recipe);
    if (!column) {
      std::cerr << "mega lra-table: " << dir << ": its task is not an LRA task; skipped\n";
      continue;
    }
    MEGA_CHECK(!ours[*column], "mega lra-table: ", source[*column], " and ", dir, " are both ", kColumns[*column],
               " runs; give one run per task");
    ours[*column] = 100 * final_test_accuracy((fs::path(dir) / "metrics.jsonl").string());
    source[*column] = dir;
  }
  std::optional<double> average = 0.0;
  for (const auto& v : ours) average = v && average ? std::optional<double>(*average + *v / 6) : std::nullopt;
  std::array<std::optional<double>, 6> paper;
  for (size_t c = 0; c < paper.size(); ++c) paper[c] = kPaperMega[c];

  std::printf("%-10s", "Model");
  for (const char* column : kColumns) std::printf(" %10s", column);
  std::printf(" %10s\n", "Avg");
  print_row("Mega paper", paper, kPaperMegaAverage);
  print_row("ours", ours, average);
  return 0;
}

}  // namespace mega::cli
