// Recipes: YAML files that say everything about a run (model, data, optimizer, schedule, training loop,
// output directory), checked against a schema of known keys with types and ranges.
//
//   base: listops.yaml        # optional: inherit from another recipe (relative to this file), recursively
//   model: {hidden_size: 80, ...}
//   data: {...}  optim: {...}  schedule: {...}  train: {...}
//   output_dir: runs/listops
//
// Command-line overrides "key.sub=value" (value in YAML syntax: 3, 1e-3, true, [0.9, 0.98]) apply after
// the files. Unknown keys, wrong types and out-of-range values are errors of the form
//   FILE:LINE: key.path: what is wrong
// (FILE is "<command line>" for an override, LINE its position among the overrides). Keys a file does
// not set take the schema's default; a resolved recipe writes back as complete YAML.
//
// Every key of the data section is generic (task, dir, max_length, bucket_batches, generate) except
// data.<task>.*: each task row of data/task.h declares its own, and the schema takes them from the table.
//
// The model section is kept as typed key/value pairs (HF MegaConfig names plus the task head) for the
// model builder to turn into constructor arguments; the other sections are typed structs.
#pragma once
#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "data/task.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"

namespace mega {

enum class ValueType { Bool, Int, Float, String, FloatList, StringList };
const char* value_type_name(ValueType type);  // "an integer", "a number", ...

// std::monostate is YAML's null (allowed only for nullable keys).
using RecipeValue =
    std::variant<std::monostate, bool, int64_t, double, std::string, std::vector<double>, std::vector<std::string>>;

struct KeySpec {
  std::string path;  // "model.hidden_size"
  ValueType type = ValueType::Int;
  RecipeValue default_value;
  bool nullable = false;
  double min = -std::numeric_limits<double>::infinity();  // Int, Float, each FloatList element
  double max = std::numeric_limits<double>::infinity();
  bool max_open = false;              // the range is [min, max) rather than [min, max]
  std::vector<std::string> choices;   // String: the allowed values (empty: any)
  size_t list_size = 0;               // FloatList: exact length (0: any)
  std::string help;
};

// Every known key, in the order a resolved recipe is written (rebuilt when a task is registered).
const std::vector<KeySpec>& recipe_schema();

// Where a value was set. A key no file sets has the loaded recipe's file and line 0 (the default).
struct Origin {
  std::string file;  // a recipe file or "<command line>"
  int64_t line = 0;  // 1-based; for an override, its position among the overrides
};

struct RecipeEntry {
  RecipeValue value;
  Origin origin;
};

struct DataRecipe {
  std::string task;           // data.task: a row of task_table()
  int64_t bucket_batches = 0; // batches per length-sorted pool
  DataSource source;          // dir (data.dir, null: data_cache/<task>), max_length, generate, data.<task>.*
};

struct OptimRecipe {
  OptimizerOptions options;
  double lr = 0;  // the peak learning rate (the schedule's peak_lr)
  double weight_decay = 0;
  std::vector<std::string> no_decay;  // parameter-name substrings excluded from weight decay
  std::vector<std::string> freeze;    // parameter-name globs left out of the optimizer
  std::vector<std::pair<std::string, double>> lr_scale;  // (glob, factor), from "GLOB=FACTOR"
  GroupRules group_rules() const { return {weight_decay, no_decay, freeze, lr_scale}; }
};

struct TrainRecipe {
  int64_t batch_size = 0;
  int64_t eval_batch_size = 0;
  int64_t max_steps = 0;   // 0: not set (then max_epochs is)
  int64_t max_epochs = 0;  // 0: not set (then max_steps is)
  int64_t eval_interval = 0, save_interval = 0, log_interval = 0;
  uint64_t seed = 0;
  int64_t threads = 0;     // 0: the default thread count
  double grad_clip = 0;    // global-norm limit; 0: no clipping
  int64_t accumulate = 1;  // micro-batches per update
  int64_t max_nonfinite_steps = 100;  // consecutive skipped (non-finite) updates before the run stops
  bool tensorboard = true; // also write output_dir/tb/events.out.tfevents.*
};

struct Recipe {
  std::string path;  // the file it was loaded from
  std::map<std::string, RecipeEntry> entries;  // every schema key, resolved

  DataRecipe data;
  OptimRecipe optim;
  // total_steps is schedule.total_steps, else train.max_steps, else 0: with max_epochs the trainer sets
  // it once it knows the number of batches per epoch.
  Schedule schedule;
  TrainRecipe train;
  std::string output_dir;

  // Typed access by full key path, for the model section above all ("model.hidden_size"). A wrong type
  // or an unknown key is an error; get_float accepts an integer value.
  bool is_null(const std::string& path) const;
  bool get_bool(const std::string& path) const;
  int64_t get_int(const std::string& path) const;
  double get_float(const std::string& path) const;
  const std::string& get_string(const std::string& path) const;
  const std::vector<double>& get_floats(const std::string& path) const;
  const std::vector<std::string>& get_strings(const std::string& path) const;
  const RecipeEntry& entry(const std::string& path) const;
};

// Loads `path` with its bases, applies `overrides` ("key.sub=value"), fills defaults, checks every
// value and the cross-key constraints, and builds the typed sections. Every problem found is reported,
// one "FILE:LINE: key: message" line each, in one Error.
Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides = {});

// What load_recipe does, keeping going past problems: a key whose value is wrong takes its default so
// the checks after it still run (checks that read a wrong key are skipped). A missing or malformed file
// still throws.
struct CheckedRecipe {
  Recipe recipe;
  std::vector<std::string> problems;  // "FILE:LINE: key: message"
  std::set<std::string> wrong_keys;   // the keys the problems are about
};
CheckedRecipe check_recipe(const std::string& path, const std::vector<std::string>& overrides = {});

// Turns an error raised while building from the recipe (a constructor's or MegaConfig::validate's
// message) into "FILE:LINE: key: message" for the key under `section` ("model.") that the message
// names, preferring a key set on the command line, then one set in a file; the key when none is named
// is `fallback`.
std::string locate_problem(const Recipe& recipe, const std::string& section, const std::string& message,
                           const std::string& fallback);
// "FILE:LINE: key: message" at the origin of `key`.
std::string problem_at(const Recipe& recipe, const std::string& key, const std::string& message);

// Updates the run makes: train.max_steps, else ceil(max_epochs * batches_per_epoch / accumulate).
int64_t total_updates(const Recipe& recipe, int64_t batches_per_epoch);
// recipe.schedule with total_steps filled in (schedule.total_steps, else total_updates) and validated.
Schedule resolved_schedule(const Recipe& recipe, int64_t batches_per_epoch);

// The resolved recipe as YAML (every key, schema order), loadable again with the same result.
std::string recipe_to_yaml(const Recipe& recipe);

}  // namespace mega
