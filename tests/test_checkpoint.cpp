// Checkpoint folders: atomic save, retention of the last N and the best, refusal of damaged ones.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <utility>

#include "recipes/checkpoint.h"

using namespace mega;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::path(::testing::TempDir()) / name;
  fs::remove_all(dir);
  return dir;
}

Checkpoint sample(int64_t step) {
  Checkpoint c;
  c.config = {{"model_type", "mega"}, {"hidden_size", 4}};
  c.model["w"] = Tensor::full({2, 2}, static_cast<double>(step));
  c.optimizer["w.exp_avg"] = Tensor::full({2, 2}, 0.5);
  c.trainer_state = {{"step", step}};
  return c;
}

}  // namespace

TEST(Checkpoint, SavesLoadsAndKeepsTheLastNAndTheBest) {
  fs::path run = fresh_dir("ckpt_retention");
  CheckpointDir dir(run.string());
  for (int64_t step = 10; step <= 50; step += 10) dir.save(step, sample(step), 2, /*best=*/20);
  std::vector<std::string> kept = dir.list();
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_EQ(fs::path(kept[0]).filename(), "step-00000020");
  EXPECT_EQ(fs::path(kept[2]).filename(), "step-00000050");
  Checkpoint back = CheckpointDir::load(*dir.newest());
  EXPECT_EQ(back.trainer_state["step"], 50);
  EXPECT_EQ(back.model.at("w").at(3), 50.0);
  EXPECT_EQ(back.optimizer.at("w.exp_avg").at(0), 0.5);
  EXPECT_TRUE(fs::exists(fs::path(*dir.newest()) / "config.json"));  // HF layout
}

TEST(Checkpoint, AnInterruptedSaveIsNotListed) {
  fs::path run = fresh_dir("ckpt_interrupted");
  CheckpointDir dir(run.string());
  dir.save(1, sample(1), 3);
  fs::create_directories(run / "checkpoints" / ".step-00000002.tmp");  // a save killed half way
  EXPECT_EQ(fs::path(*dir.newest()).filename(), "step-00000001");
}

TEST(Checkpoint, ADamagedCheckpointIsRefusedNamingTheFile) {
  fs::path run = fresh_dir("ckpt_damaged");
  CheckpointDir dir(run.string());
  std::string saved = dir.save(3, sample(3), 3);
  fs::path model = fs::path(saved) / "model.safetensors";
  fs::resize_file(model, fs::file_size(model) - 4);  // truncated
  try {
    CheckpointDir::load(saved);
    FAIL() << "a truncated model.safetensors was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.safetensors"), std::string::npos) << e.what();
  }
  std::ofstream(fs::path(saved) / "trainer_state.json") << "{ not json";
  try {
    CheckpointDir::load(saved);
    FAIL() << "a corrupt trainer_state.json was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("trainer_state.json"), std::string::npos) << e.what();
  }
}

TEST(Checkpoint, SavingAStepAgainReplacesItWhole) {
  fs::path run = fresh_dir("ckpt_replace");
  CheckpointDir dir(run.string());
  dir.save(3, sample(3), 3);
  fs::create_directories(run / "checkpoints" / ".step-00000003.old");  // left by a replace killed half way
  Checkpoint again = sample(3);
  again.model["w"] = Tensor::full({2, 2}, 7.0);
  dir.save(3, again, 3);
  EXPECT_EQ(CheckpointDir::load(*dir.newest()).model.at("w").at(0), 7.0);
  EXPECT_EQ(dir.list().size(), 1u);
  EXPECT_FALSE(fs::exists(run / "checkpoints" / ".step-00000003.old"));
  EXPECT_FALSE(fs::exists(run / "checkpoints" / ".step-00000003.tmp"));
}

TEST(Checkpoint, AReplaceKilledBetweenItsRenamesIsRepairedOnOpening) {
  fs::path run = fresh_dir("ckpt_replace_killed");
  CheckpointDir(run.string()).save(4, sample(4), 3);
  // The moment between "step-4 renamed aside" and ".step-4.tmp renamed into place".
  fs::rename(run / "checkpoints" / "step-00000004", run / "checkpoints" / ".step-00000004.old");
  CheckpointDir reopened(run.string());
  ASSERT_TRUE(reopened.newest().has_value());
  EXPECT_EQ(fs::path(*reopened.newest()).filename(), "step-00000004");
  EXPECT_EQ(CheckpointDir::load(*reopened.newest()).model.at("w").at(0), 4.0);
  EXPECT_FALSE(fs::exists(run / "checkpoints" / ".step-00000004.old"));
}

TEST(Checkpoint, OnlyStepDigitFoldersCountAndUnusableOnesAreSetAside) {
  fs::path run = fresh_dir("ckpt_names");
  CheckpointDir dir(run.string());
  for (int64_t step = 1; step <= 3; ++step) dir.save(step, sample(step), 2);
  for (const char* junk : {"step-old", "step-00000009 copy", "step-"}) fs::create_directories(run / "checkpoints" / junk);
  ASSERT_EQ(dir.list().size(), 2u);  // the junk neither counts as kept nor is taken for the newest
  EXPECT_EQ(fs::path(*dir.newest()).filename(), "step-00000003");
  dir.save(4, sample(4), 2);
  EXPECT_EQ(fs::path(dir.list().front()).filename(), "step-00000003");
  const std::string aside = dir.set_aside(*dir.newest());
  EXPECT_EQ(fs::path(aside).filename(), ".step-00000004.unusable");
  EXPECT_TRUE(fs::exists(fs::path(aside) / "model.safetensors"));  // kept for inspection
  EXPECT_EQ(fs::path(*dir.newest()).filename(), "step-00000003");
}

TEST(Checkpoint, NonFiniteWeightsAndNegativeSecondMomentsAreRefused) {
  fs::path run = fresh_dir("ckpt_nonfinite");
  CheckpointDir dir(run.string());
  Checkpoint nan_weights = sample(1);
  nan_weights.model["w"] = Tensor::full({2, 2}, std::numeric_limits<double>::infinity());
  Checkpoint negative = sample(2);
  negative.optimizer["w.exp_avg_sq"] = Tensor::full({2, 2}, -0.25);
  for (const auto& [checkpoint, wanted] : {std::pair{&nan_weights, "'w' holds NaN or infinite values"},
                                           std::pair{&negative, "'w.exp_avg_sq' holds negative values"}}) {
    std::string saved = dir.save(checkpoint->trainer_state["step"].get<int64_t>(), *checkpoint, 3);
    try {
      CheckpointDir::load(saved);
      FAIL() << "accepted: " << wanted;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(wanted), std::string::npos) << e.what();
    }
  }
}
