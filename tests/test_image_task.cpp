// The image task rows (data/image_data.h: image, fashion_mnist) on small files written here: their
// descriptions, splits and keys, a few training steps of each through the trainer, the pixel model's
// checkpoint round trip (config.json keeps input and normalisation; `mega eval` reads it back), and
// `mega lra-table` on run folders written here.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "data/image_data.h"
#include "data/task.h"
#include "recipes/recipe.h"
#include "recipes/trainer.h"
#include "tests/process_util.h"
#include "tests/temp_folder.h"

using namespace mega;
namespace fs = std::filesystem;

namespace {

const fs::path& root() {
  static const fs::path dir = mega::testing::make_temp_folder("mega_image_task_test");
  return dir;
}

std::string write_text(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
  return path.string();
}

void write_bytes(const fs::path& path, const std::vector<uint8_t>& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

using Output = mega::testing::CommandResult;

Output run_mega(const std::string& arguments) {
  return mega::testing::run_mega_command(arguments, root() / "output.txt");
}

// A CIFAR-10 batch file of `count` records: the label of record i is (first + i) % 10, and its grey
// image is bright in the label's rows, dark elsewhere (learnable, and every value 0-255 is possible).
void write_cifar_batch(const fs::path& path, int count, int first) {
  std::vector<uint8_t> bytes;
  for (int i = 0; i < count; ++i) {
    const int label = (first + i) % 10;
    bytes.push_back(static_cast<uint8_t>(label));
    for (int plane = 0; plane < 3; ++plane)
      for (int p = 0; p < kCifarPixels; ++p) bytes.push_back(p / kCifarSide / 3 == label ? 250 : 5 * (i % 3));
  }
  write_bytes(path, bytes);
}

fs::path write_cifar_release(const std::string& name) {
  const fs::path dir = root() / name;
  for (int b = 1; b <= 5; ++b) write_cifar_batch(dir / ("data_batch_" + std::to_string(b) + ".bin"), 4, b);
  write_cifar_batch(dir / "test_batch.bin", 6, 0);
  return dir;
}

void put_u32(std::vector<uint8_t>& bytes, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<uint8_t>(value >> shift));
}

void write_gzip(const fs::path& path, const std::vector<uint8_t>& bytes) {
  gzFile out = gzopen(path.string().c_str(), "wb");
  ASSERT_NE(out, nullptr);
  ASSERT_EQ(gzwrite(out, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  gzclose(out);
}

// An MNIST-family IDX pair (gzip, as Debian ships Fashion-MNIST): `count` 28x28 images, label i % 10.
void write_idx_pair(const fs::path& dir, const std::string& prefix, uint32_t count) {
  std::vector<uint8_t> images, labels;
  put_u32(images, 0x803);
  put_u32(images, count);
  put_u32(images, 28);
  put_u32(images, 28);
  put_u32(labels, 0x801);
  put_u32(labels, count);
  for (uint32_t i = 0; i < count; ++i) {
    labels.push_back(static_cast<uint8_t>(i % 10));
    for (uint32_t p = 0; p < 28 * 28; ++p) images.push_back(p / 28 / 2 == i % 10 ? 255 : 0);
  }
  fs::create_directories(dir);
  write_gzip(dir / (prefix + "-images-idx3-ubyte.gz"), images);
  write_gzip(dir / (prefix + "-labels-idx1-ubyte.gz"), labels);
}

// A tiny Mega for `task` reading `dir`, trained `steps` updates; images cut to 256 steps (data.max_length)
// to keep the test fast.
std::string tiny_recipe(const std::string& name, const std::string& task, const fs::path& dir, int steps,
                        const std::string& extra_data = "") {
  return write_text(root() / (name + ".yaml"),
                    "model:\n  num_hidden_layers: 1\n  hidden_size: 16\n  intermediate_size: 16\n"
                    "  nffn_hidden_size: 16\n  shared_representation_size: 8\n  ema_projection_size: 4\n"
                    "  max_positions: 1024\n  relative_positional_bias: simple\n  use_chunking: true\n"
                    "  chunk_size: 256\n  normalization_type: layernorm\n  classifier_hidden_size: 16\n"
                    "data:\n  task: " + task + "\n  dir: " + dir.string() + "\n  max_length: 256\n"
                    "  bucket_batches: 1\n" + extra_data +
                    "optim: {lr: 3.0e-3}\n"
                    "train: {batch_size: 4, max_steps: " + std::to_string(steps) + ", eval_interval: " +
                    std::to_string(steps) + ", save_interval: " + std::to_string(steps) +
                    ", log_interval: 1, threads: 1}\n"
                    "output_dir: " + (root() / (name + "_run")).string() + "\n");
}

bool has_parameter(const TaskModel& model, const std::string& name) {
  for (const auto& [parameter, value] : model.module().named_parameters())
    if (parameter == name) return true;
  return false;
}

}  // namespace

TEST(ImageTask, RowsDescribePixelsTheirLabelsAndKeys) {
  const Task& image = task_named("image");
  TaskSettings pixels({{"input", std::string("pixels")}, {"pixel_mean", 0.48}, {"pixel_std", 0.24},
                       {"val_fraction", 0.1}});
  const TaskDescription d = image.describe(pixels);
  EXPECT_EQ(d.input.kind, InputKind::Pixels);
  EXPECT_EQ(d.input.vocab_size, 256);
  EXPECT_EQ(d.input.pad_id, 0);
  EXPECT_DOUBLE_EQ(d.input.pixel_mean, 0.48);
  EXPECT_DOUBLE_EQ(d.input.pixel_std, 0.24);
  EXPECT_EQ(d.num_labels, 10);
  check_description("image", d);
  // The token variant: 256 grey levels plus a padding id none of them takes.
  TaskSettings tokens({{"input", std::string("tokens")}, {"pixel_mean", 0.48}, {"pixel_std", 0.24},
                       {"val_fraction", 0.1}});
  const TaskDescription t = image.describe(tokens);
  EXPECT_EQ(t.input.kind, InputKind::Tokens);
  EXPECT_EQ(t.input.vocab_size, 257);
  EXPECT_EQ(t.input.pad_id, 256);
  check_description("image", t);
  const TaskDescription f = task_named("fashion_mnist").describe(
      TaskSettings({{"pixel_mean", 0.286}, {"pixel_std", 0.353}, {"val_fraction", 0.1}}));
  EXPECT_EQ(f.input.kind, InputKind::Pixels);
  EXPECT_EQ(f.num_labels, 10);
  // The schema takes the rows' keys; a wrong choice names the key and line.
  bool found = false;
  for (const KeySpec& spec : recipe_schema()) found = found || spec.path == "data.image.input";
  EXPECT_TRUE(found);
  const std::string path = write_text(root() / "bad_input.yaml", "data:\n  task: image\n  image:\n    input: rgb\n"
                                                                 "train:\n  max_steps: 1\n");
  try {
    load_recipe(path);
    ADD_FAILURE() << "data.image.input: rgb passed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path + ":4: data.image.input"), std::string::npos) << e.what();
  }
}

TEST(ImageTask, CifarRowSplitsLoadsAndNamesMissingFiles) {
  const fs::path dir = write_cifar_release("cifar_splits");
  DataSource source{dir.string(), 1024, false,
                    TaskSettings({{"input", std::string("pixels")}, {"pixel_mean", 0.48}, {"pixel_std", 0.24},
                                  {"val_fraction", 0.1}})};
  TaskSplits splits = task_named("image").load(source);
  EXPECT_EQ(splits.train.size(), 18u);  // round(0.9 * 20)
  EXPECT_EQ(splits.val.size(), 2u);
  EXPECT_EQ(splits.test.size(), 6u);
  ASSERT_EQ(splits.train[0].ids.size(), 1024u);
  EXPECT_EQ(splits.train[0].label, 1);
  EXPECT_EQ(splits.train[0].ids[kCifarSide * 3], rgb_to_grey(250, 250, 250));  // row 3 of label 1 is bright
  EXPECT_EQ(splits.train[0].ids[0], 0);
  // data.max_length cuts every image.
  source.max_length = 100;
  EXPECT_EQ(task_named("image").load(source).test[0].ids.size(), 100u);
  fs::remove(dir / "test_batch.bin");
  try {
    task_named("image").load(source);
    ADD_FAILURE() << "a release without test_batch.bin loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir.string()), std::string::npos) << e.what();
  }
}

TEST(ImageTask, ImageTrainsOnPixelsAndItsCheckpointEvaluatesAgain) {
  const fs::path dir = write_cifar_release("cifar_train");
  const std::string path = tiny_recipe("image_pixels", "image", dir, 3);
  Recipe recipe = load_recipe(path);
  EXPECT_TRUE(check_setup(recipe).empty());
  TrainSummary summary = train(recipe, TrainOptions{});
  EXPECT_EQ(summary.steps, 3);
  EXPECT_EQ(summary.test.examples, 6);
  const fs::path checkpoint = root() / "image_pixels_run" / "checkpoints" / "step-00000003";
  ASSERT_TRUE(fs::exists(checkpoint / "model.safetensors"));
  // config.json says pixels with the task's normalisation; the pixel embedding is saved.
  std::ifstream config_in(checkpoint / "config.json");
  const nlohmann::json config = nlohmann::json::parse(config_in);
  EXPECT_EQ(config["lra_classifier"]["input"], "pixels");
  EXPECT_DOUBLE_EQ(config["lra_classifier"]["pixel_mean"].get<double>(), 0.48);
  EXPECT_DOUBLE_EQ(config["lra_classifier"]["pixel_std"].get<double>(), 0.24);
  std::unique_ptr<TaskModel> model = build_model(recipe);
  EXPECT_TRUE(has_parameter(*model, "pixel_embedding.weight"));
  // In-process and through `mega eval`, the same numbers.
  EvalSummary again = evaluate_checkpoint(recipe, checkpoint.string());
  EXPECT_EQ(again.test.accuracy, summary.test.accuracy);
  EXPECT_EQ(again.test.loss, summary.test.loss);
  Output eval = run_mega("eval " + path + " --checkpoint " + checkpoint.string());
  EXPECT_EQ(eval.exit_code, 0) << eval.output;
  char expected[64];
  std::snprintf(expected, sizeof expected, "test accuracy %.4f, test loss %.4f", summary.test.accuracy,
                summary.test.loss);
  EXPECT_NE(eval.output.find(expected), std::string::npos) << expected << "\n" << eval.output;
  // The saved model keeps its own normalisation whatever the recipe now says.
  Recipe other = load_recipe(path, {"data.image.pixel_mean=0.1"});
  EXPECT_EQ(evaluate_checkpoint(other, checkpoint.string()).test.loss, summary.test.loss);
  // A pixel checkpoint is refused for the token variant, naming config.json.
  Recipe tokens = load_recipe(path, {"data.image.input=tokens"});
  try {
    evaluate_checkpoint(tokens, checkpoint.string());
    ADD_FAILURE() << "a pixel model loaded for token input";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
  }
  fs::remove_all(root() / "image_pixels_run");
}

TEST(ImageTask, ImageTrainsOnGreyLevelTokens) {
  const fs::path dir = write_cifar_release("cifar_tokens");
  Recipe recipe = load_recipe(tiny_recipe("image_tokens", "image", dir, 2, "  image: {input: tokens}\n"));
  std::unique_ptr<TaskModel> model = build_model(recipe);
  EXPECT_FALSE(has_parameter(*model, "pixel_embedding.weight"));
  EXPECT_EQ(model->encoder_config().vocab_size, 257);
  EXPECT_EQ(model->encoder_config().pad_token_id, 256);
  TrainSummary summary = train(recipe, TrainOptions{});
  EXPECT_EQ(summary.steps, 2);
  EXPECT_EQ(summary.test.examples, 6);
  fs::remove_all(root() / "image_tokens_run");
}

TEST(ImageTask, FashionMnistRowTrainsOnIdxFiles) {
  const fs::path dir = root() / "fashion";
  write_idx_pair(dir, "train", 20);
  write_idx_pair(dir, "t10k", 10);
  const std::string path = tiny_recipe("fashion", "fashion_mnist", dir, 3);
  Recipe recipe = load_recipe(path);
  TaskSplits splits = task_named("fashion_mnist").load(recipe.data.source);
  EXPECT_EQ(splits.train.size(), 18u);
  EXPECT_EQ(splits.val.size(), 2u);
  EXPECT_EQ(splits.test.size(), 10u);
  EXPECT_EQ(splits.test[3].ids.size(), 256u);  // 784 pixels cut to data.max_length
  TrainSummary summary = train(recipe, TrainOptions{});
  EXPECT_EQ(summary.steps, 3);
  EXPECT_EQ(summary.test.examples, 10);
  // A folder without the files: the error says where it looked and how to get Debian's copy.
  try {
    train(load_recipe(path, {"data.dir=" + (root() / "nowhere").string(), "output_dir=" + (root() / "x").string()}),
          TrainOptions{});
    ADD_FAILURE() << "an empty data.dir trained";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("data.dir"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("dataset-fashion-mnist"), std::string::npos) << e.what();
  }
  fs::remove_all(root() / "fashion_run");
  fs::remove_all(root() / "x");
}

TEST(LraTable, PrintsOurRunsNextToThePaperRow) {
  auto run = [](const std::string& name, const std::string& task, const std::string& task_keys,
                const std::string& metrics) {
    const fs::path dir = root() / "table" / name;
    write_text(dir / "recipe.yaml", "# resolved\ndata:\n  task: " + task + "\n" + task_keys + "train:\n  seed: 1\n");
    write_text(dir / "metrics.jsonl", metrics);
    return dir.string();
  };
  const std::string image =
      run("image", "image", "  image:\n    input: pixels\n",
          "{\"step\":10,\"loss\":2.0}\n{\"step\":10,\"split\":\"val\",\"val_loss\":1.0,\"val_accuracy\":0.5}\n"
          "{\"step\":10,\"split\":\"test\",\"test_loss\":1.0,\"test_accuracy\":0.5}\n"
          "{\"step\":20,\"split\":\"test\",\"test_loss\":0.9,\"test_accuracy\":0.8512}\n");
  const std::string listops =
      run("listops", "listops", "", "{\"step\":5,\"split\":\"test\",\"test_loss\":1.5,\"test_accuracy\":0.4}\n");
  const std::string other = run("fashion", "fashion_mnist", "", "{\"step\":5,\"split\":\"test\",\"test_accuracy\":0.9}\n");
  Output table = run_mega("lra-table " + image + " " + listops + " " + other);
  ASSERT_EQ(table.exit_code, 0) << table.output;
  for (const std::string& expected :
       {std::string("Model         ListOps       Text  Retrieval      Image Pathfinder     Path-X        Avg"),
        std::string("Mega paper      63.14      90.43      91.25      90.44      96.01      97.98      88.21"),
        std::string("ours            40.00          -          -      85.12          -          -          -"),
        other + ": its task is not an LRA task; skipped"})
    EXPECT_NE(table.output.find(expected), std::string::npos) << "missing: " << expected << "\n" << table.output;
  // Path-X is Pathfinder at 128 x 128; with all six, the average.
  const std::vector<std::string> six = {
      image, listops, run("text", "text", "", "{\"split\":\"test\",\"test_accuracy\":0.6}\n"),
      run("retrieval", "retrieval", "", "{\"split\":\"test\",\"test_accuracy\":0.7}\n"),
      run("pf32", "pathfinder", "  pathfinder:\n    resolution: 32\n", "{\"split\":\"test\",\"test_accuracy\":0.75}\n"),
      run("pf128", "pathfinder", "  pathfinder:\n    resolution: 128\n", "{\"split\":\"test\",\"test_accuracy\":0.55}\n")};
  std::string all;
  for (const std::string& dir : six) all.append(" ").append(dir);
  table = run_mega("lra-table " + all);
  ASSERT_EQ(table.exit_code, 0) << table.output;
  EXPECT_NE(table.output.find("ours            40.00      60.00      70.00      85.12      75.00      55.00      64.19"),
            std::string::npos)
      << table.output;
  // Two runs of one task, and a run that has not finished, are errors naming the folders.
  table = run_mega("lra-table " + image + " " + image);
  EXPECT_NE(table.exit_code, 0);
  EXPECT_NE(table.output.find("both Image runs"), std::string::npos) << table.output;
  const std::string unfinished = run("unfinished", "image", "", "{\"step\":1,\"loss\":2.0}\n");
  table = run_mega("lra-table " + unfinished);
  EXPECT_NE(table.exit_code, 0);
  EXPECT_NE(table.output.find(unfinished + "/metrics.jsonl: no test evaluation"), std::string::npos) << table.output;
}
