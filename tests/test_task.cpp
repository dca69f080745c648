// Tasks as data (data/task.h): batches of every input kind (pairs, pixels), the checks on loaded
// examples, a task defined here and registered at run time that the trainer trains and evaluates without
// knowing its name, its own recipe keys taken into the schema, and `mega validate` listing every problem
// as FILE:LINE: key: message, model-construction ones included, before `mega train` reads any data.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "data/task.h"
#include "recipes/recipe.h"
#include "recipes/trainer.h"
#include "tests/process_util.h"
#include "tests/temp_folder.h"

using namespace mega;
namespace fs = std::filesystem;

namespace {

const fs::path& root() {
  static const fs::path dir = mega::testing::make_temp_folder("mega_task_test");
  return dir;
}

std::string write(const std::string& name, const std::string& text) {
  fs::path path = root() / name;
  std::ofstream(path) << text;
  return path.string();
}

using Output = mega::testing::CommandResult;

Output run_mega(const std::string& arguments) {
  return mega::testing::run_mega_command(arguments, root() / "output.txt");
}

std::string source_dir() { return fs::path(__FILE__).parent_path().parent_path().string(); }

// "first_token": the label is the class of a sequence's first token (ids 1..classes), the rest noise.
// Everything the trainer needs comes from this row; no code outside it names the task.
Task first_token_task() {
  Task task;
  task.name = "first_token";
  task.help = "test task: the label is the first token's class";
  task.keys = {TaskKey{.name = "classes", .default_value = int64_t{3}, .min = 2, .max = 9, .choices = {}, .help = ""},
               TaskKey{.name = "examples", .default_value = int64_t{48}, .min = 1, .max = 1e6, .choices = {},
                       .help = ""},
               TaskKey{.name = "min_length", .default_value = int64_t{3}, .min = 1, .max = 100, .choices = {},
                       .help = ""}};
  task.check = [](const TaskSettings& s) -> std::vector<TaskKeyProblem> {
    if (s.get_int("min_length") > 12) return {{"min_length", "must be at most 12, the longest generated sequence"}};
    return {};
  };
  task.describe = [](const TaskSettings& s) {
    TaskDescription d;
    d.input = TaskInput{.kind = InputKind::Tokens, .vocab_size = 20, .pad_id = 0, .pixel_mean = 0, .pixel_std = 1};
    d.num_labels = s.get_int("classes");
    d.files = {};
    return d;
  };
  task.load = [](const DataSource& source) {
    const int64_t classes = source.settings.get_int("classes"), n = source.settings.get_int("examples");
    const int64_t min_length = source.settings.get_int("min_length");
    auto split = [&](int64_t offset) {
      std::vector<SequenceExample> examples;
      for (int64_t i = 0; i < n; ++i) {
        SequenceExample e;
        e.label = (i + offset) % classes;
        e.ids.push_back(1 + e.label);
        for (int64_t k = 1; k < min_length + (i * 7 + offset) % 10; ++k) e.ids.push_back(10 + (i * 3 + k) % 10);
        examples.push_back(std::move(e));
      }
      return examples;
    };
    return TaskSplits{split(0), split(1), split(2)};
  };
  return task;
}

void register_test_task() {
  if (!find_task("first_token")) register_task(first_token_task());
}

}  // namespace

TEST(TaskBatching, PairBatchPadsEachSequenceAndBucketsByTheLonger) {
  std::vector<SequenceExample> examples = {{{5, 6, 7}, 1, {9}}, {{8}, 0, {4, 4, 4, 4, 4}}, {{2}, 1, {3}}};
  Batch b = make_batch(examples, {0, 1}, 0, 1);
  ASSERT_TRUE(b.is_pair());
  EXPECT_EQ(b.ids.shape(), (Shape{2, 3}));
  EXPECT_EQ(b.ids.to_vector(), (std::vector<double>{5, 6, 7, 8, 0, 0}));
  EXPECT_EQ(b.mask.to_vector(), (std::vector<double>{1, 1, 1, 1, 0, 0}));
  EXPECT_EQ(b.pair_ids.shape(), (Shape{2, 5}));
  EXPECT_EQ(b.pair_ids.to_vector(), (std::vector<double>{9, 0, 0, 0, 0, 4, 4, 4, 4, 4}));
  EXPECT_EQ(b.pair_mask.to_vector(), (std::vector<double>{1, 0, 0, 0, 0, 1, 1, 1, 1, 1}));
  EXPECT_EQ(b.labels.to_vector(), (std::vector<double>{1, 0}));
  EXPECT_EQ(b.tokens, 3 + 1 + 1 + 5);
  // Each side rounds up to the multiple on its own.
  Batch chunked = make_batch(examples, {0, 2}, 0, 4);
  EXPECT_EQ(chunked.ids.shape(), (Shape{2, 4}));
  EXPECT_EQ(chunked.pair_ids.shape(), (Shape{2, 4}));
  EXPECT_EQ(sequence_lengths(examples), (std::vector<int64_t>{3, 5, 1}));
  // Unshuffled and bucketed, the pool sorts by the longer of the two: {2}, then 0 (3), then 1 (5).
  BatchingOptions o;
  o.batch_size = 1;
  o.shuffle = false;
  o.bucket_batches = 3;
  EXPECT_EQ(epoch_batches(sequence_lengths(examples), o, 0), (std::vector<std::vector<int64_t>>{{2}, {0}, {1}}));
  // A batch mixing pairs and single sequences is an error.
  std::vector<SequenceExample> mixed = {{{1}, 0, {2}}, {{3}, 0, {}}};
  EXPECT_THROW(make_batch(mixed, {0, 1}), Error);
  EXPECT_THROW(make_batch(mixed, {1, 0}), Error);
  EXPECT_FALSE(make_batch(mixed, {1}).is_pair());
}

TEST(TaskBatching, PixelBatchKeepsIntensitiesAndMasksRealSteps) {
  std::vector<SequenceExample> examples = {{{0, 255, 128}, 3}, {{17}, 1}};
  Batch b = make_batch(examples, {0, 1}, 0, 2);
  EXPECT_FALSE(b.is_pair());
  EXPECT_EQ(b.ids.shape(), (Shape{2, 4}));
  EXPECT_EQ(b.ids.to_vector(), (std::vector<double>{0, 255, 128, 0, 17, 0, 0, 0}));
  // A black pixel (0) is a real step, told from padding by the mask alone.
  EXPECT_EQ(b.mask.to_vector(), (std::vector<double>{1, 1, 1, 0, 1, 0, 0, 0}));
  EXPECT_EQ(b.tokens, 4);
}

TEST(TaskExamples, ChecksAgainstTheDescription) {
  TaskDescription pixels;
  pixels.input.kind = InputKind::Pixels;
  pixels.num_labels = 10;
  EXPECT_THROW(check_description("image", pixels), Error);  // vocab_size must say 256
  pixels.input.vocab_size = 256;
  check_description("image", pixels);
  pixels.input.pixel_std = 0;
  EXPECT_THROW(check_description("image", pixels), Error);
  pixels.input.pixel_std = 1;
  check_examples(pixels, {{{0, 255}, 9}}, "train");
  EXPECT_THROW(check_examples(pixels, {{{0, 256}, 1}}, "train"), Error);
  EXPECT_THROW(check_examples(pixels, {{{3}, 10}}, "train"), Error);
  TaskDescription pair;
  pair.input = TaskInput{.kind = InputKind::TokenPair, .vocab_size = 5, .pad_id = 0, .pixel_mean = 0, .pixel_std = 1};
  pair.num_labels = 2;
  check_examples(pair, {{{1, 4}, 1, {2}}}, "val");
  try {
    check_examples(pair, {{{1, 4}, 1, {2}}, {{1}, 0, {}}}, "val");
    ADD_FAILURE() << "a pair example without its second sequence passed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("val example 1"), std::string::npos) << e.what();
  }
  TaskDescription tokens = pair;
  tokens.input.kind = InputKind::Tokens;
  EXPECT_THROW(check_examples(tokens, {{{1}, 0, {2}}}, "test"), Error);
  EXPECT_THROW(check_examples(tokens, {{{5}, 0}}, "test"), Error);  // outside the vocabulary
}

TEST(TaskTable, ListOpsRowDeclaresItsKeysAndTheSchemaTakesThem) {
  const Task& listops = task_named("listops");
  EXPECT_EQ(listops.describe(TaskSettings{}).num_labels, 10);
  bool found = false;
  for (const KeySpec& spec : recipe_schema()) found = found || spec.path == "data.listops.max_depth";
  EXPECT_TRUE(found);
  EXPECT_THROW(task_named("no_such_task"), Error);
  // The row's own check, reported at its key's origin.
  std::string path = write("listops_lengths.yaml",
                           "data:\n  listops:\n    min_length: 50\n    max_length: 40\ntrain:\n  max_steps: 1\n");
  try {
    load_recipe(path);
    ADD_FAILURE() << "min_length > max_length passed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path + ":3: data.listops.min_length: 50 exceeds"), std::string::npos)
        << e.what();
  }
}

TEST(TaskTable, TrainerTrainsATaskItDoesNotKnowByName) {
  register_test_task();
  std::string path = write("first_token.yaml",
                           "model:\n  num_hidden_layers: 1\n  hidden_size: 16\n  intermediate_size: 16\n"
                           "  nffn_hidden_size: 16\n  shared_representation_size: 8\n  ema_projection_size: 4\n"
                           "  max_positions: 32\n  relative_positional_bias: simple\n  classifier_hidden_size: 16\n"
                           "data:\n  task: first_token\n  max_length: 32\n  bucket_batches: 2\n"
                           "  first_token: {classes: 4, examples: 40}\n"
                           "optim: {lr: 3.0e-3}\n"
                           "train: {batch_size: 8, max_steps: 6, eval_interval: 3, save_interval: 6, log_interval: 3,\n"
                           "        threads: 1}\n"
                           "output_dir: " + (root() / "first_token_run").string() + "\n");
  Recipe recipe = load_recipe(path);
  EXPECT_EQ(recipe.data.source.dir, "data_cache/first_token");  // null data.dir: named after the task
  EXPECT_EQ(task_info(recipe).num_labels, 4);                    // the row's description, from its own key
  EXPECT_TRUE(check_setup(recipe).empty());
  TrainSummary summary = train(recipe, TrainOptions{});
  EXPECT_EQ(summary.steps, 6);
  EXPECT_EQ(summary.test.examples, 40);
  EXPECT_GE(summary.test.accuracy, 0.0);
  const fs::path checkpoint = root() / "first_token_run" / "checkpoints" / "step-00000006";
  EXPECT_TRUE(fs::exists(checkpoint / "model.safetensors"));
  EvalSummary again = evaluate_checkpoint(recipe, checkpoint.string());
  EXPECT_EQ(again.test.accuracy, summary.test.accuracy);
  EXPECT_EQ(again.test.loss, summary.test.loss);
  // Its own check names its own key.
  try {
    load_recipe(path, {"data.first_token.min_length=20"});
    ADD_FAILURE() << "the row's check did not run";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("<command line>:1: data.first_token.min_length: must be at most 12"),
              std::string::npos)
        << e.what();
  }
  fs::remove_all(root() / "first_token_run");
}

TEST(Validate, ListsEveryProblemWithFileAndLine) {
  std::string path = write("many_problems.yaml",
                           "model:\n  hidden_size: -3\n  hiden_size: 8\n  bidirectional: maybe\n"
                           "data:\n  listops:\n    max_depth: 0\n"
                           "train:\n  max_steps: 10\n  batch_size: 2.5\n");
  Output run = run_mega("validate " + path + " optim.lr=fast");
  EXPECT_EQ(run.exit_code, 1) << run.output;
  for (const std::string& expected :
       {path + ":2: model.hidden_size: -3 is out of range", path + ":3: model.hiden_size: unknown key",
        path + ":4: model.bidirectional: expected true or false",
        path + ":7: data.listops.max_depth: 0 is out of range", path + ":10: train.batch_size: expected an integer",
        std::string("<command line>:1: optim.lr: expected a number"),
        std::string("recipe has 6 problems")})
    EXPECT_NE(run.output.find(expected), std::string::npos) << "missing: " << expected << "\n" << run.output;
  // load_recipe (train, eval) reports them all too.
  try {
    load_recipe(path);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(":2: model.hidden_size"), std::string::npos) << message;
    EXPECT_NE(message.find(":10: train.batch_size"), std::string::npos) << message;
  }
}

TEST(Validate, ModelConstructionErrorsNameTheRecipeKeyBeforeAnyDataIsRead) {
  const std::string recipe = source_dir() + "/recipes/configs/lra/listops_small.yaml";
  const fs::path data_dir = root() / "never_generated";
  const std::string overrides = " model.use_chunking=true model.chunk_size=4096 data.dir=" + data_dir.string() +
                                " output_dir=" + (root() / "never_run").string();
  Output validate = run_mega("validate " + recipe + overrides);
  EXPECT_EQ(validate.exit_code, 1) << validate.output;
  EXPECT_NE(validate.output.find("<command line>:2: model.chunk_size: [config]"), std::string::npos) << validate.output;
  Output train = run_mega("train " + recipe + overrides);
  EXPECT_NE(train.exit_code, 0);
  EXPECT_NE(train.output.find("<command line>:2: model.chunk_size: [config]"), std::string::npos) << train.output;
  EXPECT_FALSE(fs::exists(data_dir)) << "train generated data before failing on the model";
  // Every shipped recipe validates: each .yaml under recipes/configs, whatever its task.
  std::vector<fs::path> recipes;
  for (const auto& entry : fs::recursive_directory_iterator(source_dir() + "/recipes/configs"))
    if (entry.is_regular_file() && entry.path().extension() == ".yaml") recipes.push_back(entry.path());
  EXPECT_GE(recipes.size(), 2u);
  for (const fs::path& path : recipes) {
    Output ok = run_mega("validate " + path.string());
    EXPECT_EQ(ok.exit_code, 0) << path << "\n" << ok.output;
    const std::string task = load_recipe(path.string()).data.task;
    EXPECT_NE(ok.output.find("task " + task + ": "), std::string::npos) << path << "\n" << ok.output;
    if (task == "listops") {
      EXPECT_NE(ok.output.find("task listops: tokens input, vocabulary 17, 10 labels, metric accuracy"),
                std::string::npos)
          << ok.output;
    }
  }
}
