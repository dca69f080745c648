// `mega validate RECIPE.yaml [key=value ...]`: loads a recipe with its bases and overrides, checks every
// key, type, range and cross-key constraint, then builds what `mega train` builds before reading data
// (the task's description, the model, optimizer groups, the schedule) without reading any data, and
// prints the resolved recipe. Every problem found is listed, one "FILE:LINE: key: message" line each.
// `mega validate --keys` lists the schema: every key with its type, default, range and meaning.
#include <cmath>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "recipes/commands.h"
#include "recipes/recipe.h"
#include "recipes/trainer.h"

namespace mega::cli {

namespace {

void print_keys() {
  for (const KeySpec& spec : recipe_schema()) {
    std::ostringstream line;
    line << std::left << std::setw(40) << spec.path << value_type_name(spec.type);
    if (spec.nullable) line << " or null";
    if (!spec.choices.empty()) {
      line << " (";
      for (size_t i = 0; i < spec.choices.size(); ++i) line << (i ? ", " : "") << spec.choices[i];
      line << ")";
    }
    if (std::isfinite(spec.min) || std::isfinite(spec.max))
      line << " in [" << spec.min << ", " << spec.max << (spec.max_open ? ")" : "]");
    if (!spec.help.empty()) line << ": " << spec.help;
    std::cout << line.str() << "\n";
  }
}

}  // namespace

int validate(const Args& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << "usage: mega validate RECIPE.yaml [key.sub=value ...]\n"
                 "       mega validate --keys\n"
                 "Checks the recipe (bases, overrides, every key known, every value in range), builds what\n"
                 "`mega train` builds before reading data (task description, model, optimizer groups,\n"
                 "schedule) without reading data, lists every problem as FILE:LINE: key: message, and prints\n"
                 "the recipe resolved, every key with its value. --keys lists every known key.\n";
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--keys") {
    print_keys();
    return 0;
  }
  CheckedRecipe checked = check_recipe(args[0], Args(args.begin() + 1, args.end()));
  std::vector<std::string> problems = checked.problems;
  // A wrong key was given its default; what building reports about that key again is left out.
  for (const std::string& problem : check_setup(checked.recipe)) {
    bool repeats = false;
    for (const std::string& key : checked.wrong_keys)
      repeats = repeats || problem.find(": " + key + ": ") != std::string::npos;
    if (!repeats) problems.push_back(problem);
  }
  if (!problems.empty()) {
    for (const std::string& problem : problems) std::cerr << problem << "\n";
    std::cerr << "recipe has " << problems.size() << " problem" << (problems.size() == 1 ? "" : "s") << ": "
              << args[0] << "\n";
    return 1;
  }
  const TaskDescription task = describe_task(checked.recipe);
  std::cout << recipe_to_yaml(checked.recipe);
  std::cerr << "task " << checked.recipe.data.task << ": " << input_kind_name(task.input.kind) << " input";
  if (is_language_model(task)) {
    std::cerr << ", language model, vocabulary ";
    if (task.input.vocab_size > 0) std::cerr << task.input.vocab_size;
    else std::cerr << "from the train split";
    std::cerr << ", metric " << metric_name(task.metric) << ", data in " << checked.recipe.data.source.dir << "\n";
    std::cerr << "recipe OK: " << args[0] << "\n";
    return 0;
  }
  if (task.input.kind != InputKind::Pixels) std::cerr << ", vocabulary " << task.input.vocab_size;
  std::cerr << ", " << task.num_labels << " labels, metric " << metric_name(task.metric) << ", data in "
            << checked.recipe.data.source.dir << "\n";
  std::cerr << "recipe OK: " << args[0] << "\n";
  return 0;
}

}  // namespace mega::cli
