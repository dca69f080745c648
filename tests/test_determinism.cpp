// Training is a function of the recipe: through the `mega` binary (MEGA_BINARY), two runs with the same seed
// and thread count write byte-identical weights and the same metrics rows, and a run killed mid-way
// (MEGA_FAULT_KILL_AFTER_STEP, trainer.cpp) and resumed logs exactly the loss and gradient norm of the
// uninterrupted run at every step. The sequences (60-120 tokens) are long enough that the EMA takes its FFT
// path, whose FFTW plans once differed from run to run (ops/fft.cpp: they were chosen by timing).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/process_util.h"
#include "tests/temp_folder.h"

namespace fs = std::filesystem;

namespace {

const fs::path& root() {
  static const fs::path dir = mega::testing::make_temp_folder("mega_determinism_test");
  return dir;
}

constexpr int kSteps = 30;

// 1 block of D 16 on ListOps of 60-120 tokens, dropout on, gradient clipping and accumulation: 30 updates
// of 8 take about a second on one thread.
fs::path recipe() {
  fs::path path = root() / "determinism.yaml";
  if (fs::exists(path)) return path;
  std::ofstream out(path);
  out << "model:\n"
         "  num_hidden_layers: 1\n  hidden_size: 16\n  intermediate_size: 32\n  nffn_hidden_size: 32\n"
         "  shared_representation_size: 8\n  ema_projection_size: 4\n  max_positions: 128\n"
         "  normalization_type: layernorm\n  relative_positional_bias: simple\n"
         "  dropout_prob: 0.1\n  hidden_dropout_prob: 0.1\n  attention_probs_dropout_prob: 0.1\n"
         "  classifier_hidden_size: 16\n"
         "data:\n  dir: " << (root() / "data").string() << "\n  max_length: 128\n  bucket_batches: 4\n"
         "  generate: true\n"
         "  listops: {train_examples: 160, val_examples: 24, test_examples: 24, min_length: 60,\n"
         "              max_length: 120, max_depth: 4}\n"
         "optim: {name: adamw, lr: 3.0e-3, weight_decay: 0.01, no_decay: [bias, norm, ema_gate]}\n"
         "schedule: {name: linear, warmup_steps: 3}\n"
         "train: {batch_size: 8, eval_batch_size: 24, max_steps: " << kSteps << ", eval_interval: 10,\n"
         "        save_interval: 10, log_interval: 1, seed: 11, threads: 1, grad_clip: 1.0, accumulate: 2}\n"
         "output_dir: " << (root() / "unused").string() << "\n";
  return path;
}

using Result = mega::testing::CommandResult;

Result train(const std::string& run_name, const std::string& extra = "", const std::string& environment = "") {
  return mega::testing::run_mega_command(
      "train " + recipe().string() + " output_dir=" + (root() / run_name).string() + " " + extra,
      root() / (run_name + ".out"), environment);
}

// Every metrics row without its throughput and wall time, the fields that measure the machine and the
// clock rather than the run.
std::vector<nlohmann::json> read_rows(const std::string& run_name) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(root() / run_name / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    auto row = nlohmann::json::parse(line);
    row.erase("tokens_per_s");
    row.erase("wall_time");
    rows.push_back(row);
  }
  return rows;
}

std::vector<nlohmann::json> training_rows(const std::vector<nlohmann::json>& rows) {
  std::vector<nlohmann::json> out;
  for (const auto& row : rows)
    if (row.contains("loss")) out.push_back(row);
  return out;
}

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

fs::path final_weights(const std::string& run_name) {
  char step[32];
  std::snprintf(step, sizeof step, "step-%08d", kSteps);
  return root() / run_name / "checkpoints" / step / "model.safetensors";
}

// The run every test compares against, trained once per process. Each test asserts it succeeded: a
// failure in SetUpTestSuite would only skip the tests, and CTest counts a skipped test as passing (a
// renamed recipe key hid both tests that way once).
const Result& reference_run() {
  static const Result run = train("reference");
  return run;
}

class Determinism : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(reference_run().exit_code, 0) << reference_run().output; }
  static void TearDownTestSuite() { fs::remove_all(root()); }
};

// One row per step, equal to the reference's in every field (loss, grad_norm, lr, epoch, skipped steps); a
// difference names the first step where the runs part.
void expect_same_steps(const std::vector<nlohmann::json>& got, const std::vector<nlohmann::json>& reference) {
  ASSERT_EQ(reference.size(), size_t(kSteps));
  ASSERT_EQ(got.size(), reference.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i]["step"], int64_t(i + 1));
    if (got[i] != reference[i]) {
      ADD_FAILURE() << "the runs part at step " << i + 1 << ":\n  got       " << got[i].dump()
                    << "\n  reference " << reference[i].dump();
      return;
    }
  }
}

}  // namespace

TEST_F(Determinism, SameSeedAndThreadsGiveIdenticalWeightsAndMetrics) {
  Result again = train("again");
  ASSERT_EQ(again.exit_code, 0) << again.output;
  std::vector<nlohmann::json> reference = read_rows("reference"), rows = read_rows("again");
  expect_same_steps(training_rows(rows), training_rows(reference));
  EXPECT_EQ(rows, reference);  // the val and test rows too
  ASSERT_TRUE(fs::exists(final_weights("reference")));
  EXPECT_TRUE(slurp(final_weights("again")) == slurp(final_weights("reference")))
      << final_weights("again") << " differs from " << final_weights("reference");
}

TEST_F(Determinism, KilledAndResumedRunLogsTheSameLossAndGradNormAtEveryStep) {
  // Killed after update 17: the newest checkpoint is step 10, so steps 11-30 are trained again after the
  // resume and steps 1-10 come from the log the killed run left.
  Result killed = train("killed", "", "MEGA_FAULT_KILL_AFTER_STEP=17");
  ASSERT_EQ(killed.exit_code, 128 + SIGKILL) << killed.output;
  Result resumed = train("killed", "--resume");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("step-00000010"), std::string::npos) << resumed.output;
  std::vector<nlohmann::json> reference = read_rows("reference"), rows = read_rows("killed");
  expect_same_steps(training_rows(rows), training_rows(reference));
  EXPECT_EQ(rows, reference);
  EXPECT_TRUE(slurp(final_weights("killed")) == slurp(final_weights("reference")));
}
