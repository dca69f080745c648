// The trainer end to end through the `mega` binary (MEGA_BINARY): a tiny ListOps recipe run without a
// break, then killed (SIGKILL) while training and while saving and resumed with --resume, must log the
// same losses bit for bit; a corrupt newest checkpoint is skipped for the newest valid one, and a
// resume that cannot work is refused without touching the run directory; `mega eval` reads a checkpoint. The kills come from fault-injection variables:
//   MEGA_FAULT_KILL_AFTER_STEP=N  SIGKILL right after update N, before it is logged or saved (trainer.cpp)
//   MEGA_FAULT_KILL_IN_SAVE=N     SIGKILL while saving step N, temporary folder written, not renamed
//                                 (checkpoint.cpp)
//   MEGA_FAULT_METRICS_FULL=R[:T] metrics row R and later fail like a full disk, T times (metrics.cpp)
//   MEGA_FAULT_KILL_IN_GENERATE=1 SIGKILL while generating a dataset, before its marker (generated_dataset.cpp)
// Beside them: the run folder's lock, validation of what a resume reads, the divergence guard, and
// the generated dataset's marker.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/listops.h"
#include "core/safetensors.h"
#include "recipes/recipe.h"
#include "recipes/trainer.h"
#include "tests/process_util.h"
#include "tests/temp_folder.h"

namespace fs = std::filesystem;

namespace {

const fs::path& root() {
  static const fs::path dir = mega::testing::make_temp_folder("mega_trainer_test");
  return dir;
}

// 1 block of D 16 on ListOps of 10-40 tokens: 24 updates of 8 take well under a second.
fs::path tiny_recipe() {
  fs::path path = root() / "tiny.yaml";
  if (fs::exists(path)) return path;
  fs::create_directories(root());
  std::ofstream out(path);
  out << "model:\n"
         "  num_hidden_layers: 1\n  hidden_size: 16\n  intermediate_size: 32\n  nffn_hidden_size: 32\n"
         "  shared_representation_size: 8\n  ema_projection_size: 4\n  max_positions: 64\n"
         "  normalization_type: layernorm\n  relative_positional_bias: simple\n"
         "  dropout_prob: 0.1\n  hidden_dropout_prob: 0.1\n  attention_probs_dropout_prob: 0.1\n"
         "  classifier_hidden_size: 16\n"
         "data:\n  dir: " << (root() / "data").string() << "\n  max_length: 64\n  bucket_batches: 4\n"
         "  generate: true\n"
         "  listops: {train_examples: 160, val_examples: 40, test_examples: 40, min_length: 10,\n"
         "            max_length: 40, max_depth: 4, max_args: 4}\n"
         "optim: {name: adamw, lr: 3.0e-3, weight_decay: 0.01, no_decay: [bias, norm, ema_gate]}\n"
         "schedule: {name: linear, warmup_steps: 3}\n"
         "train: {batch_size: 8, eval_batch_size: 16, max_steps: 24, eval_interval: 8, save_interval: 5,\n"
         "        log_interval: 1, seed: 3, threads: 1, grad_clip: 1.0, accumulate: 2}\n"
         "output_dir: " << (root() / "unused").string() << "\n";
  return path;
}

using Result = mega::testing::CommandResult;

Result run_mega(const std::string& arguments, const std::string& environment = "") {
  return mega::testing::run_mega_command(arguments, root() / "last_output.txt", environment);
}

Result train(const std::string& run_name, const std::string& extra = "", const std::string& environment = "") {
  return run_mega("train " + tiny_recipe().string() + " output_dir=" + (root() / run_name).string() + " " + extra,
              environment);
}

// (step, loss) of every training row, and every eval row as text.
struct Log {
  std::vector<std::pair<int64_t, double>> losses;
  std::vector<std::string> evals;
};

Log read_log(const std::string& run_name) {
  Log log;
  std::ifstream in(root() / run_name / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    auto row = nlohmann::json::parse(line);
    if (row.contains("loss")) log.losses.emplace_back(row["step"].get<int64_t>(), row["loss"].get<double>());
    else log.evals.push_back(line);
  }
  return log;
}

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class Trainer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Result run = train("uninterrupted");
    EXPECT_EQ(run.exit_code, 0) << run.output;
    reference_ = new Log(read_log("uninterrupted"));
  }
  static void TearDownTestSuite() {
    delete reference_;
    reference_ = nullptr;
    fs::remove_all(root());
  }
  static Log* reference_;
};
Log* Trainer::reference_ = nullptr;

}  // namespace

TEST_F(Trainer, UninterruptedRunLogsEveryStepAndReportsTestAccuracy) {
  ASSERT_EQ(reference_->losses.size(), 24u);
  for (size_t i = 0; i < reference_->losses.size(); ++i) EXPECT_EQ(reference_->losses[i].first, int64_t(i + 1));
  EXPECT_TRUE(fs::exists(root() / "uninterrupted" / "recipe.yaml"));
  EXPECT_TRUE(fs::exists(root() / "uninterrupted" / "checkpoints" / "step-00000024" / "model.safetensors"));
  ASSERT_FALSE(reference_->evals.empty());
  EXPECT_NE(reference_->evals.back().find("test_accuracy"), std::string::npos);
}

TEST_F(Trainer, KilledWhileTrainingResumesWithIdenticalLosses) {
  Result killed = train("killed_training", "", "MEGA_FAULT_KILL_AFTER_STEP=13");
  ASSERT_EQ(killed.exit_code, 128 + SIGKILL) << killed.output;
  EXPECT_LT(read_log("killed_training").losses.size(), 24u);
  Result resumed = train("killed_training", "--resume");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resumed from"), std::string::npos) << resumed.output;
  Log log = read_log("killed_training");
  EXPECT_EQ(log.losses, reference_->losses);  // exact: the same bits
  EXPECT_EQ(log.evals, reference_->evals);
}

TEST_F(Trainer, KilledWhileSavingResumesWithIdenticalLosses) {
  Result killed = train("killed_saving", "", "MEGA_FAULT_KILL_IN_SAVE=15");
  ASSERT_EQ(killed.exit_code, 128 + SIGKILL) << killed.output;
  // The interrupted save left only its hidden temporary folder; the newest real checkpoint is step 10.
  EXPECT_TRUE(fs::exists(root() / "killed_saving" / "checkpoints" / ".step-00000015.tmp"));
  EXPECT_FALSE(fs::exists(root() / "killed_saving" / "checkpoints" / "step-00000015"));
  Result resumed = train("killed_saving", "--resume");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("step-00000010"), std::string::npos) << resumed.output;
  Log log = read_log("killed_saving");
  EXPECT_EQ(log.losses, reference_->losses);
  EXPECT_EQ(log.evals, reference_->evals);
}

TEST_F(Trainer, CorruptNewestCheckpointIsSkippedForTheNewestValidOne) {
  Result killed = train("corrupt", "", "MEGA_FAULT_KILL_AFTER_STEP=12");
  ASSERT_EQ(killed.exit_code, 128 + SIGKILL) << killed.output;
  fs::path model = root() / "corrupt" / "checkpoints" / "step-00000010" / "model.safetensors";
  ASSERT_TRUE(fs::exists(model));
  fs::resize_file(model, fs::file_size(model) / 2);  // truncated
  Result resumed = train("corrupt", "--resume");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("warning: skipped checkpoint"), std::string::npos) << resumed.output;
  EXPECT_NE(resumed.output.find("step-00000010/model.safetensors"), std::string::npos) << resumed.output;
  EXPECT_NE(resumed.output.find("resumed from " + (root() / "corrupt" / "checkpoints" / "step-00000008").string()),
            std::string::npos)
      << resumed.output;
  Log log = read_log("corrupt");
  EXPECT_EQ(log.losses, reference_->losses);  // step 10 was trained again and its checkpoint replaced
  EXPECT_EQ(log.evals, reference_->evals);
  EXPECT_FALSE(fs::exists(root() / "corrupt" / "checkpoints" / ".step-00000010.old"));
  // The truncated checkpoint was set aside once the resume worked, then step 10 was saved afresh.
  EXPECT_NE(resumed.output.find("set the unusable checkpoint"), std::string::npos) << resumed.output;
  EXPECT_TRUE(fs::exists(root() / "corrupt" / "checkpoints" / ".step-00000010.unusable" / "model.safetensors"));
}

namespace {

// Every regular file of a run folder with its bytes; the lock file (which holds the pid of the last
// process that locked the folder) aside.
std::vector<std::pair<std::string, std::string>> snapshot(const fs::path& dir) {
  std::vector<std::pair<std::string, std::string>> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir))
    if (entry.is_regular_file() && entry.path().filename() != ".lock")
      files.emplace_back(entry.path().string(), slurp(entry.path()));
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

TEST_F(Trainer, NoValidCheckpointIsRefusedAndNothingIsTouched) {
  Result killed = train("all_corrupt", "", "MEGA_FAULT_KILL_AFTER_STEP=12");
  ASSERT_EQ(killed.exit_code, 128 + SIGKILL) << killed.output;
  for (const char* step : {"step-00000008", "step-00000010"}) {
    fs::path model = root() / "all_corrupt" / "checkpoints" / step / "model.safetensors";
    ASSERT_TRUE(fs::exists(model));
    fs::resize_file(model, fs::file_size(model) / 2);
  }
  const auto before = snapshot(root() / "all_corrupt");
  Result resumed = train("all_corrupt", "--resume train.log_interval=2");  // recipe.yaml would change
  EXPECT_EQ(resumed.exit_code, 1) << resumed.output;
  EXPECT_NE(resumed.output.find("no checkpoint"), std::string::npos) << resumed.output;
  EXPECT_NE(resumed.output.find("step-00000008/model.safetensors"), std::string::npos) << resumed.output;
  EXPECT_NE(resumed.output.find("step-00000010/model.safetensors"), std::string::npos) << resumed.output;
  EXPECT_EQ(before, snapshot(root() / "all_corrupt"));
}

namespace {

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

void write_json(const fs::path& path, const nlohmann::json& j) {
  std::ofstream out(path, std::ios::trunc);
  out << j.dump(2) << "\n";
}

}  // namespace

TEST_F(Trainer, TrainerStateOutOfRangeIsRefusedNamingTheFile) {
  Result killed = train("bad_state", "", "MEGA_FAULT_KILL_AFTER_STEP=12");
  ASSERT_EQ(killed.exit_code, 128 + SIGKILL) << killed.output;
  const fs::path checkpoints = root() / "bad_state" / "checkpoints";
  nlohmann::json state = read_json(checkpoints / "step-00000010" / "trainer_state.json");
  state["step"] = int64_t{1000000000000000};  // would report a finished run
  write_json(checkpoints / "step-00000010" / "trainer_state.json", state);
  state = read_json(checkpoints / "step-00000008" / "trainer_state.json");
  state["batch"] = -3;
  write_json(checkpoints / "step-00000008" / "trainer_state.json", state);
  const auto before = snapshot(root() / "bad_state");
  Result resumed = train("bad_state", "--resume");
  EXPECT_EQ(resumed.exit_code, 1) << resumed.output;
  EXPECT_NE(resumed.output.find("step-00000010/trainer_state.json': 'step' is 1000000000000000"), std::string::npos)
      << resumed.output;
  EXPECT_NE(resumed.output.find("step-00000008/trainer_state.json': 'batch' is -3"), std::string::npos)
      << resumed.output;
  EXPECT_EQ(before, snapshot(root() / "bad_state"));
}

TEST_F(Trainer, TrainerStateThatDoesNotFitTheRunIsRefused) {
  Result killed = train("misfit_state", "", "MEGA_FAULT_KILL_AFTER_STEP=12");
  ASSERT_EQ(killed.exit_code, 128 + SIGKILL) << killed.output;
  const fs::path state_file = root() / "misfit_state" / "checkpoints" / "step-00000010" / "trainer_state.json";
  nlohmann::json state = read_json(state_file);
  state["batch"] = 5;  // in range, but 10 updates of 2 batches of a 20-batch epoch end at epoch 1, batch 0
  write_json(state_file, state);
  Result resumed = train("misfit_state", "--resume");
  EXPECT_EQ(resumed.exit_code, 1) << resumed.output;
  EXPECT_NE(resumed.output.find("step-00000010/trainer_state.json': data position epoch 1 batch 5 does not follow"),
            std::string::npos)
      << resumed.output;
  Result shortened = train("misfit_state", "--resume train.max_steps=9");
  EXPECT_EQ(shortened.exit_code, 1) << shortened.output;
  EXPECT_NE(shortened.output.find("past the recipe's 9 updates"), std::string::npos) << shortened.output;
}

TEST_F(Trainer, NonFiniteWeightsAndNegativeSecondMomentsAreRefused) {
  Result killed = train("nan_weights", "", "MEGA_FAULT_KILL_AFTER_STEP=12");
  ASSERT_EQ(killed.exit_code, 128 + SIGKILL) << killed.output;
  const fs::path checkpoints = root() / "nan_weights" / "checkpoints";
  auto poison = [](const fs::path& file, const std::string& suffix, float value) {
    std::map<std::string, mega::Tensor> tensors;
    for (auto& [name, tensor] : mega::load_safetensors(file.string()).tensors) tensors[name] = tensor.clone();
    bool changed = false;
    for (auto& [name, tensor] : tensors)
      if (!changed && name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0 &&
          tensor.dtype() == mega::DType::F32) {
        tensor.data<float>()[0] = value;
        changed = true;
      }
    ASSERT_TRUE(changed) << file;
    mega::save_safetensors(file.string(), tensors);
  };
  poison(checkpoints / "step-00000010" / "model.safetensors", ".weight", std::nanf(""));
  poison(checkpoints / "step-00000008" / "optimizer.safetensors", ".exp_avg_sq", -1.0f);
  Result resumed = train("nan_weights", "--resume");
  EXPECT_EQ(resumed.exit_code, 1) << resumed.output;
  EXPECT_NE(resumed.output.find("NaN or infinite values (in " + (checkpoints / "step-00000010").string() +
                                "/model.safetensors)"),
            std::string::npos)
      << resumed.output;
  EXPECT_NE(resumed.output.find("negative values"), std::string::npos) << resumed.output;
  EXPECT_NE(resumed.output.find("step-00000008/optimizer.safetensors"), std::string::npos) << resumed.output;
}

TEST_F(Trainer, ResumeWithARecipeThatChangesTheTrainingIsRefusedNamingTheKeys) {
  Result killed = train("changed_recipe", "", "MEGA_FAULT_KILL_AFTER_STEP=12");
  ASSERT_EQ(killed.exit_code, 128 + SIGKILL) << killed.output;
  const auto before = snapshot(root() / "changed_recipe");
  Result changed = train("changed_recipe", "--resume train.batch_size=4 optim.lr=0.001");
  EXPECT_EQ(changed.exit_code, 1) << changed.output;
  EXPECT_NE(changed.output.find("train.batch_size: 8 in the run, 4 now"), std::string::npos) << changed.output;
  EXPECT_NE(changed.output.find("optim.lr: 0.003 in the run, 0.001 now"), std::string::npos) << changed.output;
  EXPECT_EQ(before, snapshot(root() / "changed_recipe"));  // recipe.yaml untouched
  // How often to save is no part of the computation: accepted, and the losses are the same.
  Result resumed = train("changed_recipe", "--resume train.save_interval=7");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_EQ(read_log("changed_recipe").losses, reference_->losses);
}

TEST_F(Trainer, ResumingAFinishedRunLogsNoSecondTestRow) {
  fs::copy(root() / "uninterrupted", root() / "finished", fs::copy_options::recursive);
  Result resumed = train("finished", "--resume");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  Log log = read_log("finished");
  EXPECT_EQ(log.losses, reference_->losses);
  EXPECT_EQ(log.evals, reference_->evals);
}

namespace {

// Every line of DIR/metrics.jsonl ends in a newline and is a JSON object.
void expect_whole_lines(const fs::path& path) {
  const std::string text = slurp(path);
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    EXPECT_TRUE(nlohmann::json::parse(line, nullptr, false).is_object()) << line;
}

}  // namespace

TEST_F(Trainer, FullDiskWhileLoggingStopsTheRunWithWholeLinesAndResumes) {
  Result full = train("disk_full", "", "MEGA_FAULT_METRICS_FULL=6");
  EXPECT_EQ(full.exit_code, 1) << full.output;
  EXPECT_NE(full.output.find("metrics.jsonl"), std::string::npos) << full.output;
  EXPECT_NE(full.output.find("No space left on device"), std::string::npos) << full.output;
  expect_whole_lines(root() / "disk_full" / "metrics.jsonl");
  EXPECT_EQ(read_log("disk_full").losses.size(), 5u);
  Result resumed = train("disk_full", "--resume");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_EQ(read_log("disk_full").losses, reference_->losses);
}

TEST_F(Trainer, FullDiskThatClearsIsRetried) {
  Result run = train("disk_full_briefly", "", "MEGA_FAULT_METRICS_FULL=6:2");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  expect_whole_lines(root() / "disk_full_briefly" / "metrics.jsonl");
  EXPECT_EQ(read_log("disk_full_briefly").losses, reference_->losses);
}

TEST_F(Trainer, TornLastMetricsLineIsCutOnResumeWithAWarning) {
  Result killed = train("torn", "", "MEGA_FAULT_KILL_AFTER_STEP=13");
  ASSERT_EQ(killed.exit_code, 128 + SIGKILL) << killed.output;
  {
    std::ofstream out(root() / "torn" / "metrics.jsonl", std::ios::app);
    out << "{\"step\": 13, \"loss\": 2.3";  // what a kill in the middle of a write leaves
  }
  Result resumed = train("torn", "--resume");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("metrics.jsonl:14: cut away a torn last line"), std::string::npos) << resumed.output;
  EXPECT_EQ(read_log("torn").losses, reference_->losses);
}

TEST_F(Trainer, BadMetricsRowBeforeTheLastIsAnErrorNamingTheLine) {
  Result killed = train("bad_row", "", "MEGA_FAULT_KILL_AFTER_STEP=13");
  ASSERT_EQ(killed.exit_code, 128 + SIGKILL) << killed.output;
  const fs::path metrics = root() / "bad_row" / "metrics.jsonl";
  std::string text = slurp(metrics);
  size_t third = text.find('\n', text.find('\n') + 1) + 1;
  text.insert(third, "not json\n");
  std::ofstream(metrics, std::ios::trunc) << text;
  const auto before = snapshot(root() / "bad_row");
  Result resumed = train("bad_row", "--resume");
  EXPECT_EQ(resumed.exit_code, 1) << resumed.output;
  EXPECT_NE(resumed.output.find(metrics.string() + ":3: not a metrics row"), std::string::npos) << resumed.output;
  EXPECT_EQ(before, snapshot(root() / "bad_row"));
}

TEST_F(Trainer, SecondRunOnTheSameFolderIsRefusedWithTheHoldersPid) {
  const fs::path dir = root() / "locked", rc = root() / "locked_rc.txt";
  std::string first = "(OMP_WAIT_POLICY=PASSIVE " + std::string(MEGA_BINARY) + " train " + tiny_recipe().string() +
                      " output_dir=" + dir.string() + " train.max_steps=200 train.eval_interval=1000" +
                      " train.save_interval=1000 > " + (root() / "locked_output.txt").string() +
                      " 2>&1; echo $? > " + rc.string() + ") &";
  ASSERT_EQ(std::system(first.c_str()), 0);
  auto wait_for = [](const std::function<bool()>& done) {
    for (int i = 0; i < 1200 && !done(); ++i) ::usleep(100 * 1000);
    return done();
  };
  ASSERT_TRUE(wait_for([&] { return fs::exists(dir / "metrics.jsonl") && fs::file_size(dir / "metrics.jsonl") > 0; }));
  std::string holder = slurp(dir / ".lock");
  holder.erase(holder.find_last_not_of('\n') + 1);
  ASSERT_FALSE(holder.empty());
  Result second = train("locked");
  EXPECT_EQ(second.exit_code, 1) << second.output;
  EXPECT_NE(second.output.find("in use by another run (pid " + holder), std::string::npos) << second.output;
  ASSERT_TRUE(wait_for([&] { return fs::exists(rc) && !slurp(rc).empty(); }));
  EXPECT_EQ(slurp(rc), "0\n") << slurp(root() / "locked_output.txt");
  Log log = read_log("locked");  // the first run's log is whole
  ASSERT_EQ(log.losses.size(), 200u);
  for (size_t i = 0; i < log.losses.size(); ++i) EXPECT_EQ(log.losses[i].first, int64_t(i + 1));
}

TEST_F(Trainer, DivergedRunStopsAndNeverPicksANonFiniteBest) {
  Result run = train("diverged", "optim.name=sgd optim.lr=100 train.grad_clip=0 optim.weight_decay=0 "
                                 "train.max_steps=60 train.eval_interval=12 train.max_nonfinite_steps=20");
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_NE(run.output.find("training diverged: 20 updates in a row"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("skipped "), std::string::npos) << run.output;  // the progress line counts them
  std::map<int64_t, bool> finite_val;  // step -> the val loss was finite
  int64_t skipped = 0;
  std::ifstream in(root() / "diverged" / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    auto row = nlohmann::json::parse(line);
    if (row.contains("skipped_steps")) skipped = row["skipped_steps"].get<int64_t>();
    if (row.value("split", "") == "val") finite_val[row["step"].get<int64_t>()] = row["val_loss"].is_number();
  }
  EXPECT_GT(skipped, 0);
  bool any_nonfinite_eval = false;
  for (const auto& [step, finite] : finite_val) any_nonfinite_eval = any_nonfinite_eval || !finite;
  EXPECT_TRUE(any_nonfinite_eval);  // else the test shows nothing
  for (const auto& entry : fs::directory_iterator(root() / "diverged" / "checkpoints")) {
    if (entry.path().filename().string().rfind("step-", 0) != 0) continue;
    const int64_t best = read_json(entry.path() / "trainer_state.json")["best_step"].get<int64_t>();
    if (best >= 0) {
      EXPECT_TRUE(finite_val.at(best)) << entry.path() << " marks a non-finite evaluation best";
    }
  }
}

TEST_F(Trainer, FreshRunIntoAnExistingRunIsRefused) {
  Result again = train("uninterrupted");
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.output.find("--resume"), std::string::npos) << again.output;
}

TEST_F(Trainer, EvalCommandReadsACheckpoint) {
  fs::path checkpoint = root() / "uninterrupted" / "checkpoints" / "step-00000024";
  Result run = run_mega("eval " + tiny_recipe().string() + " --checkpoint " + checkpoint.string());
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("test accuracy"), std::string::npos) << run.output;
  Result missing = run_mega("eval " + tiny_recipe().string() + " --checkpoint " + (root() / "nowhere").string());
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.output.find("nowhere"), std::string::npos) << missing.output;
}

TEST(TrainerBuilders, RecipeBecomesConstructorArguments) {
  mega::Recipe recipe = mega::load_recipe(tiny_recipe().string(), {"model.classifier_hidden_size=null"});
  mega::LraClassifierOptions options = mega::classifier_options_from_recipe(recipe, mega::task_info(recipe));
  EXPECT_EQ(options.encoder.hidden_size, 16);
  EXPECT_EQ(options.encoder.vocab_size, mega::kListOpsVocabSize);
  EXPECT_EQ(*options.encoder.pad_token_id, mega::kListOpsPad);
  EXPECT_EQ(options.classifier_hidden_size, 16);  // null: hidden_size
  EXPECT_EQ(options.num_labels, 10);
  EXPECT_DOUBLE_EQ(options.classifier_dropout, 0.1);  // null: dropout_prob
  auto model = mega::build_model(recipe);
  bool has_encoder = false, has_head = false;
  for (const auto& [name, p] : model->module().named_parameters()) {
    has_encoder = has_encoder || name.rfind("mega.layers.0.", 0) == 0;
    has_head = has_head || name.rfind("classifier.out_proj.", 0) == 0;
  }
  EXPECT_TRUE(has_encoder);
  EXPECT_TRUE(has_head);
}
