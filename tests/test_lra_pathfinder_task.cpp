// The pathfinder task row (data/lra_pathfinder_task.cpp): its keys in the recipe schema, its checks, a
// tiny set generated through the row (atomically, with the marker) and a few training steps on it in
// process, a checkpoint evaluated again to the same numbers, and foreign files refused.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "data/generated_dataset.h"
#include "data/pathfinder.h"
#include "data/task.h"
#include "recipes/recipe.h"
#include "recipes/task_model.h"
#include "recipes/trainer.h"

using namespace mega;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path = fs::path(::testing::TempDir()) / ("mega_pathfinder_task_" + std::to_string(::getpid()));
  TempDir() {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

std::string write(const fs::path& path, const std::string& text) {
  std::ofstream(path) << text;
  return path.string();
}

std::string tiny_recipe(const fs::path& root) {
  return "model:\n  num_hidden_layers: 1\n  hidden_size: 16\n  intermediate_size: 16\n"
         "  nffn_hidden_size: 16\n  shared_representation_size: 8\n  ema_projection_size: 4\n"
         "  max_positions: 1024\n  relative_positional_bias: simple\n  use_chunking: true\n  chunk_size: 256\n"
         "  classifier_hidden_size: 16\n  num_labels: 2\n"
         "data:\n  task: pathfinder\n  dir: " + (root / "pf32").string() + "\n  max_length: 1024\n"
         "  generate: true\n  bucket_batches: 1\n"
         "  pathfinder: {resolution: 32, difficulty: easy, count: 40, seed: 3, split_seed: 1}\n"
         "optim: {lr: 3.0e-3}\n"
         "train: {batch_size: 8, eval_batch_size: 8, max_steps: 4, eval_interval: 2, save_interval: 4,\n"
         "        log_interval: 2, threads: 1}\n"
         "output_dir: " + (root / "run").string() + "\n";
}

}  // namespace

TEST(PathfinderTask, RowDescribesPixelsAndChecksItsKeys) {
  const Task& row = task_named("pathfinder");
  TaskSettings settings({{"resolution", int64_t{128}}, {"difficulty", std::string("hard")},
                         {"split_seed", int64_t{0}}, {"count", int64_t{100}}, {"seed", int64_t{0}}});
  const TaskDescription d = row.describe(settings);
  EXPECT_EQ(d.input.kind, InputKind::Pixels);
  EXPECT_EQ(d.input.vocab_size, 256);
  EXPECT_EQ(d.input.pixel_mean, kPathfinderPixelMean);
  EXPECT_EQ(d.input.pixel_std, kPathfinderPixelStd);
  EXPECT_EQ(d.num_labels, 2);
  ASSERT_FALSE(d.files.empty());
  EXPECT_EQ(d.files[0], "pathfinder128/curv_contour_length_14/metadata/*.npy");  // Path-X
  check_description("pathfinder", d);
  EXPECT_TRUE(row.check(settings).empty());
  TaskSettings odd({{"resolution", int64_t{48}}, {"difficulty", std::string("easy")}, {"split_seed", int64_t{0}},
                    {"count", int64_t{100}}, {"seed", int64_t{0}}});
  ASSERT_EQ(row.check(odd).size(), 1u);
  EXPECT_EQ(row.check(odd)[0].key, "resolution");

  TempDir dir;
  try {
    load_recipe(write(dir.path / "bad.yaml", "data:\n  task: pathfinder\n  pathfinder:\n    resolution: 48\n"));
    ADD_FAILURE() << "resolution 48 passed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(":4: data.pathfinder.resolution: must be 32, 64, 128"), std::string::npos)
        << e.what();
  }
  try {
    load_recipe(write(dir.path / "bad2.yaml", "data:\n  task: pathfinder\n  pathfinder:\n    difficulty: medium\n"));
    ADD_FAILURE() << "difficulty medium passed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("data.pathfinder.difficulty"), std::string::npos) << e.what();
  }
}

TEST(PathfinderTask, GeneratesTrainsAndEvaluatesACheckpoint) {
  TempDir dir;
  Recipe recipe = load_recipe(write(dir.path / "pf.yaml", tiny_recipe(dir.path)));
  EXPECT_TRUE(check_setup(recipe).empty());
  // The model reads intensities through its pixel embedding, normalised as the row describes.
  std::unique_ptr<TaskModel> model = build_model(recipe);
  const auto* classifier = dynamic_cast<const SequenceClassifierModel*>(model.get());
  ASSERT_NE(classifier, nullptr);
  EXPECT_EQ(classifier->options().input, LraInput::Pixels);
  EXPECT_EQ(classifier->options().pixel_mean, kPathfinderPixelMean);
  EXPECT_EQ(classifier->options().pixel_std, kPathfinderPixelStd);
  TrainSummary summary = train(recipe, TrainOptions{});
  EXPECT_EQ(summary.steps, 4);
  EXPECT_EQ(summary.test.examples, 4);  // 40 images: 32 / 4 / 4
  const fs::path data = dir.path / "pf32";
  EXPECT_TRUE(fs::exists(data / kGeneratedMarker));
  EXPECT_TRUE(fs::exists(data / "pathfinder32" / "curv_baseline" / "metadata" / "0.npy"));
  EXPECT_FALSE(fs::exists(dir.path / ".pf32.generating"));
  const fs::path checkpoint = dir.path / "run" / "checkpoints" / "step-00000004";
  ASSERT_TRUE(fs::exists(checkpoint / "model.safetensors"));
  EvalSummary again = evaluate_checkpoint(recipe, checkpoint.string());
  EXPECT_EQ(again.test.accuracy, summary.test.accuracy);
  EXPECT_EQ(again.test.loss, summary.test.loss);

  // The marker holds the settings: the same folder asked for with another seed is refused, naming it.
  const Task& row = task_named("pathfinder");
  auto source = [](const fs::path& folder, int64_t seed) {
    return DataSource{.dir = folder.string(), .max_length = 1024, .generate = true,
                      .settings = TaskSettings({{"resolution", int64_t{32}}, {"difficulty", std::string("easy")},
                                                {"split_seed", int64_t{1}}, {"count", int64_t{40}},
                                                {"seed", seed}})};
  };
  EXPECT_EQ(row.load(source(data, 3)).train.size(), 32u);  // ready: read, not generated again
  try {
    row.load(source(data, 4));
    ADD_FAILURE() << "a folder of other settings was used";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("seed: 3 in the folder, 4 asked"), std::string::npos) << e.what();
  }
  // A tree the generator did not write (no marker) is neither used nor overwritten.
  const fs::path foreign = dir.path / "foreign";
  fs::create_directories(foreign / "pathfinder32" / "curv_baseline");
  EXPECT_THROW(row.load(source(foreign, 3)), Error);
  EXPECT_TRUE(fs::is_empty(foreign / "pathfinder32" / "curv_baseline"));
}

TEST(PathfinderTask, ShippedRecipesValidate) {
  const fs::path configs = fs::path(__FILE__).parent_path().parent_path() / "recipes" / "configs" / "lra";
  for (const char* name : {"pathfinder.yaml", "pathx.yaml", "pathfinder32_small.yaml"}) {
    Recipe recipe = load_recipe((configs / name).string());
    EXPECT_TRUE(check_setup(recipe).empty()) << name;
    EXPECT_EQ(describe_task(recipe).input.kind, InputKind::Pixels) << name;
  }
  EXPECT_EQ(load_recipe((configs / "pathx.yaml").string()).data.source.settings.get_int("resolution"), 128);
}
