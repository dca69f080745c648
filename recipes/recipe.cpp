// Recipe loading: the schema, YAML walking with file/line origins, base inheritance, command-line
// overrides, range and cross-key checks, the typed sections, and writing a resolved recipe back.
#include "recipes/recipe.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include "core/threading.h"
#include "nn/config_fields.h"
#include "nn/lra_classifier.h"
#include "nn/lra_dual_encoder.h"
#include "ops/activation.h"

namespace mega {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
using Strings = std::vector<std::string>;

KeySpec make_spec(std::string path, ValueType type, RecipeValue def) {
  return KeySpec{.path = std::move(path), .type = type, .default_value = std::move(def), .nullable = false,
                 .min = -kInf, .max = kInf, .max_open = false, .choices = {}, .list_size = 0, .help = {}};
}
KeySpec key_int(std::string path, std::optional<int64_t> def, double min, double max, std::string help) {
  KeySpec s = make_spec(std::move(path), ValueType::Int, def ? RecipeValue(*def) : RecipeValue());
  s.nullable = !def;
  s.min = min;
  s.max = max;
  s.help = std::move(help);
  return s;
}
KeySpec key_float(std::string path, std::optional<double> def, double min, double max, bool max_open,
                  std::string help) {
  KeySpec s = make_spec(std::move(path), ValueType::Float, def ? RecipeValue(*def) : RecipeValue());
  s.nullable = !def;
  s.min = min;
  s.max = max;
  s.max_open = max_open;
  s.help = std::move(help);
  return s;
}
KeySpec key_bool(std::string path, bool def, std::string help) {
  KeySpec s = make_spec(std::move(path), ValueType::Bool, def);
  s.help = std::move(help);
  return s;
}
KeySpec key_string(std::string path, std::string def, Strings choices, std::string help) {
  KeySpec s = make_spec(std::move(path), ValueType::String, std::move(def));
  s.choices = std::move(choices);
  s.help = std::move(help);
  return s;
}

// The model section's MegaConfig keys, one per field of nn/config_fields.h that recipes use, with its
// type, range, allowed names and default (null for a field whose value the trainer takes from the task).
std::vector<KeySpec> model_config_keys() {
  auto type_of = [](FieldKind kind) {
    switch (kind) {
      case FieldKind::Bool: return ValueType::Bool;
      case FieldKind::Int: return ValueType::Int;
      case FieldKind::Float: return ValueType::Float;
      case FieldKind::Choice: return ValueType::String;
    }
    fail("unreachable");
  };
  std::vector<KeySpec> keys;
  for (const ConfigField& field : mega_config_fields()) {
    if (field.recipe == RecipeUse::NotInRecipe) continue;
    const bool task_default = field.recipe == RecipeUse::TaskDefault;
    RecipeValue def = std::visit([](const auto& v) -> RecipeValue { return v; }, field.default_value());
    KeySpec spec = make_spec(std::string("model.") + field.name, type_of(field.kind()),
                             task_default ? RecipeValue() : def);
    spec.nullable = field.nullable() || task_default;
    spec.min = field.range.min;
    spec.max = field.range.max;
    spec.max_open = field.range.max_open;
    spec.choices = field.choices();
    spec.help = std::string(field.help) + (task_default ? "; null: the dataset's" : "");
    keys.push_back(std::move(spec));
  }
  return keys;
}

// data.<task>.<name> for every key of every task row, typed as the key's default.
void add_task_keys(std::vector<KeySpec>& schema) {
  for (const Task& task : task_table())
    for (const TaskKey& key : task.keys) {
      const std::string path = "data." + task.name + "." + key.name;
      KeySpec spec = std::visit(
          [&](const auto& v) {
            using V = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<V, bool>) return make_spec(path, ValueType::Bool, v);
            else if constexpr (std::is_same_v<V, int64_t>) return make_spec(path, ValueType::Int, v);
            else if constexpr (std::is_same_v<V, double>) return make_spec(path, ValueType::Float, v);
            else return make_spec(path, ValueType::String, v);
          },
          key.default_value);
      spec.min = key.min;
      spec.max = key.max;
      spec.choices = key.choices;
      spec.help = key.help;
      schema.push_back(std::move(spec));
    }
}

std::vector<KeySpec> build_schema() {
  const double big = 1e9;
  std::vector<KeySpec> s = {
      // ---- model: the task head (the MegaConfig keys before it come from the field table) ----
      key_string("model.head", "sequence_classification", {"sequence_classification", "causal_lm", "masked_lm"},
                 "the task head: sequence_classification, causal_lm for a language-modelling task, or masked_lm "
                 "to pretrain on a classification task's texts (recipes/mlm_objective.h)"),
      [] {
        KeySpec from = make_spec("model.from_pretrained", ValueType::String, std::monostate{});
        from.nullable = true;
        from.help = "an HF Mega checkpoint folder (config.json, model.safetensors) whose mega.* encoder weights "
                    "a fresh run starts from (recipes/pretrained.h); null: random init";
        return from;
      }(),
      // The adaptive input/softmax keys (Baevski & Auli 2019; Grave et al. 2017; nn/mega_lm.h).
      key_bool("model.adaptive_input", false, "causal_lm: adaptive input embeddings over the cutoffs' bands"),
      [] {
        KeySpec cutoffs = make_spec("model.adaptive_softmax_cutoff", ValueType::FloatList, std::vector<double>{});
        cutoffs.min = 1;
        cutoffs.help = "causal_lm: adaptive softmax (and adaptive input) band cutoffs, increasing word ids below "
                       "the vocabulary size, e.g. [20000, 60000]; empty: full softmax";
        return cutoffs;
      }(),
      key_float("model.adaptive_softmax_factor", 4.0, 1, 1e6, false, "causal_lm: each band's dimension shrinks by it"),
      key_float("model.adaptive_softmax_dropout", 0.0, 0, 1, true, "causal_lm: dropout on the adaptive softmax's "
                "input and inside its tails (fairseq's adaptive_softmax_dropout)"),
      key_bool("model.tie_adaptive_weights", false, "causal_lm: tie the adaptive softmax to the adaptive input "
               "(fairseq's tie_adaptive_weights and tie_adaptive_proj)"),
      key_int("model.num_labels", std::nullopt, 1, big, "classes; null: the dataset's"),
      key_string("model.pair_features", "concat", enum_name_list(pair_features_names()),
                 "pair tasks: the head reads [u, v] (Mega's) or [u, v, u*v, u-v] (LRA's)"),
      key_string("model.pooling", "mean", enum_name_list(pooling_names()), "sentence representation: mean of tokens or the first"),
      key_int("model.classifier_layers", 1, 0, 16, "hidden Linear+activation layers before the output projection"),
      key_int("model.classifier_hidden_size", std::nullopt, 1, big, "null: hidden_size"),
      key_string("model.classifier_activation", "gelu", enum_name_list(activation_names()), ""),
      // ---- data ----
      key_string("data.task", task_table().front().name, task_names(), "the task row (data/task.h)"),
      [] {
        KeySpec dir = make_spec("data.dir", ValueType::String, std::monostate{});
        dir.nullable = true;
        dir.help = "the task's files; relative to the working directory; null: data_cache/<data.task>";
        return dir;
      }(),
      key_int("data.max_length", 2000, 1, big, "each sequence (each of a pair) is cut to this many steps"),
      key_int("data.bucket_batches", 50, 1, big, "batches per length-sorted pool (1: no bucketing)"),
      key_bool("data.generate", false, "generate or fetch the task's data when data.dir lacks it"),
      key_int("data.segment_chunks_min", 1, 1, 1e6, "language models: fewest chunks (model.chunk_size) per training row"),
      key_int("data.segment_chunks_max", 1, 1, 1e6, "language models: most chunks per training row, drawn per batch"),
      key_int("data.eval_length", std::nullopt, 1, 1e9,
              "language models: evaluation block length; null: chunk_size * segment_chunks_max"),
      // ---- optim ----
      key_string("optim.name", "adamw", {"sgd", "adam", "adamw"}, "adam: L2 decay in the gradient; adamw: decoupled"),
      key_float("optim.lr", 1e-3, 0, 100, false, "peak learning rate"),
      [] {
        KeySpec betas = make_spec("optim.betas", ValueType::FloatList, std::vector<double>{0.9, 0.999});
        betas.min = 0;
        betas.max = 1;
        betas.max_open = true;
        betas.list_size = 2;
        return betas;
      }(),
      key_float("optim.eps", 1e-8, 0, 1, false, ""),
      key_float("optim.weight_decay", 0.0, 0, 100, false, ""),
      key_float("optim.momentum", 0.0, 0, 1, false, "SGD"),
      key_float("optim.dampening", 0.0, 0, 1, false, "SGD"),
      key_bool("optim.nesterov", false, "SGD"),
      [] {
        KeySpec no_decay = make_spec("optim.no_decay", ValueType::StringList, Strings{});
        no_decay.help = "parameter-name substrings with no weight decay (biases, norms, ...)";
        return no_decay;
      }(),
      [] {
        KeySpec freeze = make_spec("optim.freeze", ValueType::StringList, Strings{});
        freeze.help = "globs (* and ? match any characters, dots included) on parameter names: those parameters "
                      "are not updated and get no weight decay; a glob that matches nothing is an error";
        return freeze;
      }(),
      [] {
        KeySpec lr_scale = make_spec("optim.lr_scale", ValueType::StringList, Strings{});
        lr_scale.help = "GLOB=FACTOR entries, e.g. [\"mega.*=0.1\"]: the learning rate of parameters whose name "
                        "matches GLOB is scaled by FACTOR (the first matching entry decides)";
        return lr_scale;
      }(),
      // ---- schedule ----
      key_string("schedule.name", "linear", {"constant", "linear", "cosine", "inverse_sqrt"}, ""),
      key_int("schedule.warmup_steps", 0, 0, big, ""),
      key_float("schedule.warmup_init_lr", 0.0, 0, 100, false, ""),
      key_float("schedule.warmup_power", 1.0, 1e-6, 100, false, ""),
      key_float("schedule.end_lr", 0.0, 0, 100, false, ""),
      key_int("schedule.total_steps", std::nullopt, 1, big, "null: train.max_steps"),
      // ---- train ----
      key_int("train.batch_size", 32, 1, 1e6, ""),
      key_int("train.eval_batch_size", std::nullopt, 1, 1e6, "null: batch_size"),
      key_int("train.max_steps", std::nullopt, 1, big, "updates; set this or max_epochs"),
      key_int("train.max_epochs", std::nullopt, 1, big, "set this or max_steps"),
      key_int("train.eval_interval", 1000, 1, big, "updates between evaluations"),
      key_int("train.save_interval", 1000, 1, big, "updates between checkpoints"),
      key_int("train.log_interval", 100, 1, big, "updates between log lines"),
      key_int("train.seed", 0, 0, 9.2e18, ""),
      key_int("train.threads", 0, 0, kMaxThreads, "0: $MEGA_NUM_THREADS or every core"),
      key_float("train.grad_clip", 0.0, 0, kInf, false, "global-norm limit; 0: none"),
      key_int("train.accumulate", 1, 1, 1e6, "micro-batches per update"),
      key_int("train.max_nonfinite_steps", 100, 1, big,
              "consecutive updates skipped for a non-finite loss or gradient before the run stops as diverged"),
      key_bool("train.tensorboard", true, "also write scalars to output_dir/tb (TensorBoard event file)"),
      key_string("output_dir", "runs/default", {}, "checkpoints and logs"),
  };
  // The tasks' own keys go at the end of the data section.
  std::vector<KeySpec> tasks;
  add_task_keys(tasks);
  auto data_end = std::find_if(s.begin(), s.end(), [](const KeySpec& k) { return k.path.rfind("optim.", 0) == 0; });
  s.insert(data_end, tasks.begin(), tasks.end());
  std::vector<KeySpec> model = model_config_keys();
  s.insert(s.begin(), model.begin(), model.end());
  return s;
}

const KeySpec* find_spec(const std::string& path) {
  for (const KeySpec& spec : recipe_schema())
    if (spec.path == path) return &spec;
  return nullptr;
}

bool is_section(const std::string& path) {
  for (const KeySpec& spec : recipe_schema())
    if (spec.path.size() > path.size() && spec.path.compare(0, path.size(), path) == 0 && spec.path[path.size()] == '.')
      return true;
  return false;
}

std::string where(const Origin& origin) {
  return origin.line > 0 ? origin.file + ":" + std::to_string(origin.line) : origin.file;
}

template <class... Parts>
[[noreturn]] void recipe_error(const Origin& origin, const std::string& path, const Parts&... parts) {
  fail(where(origin), ": ", path, ": ", parts...);
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = up;
    }
  }
  return row[b.size()];
}

std::string suggestion(const std::string& path) {
  std::string best;
  size_t best_distance = 4;  // suggest only near misses
  for (const KeySpec& spec : recipe_schema()) {
    size_t d = edit_distance(path, spec.path);
    if (d < best_distance) best_distance = d, best = spec.path;
  }
  return best.empty() ? "" : " (did you mean '" + best + "'?)";
}

std::string format_double(double value) {
  char buffer[64];
  auto [end, error] = std::to_chars(buffer, buffer + sizeof buffer, value);
  std::string text(buffer, end);
  // Keep a float recognisable as one when written back (1 -> 1.0).
  if (text.find_first_of(".einf") == std::string::npos) text += ".0";
  return text;
}

std::string scalar_text(const YAML::Node& node) { return node.IsScalar() ? node.Scalar() : std::string(); }

bool parse_int(const std::string& text, int64_t& out) {
  const char* begin = text.data() + (!text.empty() && text[0] == '+');
  auto [end, error] = std::from_chars(begin, text.data() + text.size(), out);
  return error == std::errc() && end == text.data() + text.size() && begin != end;
}

bool parse_double(const std::string& text, double& out) {
  if (text.empty()) return false;
  const char* begin = text.data() + (text[0] == '+');
  auto [end, error] = std::from_chars(begin, text.data() + text.size(), out);
  return error == std::errc() && end == text.data() + text.size() && std::isfinite(out);
}

void check_range(double value, const KeySpec& spec, const Origin& origin, const std::string& text) {
  bool too_small = value < spec.min;
  bool too_large = spec.max_open ? value >= spec.max : value > spec.max;
  if (too_small || too_large) {
    auto bound = [](double b) { return std::isinf(b) ? std::string(b < 0 ? "-inf" : "inf") : format_double(b); };
    recipe_error(origin, spec.path, text, " is out of range [", bound(spec.min), ", ", bound(spec.max),
                 spec.max_open ? ")" : "]");
  }
}

// Converts one YAML value to the key's type, checking its range or choices.
RecipeValue parse_value(const YAML::Node& node, const KeySpec& spec, const Origin& origin) {
  if (node.IsNull()) {
    if (spec.nullable) return std::monostate{};
    recipe_error(origin, spec.path, "must not be null (expected ", value_type_name(spec.type), ")");
  }
  auto expect_scalar = [&](const YAML::Node& n) {
    if (!n.IsScalar())
      recipe_error(origin, spec.path, "expected ", value_type_name(spec.type), ", got a ",
                   n.IsMap() ? "mapping" : "sequence");
    return n.Scalar();
  };
  switch (spec.type) {
    case ValueType::Bool: {
      std::string text = expect_scalar(node);
      if (text == "true" || text == "True" || text == "TRUE") return true;
      if (text == "false" || text == "False" || text == "FALSE") return false;
      recipe_error(origin, spec.path, "expected true or false, got '", text, "'");
    }
    case ValueType::Int: {
      std::string text = expect_scalar(node);
      int64_t value = 0;
      if (!parse_int(text, value)) recipe_error(origin, spec.path, "expected an integer, got '", text, "'");
      check_range(static_cast<double>(value), spec, origin, text);
      return value;
    }
    case ValueType::Float: {
      std::string text = expect_scalar(node);
      double value = 0;
      if (!parse_double(text, value)) recipe_error(origin, spec.path, "expected a number, got '", text, "'");
      check_range(value, spec, origin, text);
      return value;
    }
    case ValueType::String: {
      std::string text = expect_scalar(node);
      if (!spec.choices.empty() && std::find(spec.choices.begin(), spec.choices.end(), text) == spec.choices.end()) {
        std::string allowed;
        for (const std::string& c : spec.choices) allowed += (allowed.empty() ? "" : ", ") + c;
        recipe_error(origin, spec.path, "'", text, "' is not one of ", allowed);
      }
      return text;
    }
    case ValueType::FloatList: {
      if (!node.IsSequence()) recipe_error(origin, spec.path, "expected a list of numbers, e.g. [0.9, 0.98]");
      if (spec.list_size && node.size() != spec.list_size)
        recipe_error(origin, spec.path, "expected a list of ", spec.list_size, " numbers, got ", node.size());
      std::vector<double> values;
      for (const YAML::Node& item : node) {
        std::string text = scalar_text(item);
        double value = 0;
        if (!parse_double(text, value)) recipe_error(origin, spec.path, "expected a number, got '", text, "'");
        check_range(value, spec, origin, text);
        values.push_back(value);
      }
      return values;
    }
    case ValueType::StringList: {
      if (!node.IsSequence()) recipe_error(origin, spec.path, "expected a list of strings, e.g. [bias, norm]");
      Strings values;
      for (const YAML::Node& item : node) {
        if (!item.IsScalar()) recipe_error(origin, spec.path, "expected a list of strings");
        values.push_back(item.Scalar());
      }
      return values;
    }
  }
  fail("unreachable");
}

using Entries = std::map<std::string, RecipeEntry>;

// Every problem found so far, and the keys they are about (a wrong key keeps its default).
struct Problems {
  std::vector<std::string> messages;
  std::set<std::string> keys;
  void add(const std::string& key, const std::string& message) {
    messages.push_back(message);
    keys.insert(key);
  }
};

// Walks a mapping of `file` under `prefix`, adding each leaf to `out` and each wrong one to `problems`.
void walk(const YAML::Node& map, const std::string& prefix, const std::string& file, Entries& out,
          Problems& problems) {
  std::set<std::string> seen;
  for (auto it = map.begin(); it != map.end(); ++it) {
    const YAML::Node key = it->first, value = it->second;  // copies: the iterator yields temporaries
    Origin origin{file, key.Mark().line + 1};
    std::string name = key.IsScalar() ? key.Scalar() : "?";
    std::string path = prefix.empty() ? name : prefix + "." + name;
    try {
      if (!key.IsScalar()) recipe_error(origin, prefix.empty() ? "(top level)" : prefix, "a key must be a plain name");
      if (!seen.insert(name).second) recipe_error(origin, path, "is set twice in the same mapping");
      if (path == "base") continue;  // handled by load_file
      if (is_section(path)) {
        if (value.IsNull()) continue;  // an empty section
        if (!value.IsMap()) recipe_error(origin, path, "expected a mapping of keys (a section), got a value");
        walk(value, path, file, out, problems);
        continue;
      }
      const KeySpec* spec = find_spec(path);
      if (!spec) recipe_error(origin, path, "unknown key", suggestion(path));
      Origin value_origin{file, value.Mark().line >= 0 ? value.Mark().line + 1 : origin.line};
      out[path] = RecipeEntry{parse_value(value, *spec, value_origin), value_origin};
    } catch (const Error& e) {
      out.erase(path);  // a wrong value in a file overrides its base's: neither counts
      problems.add(path, e.what());
    }
  }
}

// "\n  N | text" for 0-based line `index` of a file, to show where a parse error was found.
std::string source_line(const std::string& path, int index) {
  std::ifstream in(path);
  std::string line;
  for (int i = 0; i <= index && std::getline(in, line); ++i)
    if (i == index) return "\n  " + std::to_string(index + 1) + " | " + line;
  return "";
}

// A recipe is a few hundred lines: anything past this is not one (a data file named by mistake).
constexpr uintmax_t kMaxRecipeBytes = uintmax_t{1} << 20;

// Loads one file and its bases: the bases' entries overlaid by this file's.
Entries load_file(const std::string& path, std::vector<std::string>& chain, const Origin& included_from,
                  Problems& problems) {
  namespace fs = std::filesystem;
  std::string canonical = fs::weakly_canonical(fs::path(path)).string();
  if (std::find(chain.begin(), chain.end(), canonical) != chain.end()) {
    std::string cycle;
    for (const std::string& f : chain) cycle += f + " -> ";
    recipe_error(included_from, "base", "inheritance cycle: ", cycle, canonical);
  }
  // Only a regular file of bounded size is read: yaml-cpp would read /dev/zero forever, fail on a
  // folder with a bare "basic_filebuf::underflow", and load a huge file whole into memory.
  auto refuse = [&](const auto&... parts) {
    if (included_from.file.empty()) fail("recipe '", path, "' ", parts...);
    recipe_error(included_from, "base", "recipe '", path, "' ", parts...);
  };
  std::error_code error;
  const fs::file_status status = fs::status(path, error);
  if (!fs::exists(status)) refuse("does not exist");
  if (fs::is_directory(status)) refuse("is a folder, not a recipe file");
  if (!fs::is_regular_file(status)) refuse("is not a regular file (a device, pipe or socket)");
  const uintmax_t size = fs::file_size(path, error);
  if (error) refuse("cannot be read: ", error.message());
  if (size > kMaxRecipeBytes)
    refuse("is ", size, " bytes; a recipe may be at most ", kMaxRecipeBytes, " bytes (1 MiB)");
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::ParserException& e) {
    fail(path, ":", e.mark.line + 1, ":", e.mark.column + 1, ": malformed YAML: ", e.msg, source_line(path, e.mark.line));
  } catch (const YAML::BadFile&) {
    fail("cannot read recipe '", path, "'");
  }
  if (root.IsNull()) return {};
  if (!root.IsMap()) fail(path, ":", root.Mark().line + 1, ": (top level): a recipe is a mapping of sections");

  Entries entries;
  chain.push_back(canonical);
  if (YAML::Node base = root["base"]) {
    Origin origin{path, base.Mark().line + 1};
    if (!base.IsScalar() || base.Scalar().empty()) recipe_error(origin, "base", "expected a file name");
    fs::path base_path = fs::path(path).parent_path() / base.Scalar();
    entries = load_file(base_path.lexically_normal().string(), chain, origin, problems);
  }
  chain.pop_back();
  Entries own;
  walk(root, "", path, own, problems);
  for (auto& [key, entry] : own) entries[key] = std::move(entry);
  return entries;
}

void set_override(const Origin& origin, const std::string& path, const std::string& value_text, Entries& entries) {
  const KeySpec* spec = find_spec(path);
  if (!spec) {
    if (path == "base") recipe_error(origin, path, "cannot be overridden");
    recipe_error(origin, path, is_section(path) ? "is a section; override one of its keys" : "unknown key",
                 is_section(path) ? "" : suggestion(path));
  }
  YAML::Node value;
  try {
    value = YAML::Load(value_text);
  } catch (const YAML::ParserException& e) {
    recipe_error(origin, path, "malformed value '", value_text, "': ", e.msg);
  }
  entries[path] = RecipeEntry{parse_value(value, *spec, origin), origin};
}

// output_dir is where checkpoints go: an empty path or an existing non-folder would only fail (with a
// bare filesystem message) at the first save, after training time was spent.
void check_output_dir(const Recipe& r) {
  namespace fs = std::filesystem;
  const Origin& origin = r.entry("output_dir").origin;
  if (r.output_dir.empty()) recipe_error(origin, "output_dir", "must name a folder, got an empty path");
  std::error_code error;
  if (fs::exists(r.output_dir, error) && !fs::is_directory(r.output_dir, error))
    recipe_error(origin, "output_dir", "'", r.output_dir, "' exists and is not a folder");
}

void apply_override(const std::string& text, int64_t index, Entries& entries, Problems& problems) {
  Origin origin{"<command line>", index};
  size_t equals = text.find('=');
  if (equals == std::string::npos || equals == 0) {
    problems.add(text, "<command line>:" + std::to_string(index) + ": override '" + text +
                           "' is not of the form key.sub=value");
    return;
  }
  std::string path = text.substr(0, equals), value_text = text.substr(equals + 1);
  try {
    set_override(origin, path, value_text, entries);
  } catch (const Error& e) {
    entries.erase(path);
    problems.add(path, e.what());
  }
}

// Constraints between keys, checked on the resolved entries. A problem is reported at the entry that
// decides; a check that reads a key already found wrong is skipped (its default would mislead).
void check_cross_keys(const Recipe& r, Problems& problems) {
  auto check = [&](std::initializer_list<std::string> reads, bool ok, const std::string& path, const auto&... parts) {
    if (ok) return;
    for (const std::string& key : reads)
      if (problems.keys.count(key)) return;
    try {
      recipe_error(r.entry(path).origin, path, parts...);
    } catch (const Error& e) {
      problems.add(path, e.what());
    }
  };
  check({"train.max_steps", "train.max_epochs"}, r.is_null("train.max_steps") != r.is_null("train.max_epochs"),
        r.is_null("train.max_steps") ? "train.max_steps" : "train.max_epochs",
        "set exactly one of train.max_steps and train.max_epochs");
  check({"model.use_chunking", "model.chunk_size"},
        !(r.get_bool("model.use_chunking") && r.get_int("model.chunk_size") <= 0),
        "model.chunk_size", "must be > 0 when model.use_chunking is true, got ", r.get_int("model.chunk_size"));
  check({"model.chunk_size"}, r.get_int("model.chunk_size") != 0, "model.chunk_size",
        "must be -1 (no chunking) or > 0");
  check({"model.relative_positional_bias", "model.shared_representation_size"},
        !(r.get_string("model.relative_positional_bias") == "rotary" &&
          r.get_int("model.shared_representation_size") % 2),
        "model.shared_representation_size", "must be even for the rotary bias, got ",
        r.get_int("model.shared_representation_size"));
  // A language model's rows are segments of chunks (data.max_length does not apply to a stream).
  bool language_model = false;
  try {
    // Rows that describe themselves from their files (describe_source) are never language models.
    const Task& row = task_named(r.data.task);
    language_model = row.describe && is_language_model(row.describe(r.data.source.settings));
  } catch (const Error&) {
  }
  if (language_model) {
    const int64_t segment = r.get_int("model.chunk_size") * r.get_int("data.segment_chunks_max");
    check({"model.chunk_size", "data.segment_chunks_max", "model.max_positions"},
          !r.get_bool("model.use_chunking") || segment <= r.get_int("model.max_positions"), "data.segment_chunks_max",
          "training rows of ", segment, " tokens (model.chunk_size x data.segment_chunks_max) exceed model.max_positions (",
          r.get_int("model.max_positions"), ")");
    check({"model.use_chunking"}, r.get_bool("model.use_chunking"), "model.use_chunking",
          "a language model's rows are whole chunks: set model.use_chunking true and model.chunk_size");
  } else {
    check({"data.max_length", "model.max_positions"}, r.get_int("data.max_length") <= r.get_int("model.max_positions"),
          "data.max_length", r.get_int("data.max_length"), " exceeds model.max_positions (",
          r.get_int("model.max_positions"), ")");
  }
  check({"data.segment_chunks_min", "data.segment_chunks_max"},
        r.get_int("data.segment_chunks_min") <= r.get_int("data.segment_chunks_max"), "data.segment_chunks_max",
        "must be >= data.segment_chunks_min (", r.get_int("data.segment_chunks_min"), ")");
  check({"optim.nesterov", "optim.momentum", "optim.dampening"},
        !(r.get_bool("optim.nesterov") && (r.get_float("optim.momentum") <= 0 || r.get_float("optim.dampening") != 0)),
        "optim.nesterov", "needs optim.momentum > 0 and optim.dampening 0");
  const std::string schedule = r.get_string("schedule.name");
  check({"schedule.name", "schedule.total_steps", "schedule.warmup_steps", "train.max_steps"},
        !((schedule == "linear" || schedule == "cosine") && r.schedule.total_steps > 0 &&
          r.schedule.total_steps <= r.schedule.warmup_steps),
        "schedule.warmup_steps", r.schedule.warmup_steps, " warmup steps leave no room for the ", schedule,
        " decay, which ends at step ", r.schedule.total_steps);
  try {
    check_output_dir(r);
  } catch (const Error& e) {
    problems.add("output_dir", e.what());
  }
  // The task's own constraints, on its own keys.
  const Task& task = task_named(r.data.task);
  if (task.check)
    for (const TaskKeyProblem& p : task.check(r.data.source.settings)) {
      const std::string path = "data." + task.name + "." + p.key;
      check({path}, false, path, p.message);
    }
}

void build_sections(Recipe& r) {
  DataRecipe& d = r.data;
  d.task = r.get_string("data.task");
  d.bucket_batches = r.get_int("data.bucket_batches");
  d.source.dir = r.is_null("data.dir") ? "data_cache/" + d.task : r.get_string("data.dir");
  d.source.max_length = r.get_int("data.max_length");
  d.source.generate = r.get_bool("data.generate");
  std::map<std::string, TaskValue> settings;
  const std::string prefix = "data." + d.task + ".";
  for (const auto& [path, entry] : r.entries) {
    if (path.rfind(prefix, 0) != 0) continue;
    std::visit(
        [&](const auto& v) {
          using V = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<V, bool> || std::is_same_v<V, int64_t> || std::is_same_v<V, double> ||
                        std::is_same_v<V, std::string>)
            settings[path.substr(prefix.size())] = v;
        },
        entry.value);
  }
  d.source.settings = TaskSettings(std::move(settings));

  OptimRecipe& o = r.optim;
  o.options.kind = optimizer_kind_from_name(r.get_string("optim.name"));
  o.options.beta1 = r.get_floats("optim.betas")[0];
  o.options.beta2 = r.get_floats("optim.betas")[1];
  o.options.eps = r.get_float("optim.eps");
  o.options.momentum = r.get_float("optim.momentum");
  o.options.dampening = r.get_float("optim.dampening");
  o.options.nesterov = r.get_bool("optim.nesterov");
  o.lr = r.get_float("optim.lr");
  o.weight_decay = r.get_float("optim.weight_decay");
  o.no_decay = r.get_strings("optim.no_decay");
  o.freeze = r.get_strings("optim.freeze");
  for (const std::string& entry : r.get_strings("optim.lr_scale")) {
    const size_t equals = entry.rfind('=');
    char* end = nullptr;
    const double factor = equals == std::string::npos ? 0 : std::strtod(entry.c_str() + equals + 1, &end);
    MEGA_CHECK(equals != std::string::npos && equals > 0 && end && *end == '\0' && end != entry.c_str() + equals + 1 &&
                   factor >= 0,
               problem_at(r, "optim.lr_scale", "entry '" + entry + "' is not GLOB=FACTOR with a factor >= 0"));
    o.lr_scale.emplace_back(entry.substr(0, equals), factor);
  }

  TrainRecipe& t = r.train;
  t.batch_size = r.get_int("train.batch_size");
  t.eval_batch_size = r.is_null("train.eval_batch_size") ? t.batch_size : r.get_int("train.eval_batch_size");
  t.max_steps = r.is_null("train.max_steps") ? 0 : r.get_int("train.max_steps");
  t.max_epochs = r.is_null("train.max_epochs") ? 0 : r.get_int("train.max_epochs");
  t.eval_interval = r.get_int("train.eval_interval");
  t.save_interval = r.get_int("train.save_interval");
  t.log_interval = r.get_int("train.log_interval");
  t.seed = static_cast<uint64_t>(r.get_int("train.seed"));
  t.threads = r.get_int("train.threads");
  t.grad_clip = r.get_float("train.grad_clip");
  t.accumulate = r.get_int("train.accumulate");
  t.max_nonfinite_steps = r.get_int("train.max_nonfinite_steps");
  t.tensorboard = r.get_bool("train.tensorboard");

  Schedule& s = r.schedule;
  s.kind = schedule_kind_from_name(r.get_string("schedule.name"));
  s.peak_lr = o.lr;
  s.warmup_steps = r.get_int("schedule.warmup_steps");
  s.warmup_init_lr = r.get_float("schedule.warmup_init_lr");
  s.warmup_power = r.get_float("schedule.warmup_power");
  s.end_lr = r.get_float("schedule.end_lr");
  s.total_steps = r.is_null("schedule.total_steps") ? t.max_steps : r.get_int("schedule.total_steps");

  r.output_dir = r.get_string("output_dir");
}

// Writes one value as YAML.
void emit_value(YAML::Emitter& out, const RecipeValue& value) {
  std::visit(
      [&](const auto& v) {
        using V = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<V, std::monostate>) out << YAML::Null;
        else if constexpr (std::is_same_v<V, bool>) out << (v ? "true" : "false");
        else if constexpr (std::is_same_v<V, int64_t>) out << v;
        else if constexpr (std::is_same_v<V, double>) out << format_double(v);
        else if constexpr (std::is_same_v<V, std::string>) out << v;
        else if constexpr (std::is_same_v<V, std::vector<double>>) {
          out << YAML::Flow << YAML::BeginSeq;
          for (double x : v) out << format_double(x);
          out << YAML::EndSeq;
        } else {
          out << YAML::Flow << YAML::BeginSeq;
          for (const std::string& x : v) out << x;
          out << YAML::EndSeq;
        }
      },
      value);
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  std::stringstream stream(path);
  for (std::string part; std::getline(stream, part, '.');) parts.push_back(part);
  return parts;
}

}  // namespace

const char* value_type_name(ValueType type) {
  switch (type) {
    case ValueType::Bool: return "true or false";
    case ValueType::Int: return "an integer";
    case ValueType::Float: return "a number";
    case ValueType::String: return "a string";
    case ValueType::FloatList: return "a list of numbers";
    case ValueType::StringList: return "a list of strings";
  }
  return "?";
}

const std::vector<KeySpec>& recipe_schema() {
  // Rebuilt when register_task adds a row, so a registered task's keys are known.
  static std::vector<KeySpec> schema;
  static size_t task_rows = 0;
  if (schema.empty() || task_rows != task_table().size()) {
    schema = build_schema();
    task_rows = task_table().size();
  }
  return schema;
}

const RecipeEntry& Recipe::entry(const std::string& path) const {
  auto found = entries.find(path);
  MEGA_CHECK(found != entries.end(), "recipe has no key '", path, "'");
  return found->second;
}

namespace {
template <class T>
const T& get_as(const Recipe& r, const std::string& path, const char* wanted) {
  const RecipeValue& value = r.entry(path).value;
  const T* typed = std::get_if<T>(&value);
  MEGA_CHECK(typed, "recipe key '", path, "' is not ", wanted, std::holds_alternative<std::monostate>(value) ? " (it is null)" : "");
  return *typed;
}
}  // namespace

bool Recipe::is_null(const std::string& path) const {
  return std::holds_alternative<std::monostate>(entry(path).value);
}
bool Recipe::get_bool(const std::string& path) const { return get_as<bool>(*this, path, "a bool"); }
int64_t Recipe::get_int(const std::string& path) const { return get_as<int64_t>(*this, path, "an integer"); }
double Recipe::get_float(const std::string& path) const {
  if (const int64_t* i = std::get_if<int64_t>(&entry(path).value)) return static_cast<double>(*i);
  return get_as<double>(*this, path, "a number");
}
const std::string& Recipe::get_string(const std::string& path) const {
  return get_as<std::string>(*this, path, "a string");
}
const std::vector<double>& Recipe::get_floats(const std::string& path) const {
  return get_as<std::vector<double>>(*this, path, "a list of numbers");
}
const std::vector<std::string>& Recipe::get_strings(const std::string& path) const {
  return get_as<std::vector<std::string>>(*this, path, "a list of strings");
}

CheckedRecipe check_recipe(const std::string& path, const std::vector<std::string>& overrides) {
  Problems problems;
  std::vector<std::string> chain;
  Entries entries = load_file(path, chain, Origin{}, problems);
  for (size_t i = 0; i < overrides.size(); ++i)
    apply_override(overrides[i], static_cast<int64_t>(i + 1), entries, problems);
  CheckedRecipe checked;
  Recipe& recipe = checked.recipe;
  recipe.path = path;
  for (const KeySpec& spec : recipe_schema()) {
    auto found = entries.find(spec.path);
    recipe.entries[spec.path] =
        found != entries.end() ? found->second : RecipeEntry{spec.default_value, Origin{path, 0}};
  }
  build_sections(recipe);
  check_cross_keys(recipe, problems);
  checked.problems = std::move(problems.messages);
  checked.wrong_keys = std::move(problems.keys);
  return checked;
}

Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides) {
  CheckedRecipe checked = check_recipe(path, overrides);
  if (!checked.problems.empty()) {
    std::string all;
    for (const std::string& p : checked.problems) all += (all.empty() ? "" : "\n") + p;
    fail(all);
  }
  return std::move(checked.recipe);
}

std::string problem_at(const Recipe& recipe, const std::string& key, const std::string& message) {
  return where(recipe.entry(key).origin) + ": " + key + ": " + message;
}

std::string locate_problem(const Recipe& recipe, const std::string& section, const std::string& message,
                           const std::string& fallback) {
  auto is_word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  std::string best;
  int best_rank = -1;
  size_t best_at = std::string::npos;
  for (const auto& [path, entry] : recipe.entries) {
    if (path.rfind(section, 0) != 0) continue;
    const std::string name = path.substr(section.size());
    for (size_t at = message.find(name); at != std::string::npos; at = message.find(name, at + 1)) {
      const bool whole = (at == 0 || !is_word(message[at - 1])) &&
                         (at + name.size() == message.size() || !is_word(message[at + name.size()]));
      if (!whole) continue;
      // What the user set last is the likelier culprit: the command line, then a file, then a default.
      const int rank = entry.origin.file == "<command line>" ? 2 : entry.origin.line > 0 ? 1 : 0;
      if (rank > best_rank || (rank == best_rank && at < best_at)) best = path, best_rank = rank, best_at = at;
      break;
    }
  }
  return problem_at(recipe, best.empty() ? fallback : best, message);
}

int64_t total_updates(const Recipe& recipe, int64_t batches_per_epoch) {
  const TrainRecipe& t = recipe.train;
  if (t.max_steps > 0) return t.max_steps;
  MEGA_CHECK(batches_per_epoch > 0, "total_updates: no batches per epoch");
  return (t.max_epochs * batches_per_epoch + t.accumulate - 1) / t.accumulate;
}

Schedule resolved_schedule(const Recipe& recipe, int64_t batches_per_epoch) {
  Schedule schedule = recipe.schedule;
  if (recipe.is_null("schedule.total_steps")) schedule.total_steps = total_updates(recipe, batches_per_epoch);
  validate(schedule);
  return schedule;
}

std::string recipe_to_yaml(const Recipe& recipe) {
  YAML::Emitter out;
  out << YAML::Comment("resolved from " + recipe.path) << YAML::Newline;
  out << YAML::BeginMap;
  std::vector<std::string> open;  // the sections currently open
  for (const KeySpec& spec : recipe_schema()) {
    std::vector<std::string> parts = split_path(spec.path);
    std::vector<std::string> sections(parts.begin(), parts.end() - 1);
    size_t common = 0;
    while (common < open.size() && common < sections.size() && open[common] == sections[common]) ++common;
    for (size_t i = open.size(); i > common; --i) out << YAML::EndMap;
    open.resize(common);
    for (size_t i = common; i < sections.size(); ++i) {
      out << YAML::Key << sections[i] << YAML::Value << YAML::BeginMap;
      open.push_back(sections[i]);
    }
    out << YAML::Key << parts.back() << YAML::Value;
    emit_value(out, recipe.entry(spec.path).value);
  }
  for (size_t i = 0; i < open.size(); ++i) out << YAML::EndMap;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace mega
