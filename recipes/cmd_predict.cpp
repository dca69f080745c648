// `mega predict RECIPE.yaml --checkpoint DIR --input FILE [--json] [key.sub=value ...]`: the model saved in
// a checkpoint folder classifies each line of FILE (one text per line, LF or CRLF), tokenized by the
// tokenizer saved with the checkpoint. Output, one line per input line, in order:
//   text (default)  LABEL<TAB>NAME=P<TAB>NAME=P ...   (every label with its probability, id order)
//   --json          {"line": N, "label": "LABEL", "probabilities": {"NAME": P, ...}}  (JSON Lines)
// An empty input line is an error naming it (a text with no tokens cannot be classified).
#include <cstdio>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "recipes/commands.h"
#include "recipes/trainer.h"

namespace mega::cli {

namespace {

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  MEGA_CHECK(in, "mega predict: cannot open --input '", path, "'");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    MEGA_CHECK(!line.empty(), path, ":", lines.size() + 1, ": empty line (one text per line)");
    lines.push_back(std::move(line));
  }
  MEGA_CHECK(!in.bad(), "mega predict: error reading '", path, "'");
  return lines;
}

}  // namespace

int predict(const Args& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << "usage: mega predict RECIPE.yaml --checkpoint DIR --input FILE [--json] [key.sub=value ...]\n"
                 "Classifies each line of FILE (one text per line) with the model saved in DIR, tokenized as in\n"
                 "training (the tokenizer saved with the checkpoint). Prints one line per input:\n"
                 "LABEL<TAB>NAME=P<TAB>... with every label's probability, or with --json one JSON object\n"
                 "{\"line\", \"label\", \"probabilities\"} per line.\n";
    return args.empty() ? 2 : 0;
  }
  std::string checkpoint, input;
  bool json = false;
  Args overrides;
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--checkpoint" && i + 1 < args.size()) checkpoint = args[++i];
    else if (args[i] == "--input" && i + 1 < args.size()) input = args[++i];
    else if (args[i] == "--json") json = true;
    else if (!args[i].empty() && args[i][0] == '-') {
      std::cerr << "mega predict: unknown option '" << args[i] << "'\n";
      return 2;
    } else overrides.push_back(args[i]);
  }
  if (checkpoint.empty() || input.empty()) {
    std::cerr << "mega predict: --checkpoint DIR and --input FILE are required\n";
    return 2;
  }
  Recipe recipe = load_recipe(args[0], overrides);
  const std::vector<std::string> texts = read_lines(input);
  const Predictions predictions = predict_texts(recipe, checkpoint, texts);
  for (size_t i = 0; i < predictions.rows.size(); ++i) {
    const Prediction& p = predictions.rows[i];
    const std::string& label = predictions.label_names[static_cast<size_t>(p.label)];
    if (json) {
      nlohmann::json probabilities = nlohmann::json::object();
      for (size_t c = 0; c < p.probabilities.size(); ++c) probabilities[predictions.label_names[c]] = p.probabilities[c];
      std::cout << nlohmann::json{{"line", i + 1}, {"label", label}, {"probabilities", probabilities}}.dump() << "\n";
    } else {
      std::cout << label;
      for (size_t c = 0; c < p.probabilities.size(); ++c) {
        char value[32];
        std::snprintf(value, sizeof value, "%.6f", p.probabilities[c]);
        std::cout << "\t" << predictions.label_names[c] << "=" << value;
      }
      std::cout << "\n";
    }
  }
  return 0;
}

}  // namespace mega::cli
