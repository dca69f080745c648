// The trainer end to end through the `mega` binary (MEGA_BINARY): a tiny ListOps recipe run without a
// break, then killed (SIGKILL) while training and while saving and resumed with --resume, must log the
// same losses bit for bit; a corrupt newest checkpoint is refused without touching the run directory;
// `mega eval` reads a checkpoint. The kills come from fault-injection variables:
//   MEGA_FAULT_KILL_AFTER_STEP=N  SIGKILL right after update N, before it is logged or saved (trainer.cpp)
//   MEGA_FAULT_KILL_IN_SAVE=N     SIGKILL while saving step N, temporary folder written, not renamed
//                                 (checkpoint.cpp)
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/listops.h"
#include "recipes/recipe.h"
#include "recipes/trainer.h"

namespace fs = std::filesystem;

namespace {

const fs::path& root() {
  static const fs::path dir = [] {
    // One folder per process: CTest runs each test in a process of its own, side by side.
    fs::path d = fs::path(::testing::TempDir()) / ("mega_trainer_test_" + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
  }();
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

struct Result {
  int exit_code = -1;  // 128 + signal when killed, as a shell reports it
  std::string output;
};

Result run_mega(const std::string& arguments, const std::string& environment = "") {
  fs::path log = root() / "last_output.txt";
  std::string command = "OMP_WAIT_POLICY=PASSIVE " + environment + " " + MEGA_BINARY + " " + arguments + " > " +
                        log.string() + " 2>&1";
  int status = std::system(command.c_str());
  Result run;
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  run.output = text.str();
  return run;
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

TEST_F(Trainer, CorruptNewestCheckpointIsRefusedAndNothingIsTouched) {
  Result killed = train("corrupt", "", "MEGA_FAULT_KILL_AFTER_STEP=12");
  ASSERT_EQ(killed.exit_code, 128 + SIGKILL) << killed.output;
  fs::path model = root() / "corrupt" / "checkpoints" / "step-00000010" / "model.safetensors";
  ASSERT_TRUE(fs::exists(model));
  fs::resize_file(model, fs::file_size(model) / 2);  // truncated
  std::vector<std::pair<std::string, std::string>> before;
  for (const auto& entry : fs::recursive_directory_iterator(root() / "corrupt"))
    if (entry.is_regular_file()) before.emplace_back(entry.path().string(), slurp(entry.path()));
  Result resumed = train("corrupt", "--resume");
  EXPECT_NE(resumed.exit_code, 0);
  EXPECT_NE(resumed.output.find("step-00000010/model.safetensors"), std::string::npos) << resumed.output;
  std::vector<std::pair<std::string, std::string>> after;
  for (const auto& entry : fs::recursive_directory_iterator(root() / "corrupt"))
    if (entry.is_regular_file()) after.emplace_back(entry.path().string(), slurp(entry.path()));
  EXPECT_EQ(before, after);
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
