// Data-parallel training end to end: `mpirun -np 2 mega train` (1 OpenMP thread per rank) against the
// one-process run of the same global batch. Label `mpi`: these start MPI jobs, so they are not unit tests.
#include <cstdio>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "tests/process_util.h"
#include "tests/temp_folder.h"

namespace fs = std::filesystem;

namespace {

const fs::path& root() {
  static const fs::path dir = mega::testing::make_temp_folder("mega_mpi_test");
  return dir;
}

// A tiny ListOps model without dropout (the ranks draw different dropout masks than one process would):
// 20 updates take about a second.
fs::path tiny_recipe(const std::string& normalization) {
  fs::path path = root() / (normalization + ".yaml");
  std::ofstream out(path);
  out << "model:\n"
         "  num_hidden_layers: 1\n  hidden_size: 16\n  intermediate_size: 32\n  nffn_hidden_size: 32\n"
         "  shared_representation_size: 8\n  ema_projection_size: 4\n  max_positions: 64\n"
         "  normalization_type: " << normalization << "\n  relative_positional_bias: simple\n"
         "  dropout_prob: 0.0\n  hidden_dropout_prob: 0.0\n  attention_probs_dropout_prob: 0.0\n"
         "  classifier_hidden_size: 16\n"
         "data:\n  dir: " << (root() / "data").string() << "\n  max_length: 64\n  bucket_batches: 4\n"
         "  generate: true\n"
         "  listops: {train_examples: 160, val_examples: 40, test_examples: 40, min_length: 10,\n"
         "            max_length: 40, max_depth: 4, max_args: 4}\n"
         // SGD, not Adam: at initialisation most gradients are tiny differences of cancelling terms whose
         // float rounding moves by a few percent with the summation order (one batch of 16 or two of 8),
         // and Adam's division by sqrt(v) turns that rounding into whole steps; SGD's step is in
         // proportion to its gradient, so the comparison sees the sharding and the averaging, not rounding.
         "optim: {name: sgd, lr: 0.5, momentum: 0.9, weight_decay: 0.01, no_decay: [bias, norm, ema_gate]}\n"
         "schedule: {name: linear, warmup_steps: 3, total_steps: 20}\n"  // a 10-step run resumes to 20 on it
         "train: {batch_size: 16, eval_batch_size: 16, max_steps: 20, eval_interval: 10, save_interval: 10,\n"
         "        log_interval: 1, seed: 3, threads: 1, grad_clip: 1.0}\n"
         "output_dir: " << (root() / "unused").string() << "\n";
  return path;
}

using Result = mega::testing::CommandResult;

// Open MPI refuses root without these; --oversubscribe lets 2 ranks share fewer cores.
const std::string kMpirun2 =
    "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 timeout 120 mpirun -np 2 "
    "--oversubscribe -x OMP_NUM_THREADS -x OMP_WAIT_POLICY";

Result train(const fs::path& recipe, const std::string& run, const std::string& extra, const std::string& launcher) {
  return mega::testing::run_mega_command(
      "train " + recipe.string() + " output_dir=" + (root() / run).string() + " " + extra, root() / (run + ".log"),
      launcher);
}

std::vector<double> losses(const std::string& run) {
  std::vector<double> out;
  std::ifstream in(root() / run / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const auto row = nlohmann::json::parse(line);
    if (row.contains("loss")) out.push_back(row["loss"].get<double>());
  }
  return out;
}

void expect_close(double a, double b, const std::string& what) {
  EXPECT_LE(std::abs(a - b), 1e-5 * std::max(std::abs(a), std::abs(b)) + 1e-7) << what << ": " << a << " vs " << b;
}

void expect_same_training(const std::string& one, const std::string& two, int64_t final_step) {
  const std::vector<double> a = losses(one), b = losses(two);
  ASSERT_EQ(a.size(), b.size());
  ASSERT_FALSE(a.empty());
  for (size_t i = 0; i < a.size(); ++i) expect_close(a[i], b[i], "loss of step " + std::to_string(i + 1));
  char folder[32];  // CheckpointDir's folder name: step- and eight digits
  std::snprintf(folder, sizeof folder, "step-%08lld", static_cast<long long>(final_step));
  const std::string model = std::string("checkpoints/") + folder + "/model.safetensors";
  const auto pa = mega::load_safetensors((root() / one / model).string()).tensors;
  const auto pb = mega::load_safetensors((root() / two / model).string()).tensors;
  ASSERT_EQ(pa.size(), pb.size());
  // The losses agree to 1e-5 at every step. The weights after 20 steps carry the rounding of two
  // summation orders (two shards of 8 against one batch of 16), which the updates carry forward: measured
  // 1.2e-5 of the whole parameter vector's norm, most of it in biases that started at zero and moved by
  // 1e-4 or less. A tensor whose gradient were not averaged would be off by its whole update.
  double difference = 0, size = 0;
  for (const auto& [name, ta] : pa) {
    const mega::Tensor x = ta.to(mega::DType::F64), y = pb.at(name).to(mega::DType::F64);
    ASSERT_EQ(x.numel(), y.numel()) << name;
    double tensor_difference = 0, tensor_size = 0;
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double u = x.data<double>()[i], v = y.data<double>()[i];
      tensor_difference += (u - v) * (u - v);
      tensor_size += u * u;
    }
    EXPECT_LE(std::sqrt(tensor_difference), 1e-3 * std::sqrt(tensor_size) + 1e-4) << name;
    difference += tensor_difference;
    size += tensor_size;
  }
  EXPECT_LE(std::sqrt(difference), 3e-5 * std::sqrt(size));  // unsynced batchnorm: 7e-5
}

TEST(MpiTraining, TwoRanksOfEightEqualOneOfSixteenWithLayerNorm) {
  const fs::path recipe = tiny_recipe("layernorm");
  const Result one = train(recipe, "ln_np1", "", "OMP_NUM_THREADS=1");
  ASSERT_EQ(one.exit_code, 0) << one.output;
  const Result two = train(recipe, "ln_np2", "train.batch_size=8", kMpirun2);
  ASSERT_EQ(two.exit_code, 0) << two.output;
  expect_same_training("ln_np1", "ln_np2", 20);
  std::ifstream in(root() / "ln_np2" / "metrics.jsonl");
  const auto row = nlohmann::json::parse([&] { std::string l; std::getline(in, l); return l; }());
  EXPECT_EQ(row["world_size"], 2);
  EXPECT_EQ(row["global_batch"], 16);
  EXPECT_TRUE(row.contains("allreduce_wait_s"));
}

// SyncBatchNorm's statistics are those of the whole global batch: 2 ranks x 8 with syncbatchnorm train
// as 1 rank x 16 with batchnorm (the running statistics included).
TEST(MpiTraining, TwoRanksWithSyncBatchNormEqualOneWithBatchNormOnTheWholeBatch) {
  const Result one = train(tiny_recipe("batchnorm"), "bn_np1", "", "OMP_NUM_THREADS=1");
  ASSERT_EQ(one.exit_code, 0) << one.output;
  const Result two = train(tiny_recipe("syncbatchnorm"), "sbn_np2", "train.batch_size=8", kMpirun2);
  ASSERT_EQ(two.exit_code, 0) << two.output;
  expect_same_training("bn_np1", "sbn_np2", 20);
}

TEST(MpiTraining, KillingOneRankEndsTheJobWithAnErrorWithinSeconds) {
  const fs::path recipe = tiny_recipe("layernorm");
  const auto started = std::chrono::steady_clock::now();
  const Result killed = train(recipe, "killed", "train.batch_size=8 train.max_steps=2000",
                              "MEGA_FAULT_KILL_AFTER_STEP=1:5 " + kMpirun2 + " -x MEGA_FAULT_KILL_AFTER_STEP");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  EXPECT_NE(killed.exit_code, 0) << killed.output;
  EXPECT_NE(killed.exit_code, 124) << "timed out: a rank hung\n" << killed.output;
  EXPECT_LT(seconds, 10.0 + 3.0) << killed.output;  // mpirun's own start-up besides the 10 s
}

TEST(MpiTraining, ATwoRankCheckpointResumesOnOneRankWithTheSameGlobalBatch) {
  const fs::path recipe = tiny_recipe("layernorm");
  const Result whole = train(recipe, "resume_np1", "", "OMP_NUM_THREADS=1");
  ASSERT_EQ(whole.exit_code, 0) << whole.output;
  const Result first = train(recipe, "resume_mixed", "train.batch_size=8 train.max_steps=10", kMpirun2);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const Result second = train(recipe, "resume_mixed", "--resume", "OMP_NUM_THREADS=1");
  ASSERT_EQ(second.exit_code, 0) << second.output;
  expect_same_training("resume_np1", "resume_mixed", 20);
}

}  // namespace
