// Generated datasets (data/generated_dataset.h): generated into a temporary sibling and renamed into
// place with a marker; a folder with foreign files or other settings is refused and left as it is.
// The end-to-end cases (`mega listops-data` killed while generating, `mega train` on a folder with a
// file of its own) run the binary (MEGA_BINARY).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "data/generated_dataset.h"
#include "tests/process_util.h"

namespace fs = std::filesystem;

namespace {

class GeneratedDatasetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) / ("mega_generated_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // A generator of two small files whose text shows its one setting.
  static mega::GeneratedDataset counting(int64_t count) {
    mega::GeneratedDataset dataset;
    dataset.generator = "counting";
    dataset.settings = {{"count", count}, {"seed", 7}};
    dataset.files = {"a.txt", "b.txt"};
    dataset.write = [count](const std::string& folder) {
      for (const char* name : {"a.txt", "b.txt"}) std::ofstream(fs::path(folder) / name) << name << count << "\n";
    };
    return dataset;
  }

  static std::string slurp(const fs::path& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  static std::string error_of(const std::function<void()>& body) {
    try {
      body();
    } catch (const mega::Error& e) {
      return e.what();
    }
    return "";
  }

  fs::path root_;
};

TEST_F(GeneratedDatasetTest, GeneratesIntoPlaceWithAMarker) {
  const fs::path dir = root_ / "sets" / "counting";
  EXPECT_FALSE(mega::generated_dataset_ready(dir.string(), counting(3)));
  mega::generate_dataset(dir.string(), counting(3));
  EXPECT_EQ(slurp(dir / "a.txt"), "a.txt3\n");
  EXPECT_TRUE(fs::exists(dir / mega::kGeneratedMarker));
  EXPECT_FALSE(fs::exists(root_ / "sets" / ".counting.generating"));
  EXPECT_TRUE(mega::generated_dataset_ready(dir.string(), counting(3)));
  EXPECT_TRUE(mega::generated_dataset_ready(dir.string() + "/", counting(3)));
}

TEST_F(GeneratedDatasetTest, OtherSettingsAreRefusedNamingEachDifference) {
  const fs::path dir = root_ / "counting";
  mega::generate_dataset(dir.string(), counting(3));
  const std::string error = error_of([&] { mega::generated_dataset_ready(dir.string(), counting(4)); });
  EXPECT_NE(error.find("count: 3 in the folder, 4 asked"), std::string::npos) << error;
  EXPECT_EQ(error.find("seed"), std::string::npos) << error;  // only what differs
  EXPECT_EQ(slurp(dir / "a.txt"), "a.txt3\n");
}

TEST_F(GeneratedDatasetTest, FilesWithoutTheMarkerAreRefusedAndKept) {
  const fs::path dir = root_ / "counting";
  fs::create_directories(dir);
  std::ofstream(dir / "b.txt") << "mine\n";
  const std::string error = error_of([&] { mega::generated_dataset_ready(dir.string(), counting(3)); });
  EXPECT_NE(error.find("holds b.txt but no .generated.json"), std::string::npos) << error;
  EXPECT_EQ(slurp(dir / "b.txt"), "mine\n");
}

TEST_F(GeneratedDatasetTest, AFolderWithOtherFilesGetsTheGeneratedOnesBesideThem) {
  const fs::path dir = root_ / "counting";
  fs::create_directories(dir);
  std::ofstream(dir / "notes.txt") << "keep\n";
  ASSERT_FALSE(mega::generated_dataset_ready(dir.string(), counting(2)));
  mega::generate_dataset(dir.string(), counting(2));
  EXPECT_EQ(slurp(dir / "notes.txt"), "keep\n");
  EXPECT_TRUE(mega::generated_dataset_ready(dir.string(), counting(2)));
}

TEST_F(GeneratedDatasetTest, AMarkedFolderMissingAFileIsRefused) {
  const fs::path dir = root_ / "counting";
  mega::generate_dataset(dir.string(), counting(3));
  fs::remove(dir / "b.txt");
  const std::string error = error_of([&] { mega::generated_dataset_ready(dir.string(), counting(3)); });
  EXPECT_NE(error.find("lacks b.txt"), std::string::npos) << error;
}

// Two runs sharing a data.dir: the second waits for the first's lock instead of generating beside it.
TEST_F(GeneratedDatasetTest, ASecondGeneratorWaitsForTheLockOfTheFirst) {
  const fs::path dir = root_ / "counting";
  std::atomic<bool> second_has_lock{false};
  std::thread second;
  {
    const mega::GenerationLock first(dir.string());
    second = std::thread([&] {
      const mega::GenerationLock lock(dir.string());
      second_has_lock = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    EXPECT_FALSE(second_has_lock.load()) << "the lock did not exclude a second holder";
  }
  second.join();
  EXPECT_TRUE(second_has_lock.load());
  EXPECT_TRUE(fs::exists(root_ / ".counting.lock"));
}

int run_mega(const std::string& arguments, const fs::path& log, const std::string& environment = "") {
  return mega::testing::run_mega_command(arguments, log, environment).exit_code;
}

// A small ListOps recipe: a 40-example generated set of short expressions.
fs::path listops_recipe(const fs::path& root, const fs::path& data_dir) {
  fs::path path = root / "listops.yaml";
  std::ofstream out(path);
  out << "model: {num_hidden_layers: 1, hidden_size: 16, intermediate_size: 32, nffn_hidden_size: 32,\n"
         "        shared_representation_size: 8, ema_projection_size: 4, max_positions: 64}\n"
         "data:\n  dir: " << data_dir.string() << "\n  max_length: 64\n  generate: true\n"
         "  listops: {train_examples: 24, val_examples: 8, test_examples: 8, min_length: 10,\n"
         "              max_length: 30, max_depth: 3, max_args: 3}\n"
         "train: {batch_size: 8, max_steps: 2, eval_interval: 2, save_interval: 2, log_interval: 1, threads: 1}\n"
         "output_dir: " << (root / "run").string() << "\n";
  return path;
}

TEST_F(GeneratedDatasetTest, KilledListOpsGenerationLeavesNoDatasetAndTheNextTryGenerates) {
  const fs::path data = root_ / "listops", log = root_ / "log.txt";
  const fs::path recipe = listops_recipe(root_, data);
  EXPECT_EQ(run_mega("listops-data " + recipe.string(), log, "MEGA_FAULT_KILL_IN_GENERATE=1"), 128 + SIGKILL)
      << slurp(log);
  EXPECT_FALSE(fs::exists(data / "basic_train.tsv"));  // nothing half-written under the dataset's name
  ASSERT_EQ(run_mega("listops-data " + recipe.string(), log), 0) << slurp(log);
  EXPECT_NE(slurp(log).find("wrote "), std::string::npos) << slurp(log);
  EXPECT_FALSE(fs::exists(root_ / ".listops.generating"));
  ASSERT_EQ(run_mega("listops-data " + recipe.string(), log), 0) << slurp(log);
  EXPECT_NE(slurp(log).find("nothing written"), std::string::npos) << slurp(log);
  // Other generator settings: refused, naming the setting.
  EXPECT_EQ(run_mega("train " + recipe.string() + " data.listops.max_depth=4", log), 1) << slurp(log);
  EXPECT_NE(slurp(log).find("max_depth: 3 in the folder, 4 asked"), std::string::npos) << slurp(log);
}

TEST_F(GeneratedDatasetTest, TrainingNeverOverwritesASplitFileItDidNotWrite) {
  const fs::path data = root_ / "listops", log = root_ / "log.txt";
  const fs::path recipe = listops_recipe(root_, data);
  fs::create_directories(data);
  std::ofstream(data / "basic_val.tsv") << "Source\tTarget\n( [MAX 2 ) 3 ] )\t3\n";
  const std::string before = slurp(data / "basic_val.tsv");
  EXPECT_EQ(run_mega("train " + recipe.string(), log), 1) << slurp(log);
  EXPECT_NE(slurp(log).find("holds basic_val.tsv but no .generated.json"), std::string::npos) << slurp(log);
  EXPECT_EQ(slurp(data / "basic_val.tsv"), before);
  EXPECT_FALSE(fs::exists(data / "basic_train.tsv"));
}

}  // namespace
