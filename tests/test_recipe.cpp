// Recipes: the shipped LRA recipes resolve to the paper's numbers, inheritance and overrides, write-back
// round trip, and every error naming the file, the line and the key.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "recipes/recipe.h"

using namespace mega;
namespace fs = std::filesystem;

namespace {

std::string source_dir() { return fs::path(__FILE__).parent_path().parent_path().string(); }

std::string write(const std::string& name, const std::string& text) {
  fs::path dir = fs::temp_directory_path() / "mega_test_recipe";
  fs::create_directories(dir);
  std::string path = (dir / name).string();
  std::ofstream(path) << text;
  return path;
}

const char* kMinimal = "train:\n  max_steps: 10\n";

// Loading must fail with a message containing `needle`.
void expect_error(const std::string& path, const std::vector<std::string>& overrides, const std::string& needle) {
  try {
    load_recipe(path, overrides);
    ADD_FAILURE() << "no error, expected: " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what() << "\nexpected: " << needle;
  }
}

}  // namespace

TEST(Recipe, ListOpsRecipeHasThePapersHyperparameters) {
  Recipe r = load_recipe(source_dir() + "/recipes/configs/lra/listops.yaml");
  EXPECT_EQ(r.get_int("model.num_hidden_layers"), 6);
  EXPECT_EQ(r.get_int("model.hidden_size"), 80);
  EXPECT_EQ(r.get_int("model.intermediate_size"), 160);
  EXPECT_EQ(r.get_int("model.shared_representation_size"), 64);
  EXPECT_EQ(r.get_int("model.ema_projection_size"), 16);
  EXPECT_TRUE(r.get_bool("model.bidirectional"));
  EXPECT_FALSE(r.get_bool("model.normalize_before_mega"));
  EXPECT_EQ(r.get_string("model.normalization_type"), "layernorm");
  EXPECT_EQ(r.get_string("model.relative_positional_bias"), "simple");
  EXPECT_EQ(r.get_float("model.dropout_prob"), 0.1);
  EXPECT_EQ(r.get_float("model.attention_probs_dropout_prob"), 0.0);
  EXPECT_EQ(r.get_int("model.chunk_size"), -1);
  EXPECT_EQ(r.optim.options.kind, OptimizerKind::AdamW);
  EXPECT_EQ(r.optim.options.beta1, 0.9);
  EXPECT_EQ(r.optim.options.beta2, 0.98);
  EXPECT_EQ(r.optim.lr, 1e-3);
  EXPECT_EQ(r.optim.weight_decay, 0.01);
  EXPECT_EQ(r.schedule.kind, ScheduleKind::Linear);
  EXPECT_EQ(r.schedule.warmup_steps, 3000);
  EXPECT_EQ(r.schedule.total_steps, 90000);
  EXPECT_EQ(r.schedule.peak_lr, 1e-3);
  EXPECT_EQ(r.train.batch_size, 64);
  EXPECT_EQ(r.train.max_steps, 90000);
  EXPECT_EQ(r.train.grad_clip, 1.0);
  EXPECT_EQ(r.data.source.max_length, 2000);
}

TEST(Recipe, SmallRecipeInheritsAndOverrides) {
  Recipe r = load_recipe(source_dir() + "/recipes/configs/lra/listops_small.yaml", {"train.batch_size=16"});
  EXPECT_EQ(r.get_int("model.num_hidden_layers"), 2);
  EXPECT_EQ(r.get_int("model.hidden_size"), 64);
  EXPECT_EQ(r.optim.options.beta2, 0.98);  // from the base
  EXPECT_EQ(r.train.batch_size, 16);       // from the command line
  EXPECT_EQ(r.entry("train.batch_size").origin.file, "<command line>");
  EXPECT_NE(r.entry("optim.betas").origin.file.find("listops.yaml"), std::string::npos);
  EXPECT_LE(r.data.source.max_length, 500);
}

TEST(Recipe, OverridesAreTypedByTheSchema) {
  std::string path = write("overrides.yaml", kMinimal);
  Recipe r = load_recipe(path, {"optim.betas=[0.8, 0.95]", "model.truncation=256", "optim.no_decay=[bias, norm]",
                                "schedule.name=cosine", "train.grad_clip=1"});
  EXPECT_EQ(r.optim.options.beta1, 0.8);
  EXPECT_EQ(r.get_int("model.truncation"), 256);
  EXPECT_EQ(r.optim.no_decay, (std::vector<std::string>{"bias", "norm"}));
  EXPECT_EQ(r.schedule.kind, ScheduleKind::Cosine);
  EXPECT_EQ(r.train.grad_clip, 1.0);
  r = load_recipe(path, {"model.truncation=null"});
  EXPECT_TRUE(r.is_null("model.truncation"));
  expect_error(path, {"train.max_steps=5", "train.batch_size=abc"},
               "<command line>:2: train.batch_size: expected an integer, got 'abc'");
  expect_error(path, {"train.batchsize=3"}, "<command line>:1: train.batchsize: unknown key (did you mean 'train.batch_size'?)");
  expect_error(path, {"train"}, "not of the form key.sub=value");
}

TEST(Recipe, ResolvedRecipeRoundTrips) {
  Recipe r = load_recipe(source_dir() + "/recipes/configs/lra/listops_small.yaml", {"optim.eps=1e-6"});
  std::string yaml = recipe_to_yaml(r);
  Recipe again = load_recipe(write("resolved.yaml", yaml));
  for (const auto& [key, entry] : r.entries) EXPECT_EQ(again.entry(key).value, entry.value) << key;
  std::string twice = recipe_to_yaml(again);
  EXPECT_EQ(twice.substr(twice.find('\n')), yaml.substr(yaml.find('\n')));  // after the "resolved from" line
}

TEST(Recipe, UnknownKeyNamesFileLineAndKey) {
  std::string path = write("unknown.yaml", "model:\n  hidden_size: 8\n  hiden_size: 8\ntrain:\n  max_steps: 1\n");
  expect_error(path, {}, path + ":3: model.hiden_size: unknown key (did you mean 'model.hidden_size'?)");
  path = write("unknown_section.yaml", "train:\n  max_steps: 1\nmodle:\n  hidden_size: 8\n");
  expect_error(path, {}, path + ":3: modle: unknown key");
}

TEST(Recipe, WrongTypeNamesFileLineAndKey) {
  std::string path = write("type.yaml", "train:\n  max_steps: 10\n  batch_size: 3.5\n");
  expect_error(path, {}, path + ":3: train.batch_size: expected an integer, got '3.5'");
  path = write("type_bool.yaml", "model:\n  bidirectional: maybe\ntrain:\n  max_steps: 1\n");
  expect_error(path, {}, path + ":2: model.bidirectional: expected true or false, got 'maybe'");
  path = write("type_list.yaml", "optim:\n  betas: 0.9\ntrain:\n  max_steps: 1\n");
  expect_error(path, {}, path + ":2: optim.betas: expected a list of numbers");
  path = write("type_section.yaml", "train: 3\n");
  expect_error(path, {}, path + ":1: train: expected a mapping of keys");
  path = write("type_choice.yaml", "model:\n  normalization_type: groupnorm\ntrain:\n  max_steps: 1\n");
  expect_error(path, {}, path + ":2: model.normalization_type: 'groupnorm' is not one of layernorm");
  path = write("type_null.yaml", "model:\n  hidden_size: null\ntrain:\n  max_steps: 1\n");
  expect_error(path, {}, path + ":2: model.hidden_size: must not be null");
}

TEST(Recipe, OutOfRangeNamesFileLineAndKey) {
  std::string path = write("range.yaml", "train:\n  max_steps: 10\nmodel:\n  dropout_prob: 1.0\n");
  expect_error(path, {}, path + ":4: model.dropout_prob: 1.0 is out of range [0.0, 1.0)");
  path = write("range_list.yaml", "train:\n  max_steps: 10\noptim:\n  betas: [0.9, 1.5]\n");
  expect_error(path, {}, path + ":4: optim.betas: 1.5 is out of range");
  path = write("range_int.yaml", "train:\n  max_steps: 0\n");
  expect_error(path, {}, path + ":2: train.max_steps: 0 is out of range [1.0");
}

TEST(Recipe, CrossKeyConstraintsNameTheDecidingKey) {
  std::string path = write("both.yaml", "train:\n  max_steps: 10\n  max_epochs: 2\n");
  expect_error(path, {}, path + ":3: train.max_epochs: set exactly one of");
  path = write("neither.yaml", "train:\n  batch_size: 2\n");
  expect_error(path, {}, path + ": train.max_steps: set exactly one of");
  path = write("warmup.yaml", "train:\n  max_steps: 10\nschedule:\n  warmup_steps: 10\n");
  expect_error(path, {}, path + ":4: schedule.warmup_steps: 10 warmup steps leave no room");
  path = write("chunk.yaml", "train:\n  max_steps: 10\nmodel:\n  use_chunking: true\n");
  expect_error(path, {}, path + ": model.chunk_size: must be > 0 when model.use_chunking is true");
  path = write("maxlen.yaml", "train:\n  max_steps: 10\ndata:\n  max_length: 4096\n");
  expect_error(path, {}, path + ":4: data.max_length: 4096 exceeds model.max_positions (2048)");
}

TEST(Recipe, MalformedYamlNamesFileAndLine) {
  std::string path = write("malformed.yaml", "train:\n  max_steps: 10\n  batch_size: [1, 2\nmodel: {}\n");
  // The parser reports where it noticed the problem (the next line), and the message shows that line.
  expect_error(path, {}, path + ":4:");
  expect_error(path, {}, "malformed YAML");
  expect_error(path, {}, "\n  4 | model: {}");
  path = write("duplicate.yaml", "train:\n  max_steps: 10\n  max_steps: 20\n");
  expect_error(path, {}, path + ":3: train.max_steps: is set twice");
}

TEST(Recipe, BaseInheritanceIsRelativeRecursiveAndCycleChecked) {
  write("root.yaml", "train:\n  max_steps: 10\n  batch_size: 4\nmodel:\n  hidden_size: 32\n");
  write("middle.yaml", "base: root.yaml\ntrain:\n  batch_size: 8\n");
  std::string leaf = write("leaf.yaml", "# a comment\nbase: middle.yaml\nmodel:\n  hidden_size: 48\n");
  Recipe r = load_recipe(leaf);
  EXPECT_EQ(r.train.max_steps, 10);
  EXPECT_EQ(r.train.batch_size, 8);
  EXPECT_EQ(r.get_int("model.hidden_size"), 48);
  EXPECT_EQ(r.entry("train.batch_size").origin.line, 3);

  std::string a = write("cycle_a.yaml", "train:\n  max_steps: 1\nbase: cycle_b.yaml\n");
  std::string b = write("cycle_b.yaml", "base: cycle_a.yaml\n");
  expect_error(a, {}, b + ":1: base: inheritance cycle");
  std::string missing = write("missing_base.yaml", "\nbase: nowhere.yaml\n");
  expect_error(missing, {}, missing + ":2: base: recipe '");
}

TEST(Recipe, ValidateCommandPrintsTheResolvedRecipeOrTheError) {
  auto run = [](const std::string& args, std::string& output) {
    FILE* pipe = popen((std::string(MEGA_BINARY) + " validate " + args + " 2>&1").c_str(), "r");
    char buffer[4096];
    output.clear();
    while (size_t n = fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
    return pclose(pipe);
  };
  std::string out;
  EXPECT_EQ(run(source_dir() + "/recipes/configs/lra/listops_small.yaml model.hidden_size=48", out), 0) << out;
  EXPECT_NE(out.find("  hidden_size: 48\n"), std::string::npos) << out;
  EXPECT_NE(out.find("  betas: [0.9, 0.98]\n"), std::string::npos) << out;
  std::string bad = write("cli_bad.yaml", "train:\n  max_steps: 10\n  threads: -1\n");
  EXPECT_NE(run(bad, out), 0);
  EXPECT_NE(out.find(bad + ":3: train.threads: -1 is out of range"), std::string::npos) << out;
}

TEST(Recipe, EpochBudgetsBecomeUpdateCounts) {
  std::string path = write("epochs.yaml", "train:\n  max_epochs: 3\n  accumulate: 2\nschedule:\n  warmup_steps: 5\n");
  Recipe r = load_recipe(path);
  EXPECT_EQ(r.schedule.total_steps, 0);  // unknown until the data is loaded
  EXPECT_EQ(total_updates(r, 11), 17);   // ceil(3 * 11 / 2)
  EXPECT_EQ(resolved_schedule(r, 11).total_steps, 17);
  EXPECT_THROW(resolved_schedule(r, 2), Error);  // 3 updates cannot hold 5 warmup steps
  Recipe steps = load_recipe(path, {"train.max_epochs=null", "train.max_steps=40"});
  EXPECT_EQ(resolved_schedule(steps, 11).total_steps, 40);
}
