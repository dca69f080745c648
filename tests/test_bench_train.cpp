// `mega bench train` end to end on tiny rows, the op profiler (autograd/profile.h) and the model FLOP count.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include "autograd/profile.h"
#include "bench/bench.h"
#include "core/json_file.h"
#include "ops/matmul.h"
#include "ops/reduce.h"
#include "process_util.h"
#include "temp_folder.h"

namespace fs = std::filesystem;

namespace mega {
namespace {

const fs::path kSourceDir = fs::path(MEGA_FIXTURES_DIR).parent_path().parent_path().parent_path();

fs::path folder() {
  static const fs::path dir = testing::make_temp_folder("bench_train");
  return dir;
}

void expect_row_fields(const nlohmann::json& row) {
  for (const char* key : {"length", "batch", "median_s", "tokens_per_s", "peak_rss_mb", "flops_per_token",
                          "achieved_gflops", "sgemm_peak_gflops", "sgemm_fraction", "optimizer_ms", "ops"})
    EXPECT_TRUE(row.contains(key)) << key;
  EXPECT_GT(row["tokens_per_s"].get<double>(), 0);
  EXPECT_GT(row["peak_rss_mb"].get<double>(), 10);  // the process's own, not zero
  EXPECT_GT(row["flops_per_token"].get<double>(), 0);
  EXPECT_GT(row["sgemm_peak_gflops"].get<double>(), 0);
  EXPECT_GT(row["sgemm_fraction"].get<double>(), 0);
  double share = 0;
  std::set<std::string> names;
  for (const auto& op : row["ops"]) {
    share += op["share"].get<double>();
    names.insert(op["name"].get<std::string>());
  }
  EXPECT_GT(share, 0.2);
  EXPECT_LE(share, 1.0);
  for (const char* expected : {"linear", "ema", "attention", "cross_entropy"})
    EXPECT_TRUE(names.count(expected)) << expected;
}

TEST(BenchTrain, BaselineConfigRowsWriteJson) {
  const fs::path json = folder() / "baseline.json";
  const auto result = testing::run_mega_command(
      "bench train --baseline-config --lengths 16 --chunk 8 --chunking both --batch-tokens 32 --steps 1 --warmup 0 "
      "--threads 1 --json " + json.string(),
      folder() / "baseline.log");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("tok/s"), std::string::npos) << result.output;
  const nlohmann::json doc = read_json_file(json.string());
  ASSERT_EQ(doc["rows"].size(), 2u);
  EXPECT_TRUE(doc["rows"][0]["chunk_size"].is_null());
  EXPECT_EQ(doc["rows"][1]["chunk_size"].get<int64_t>(), 8);
  for (const auto& row : doc["rows"]) {
    EXPECT_EQ(row["batch"].get<int64_t>(), 2);
    expect_row_fields(row);
  }
  // Every op's backward is profiled too.
  bool linear_backward = false;
  for (const auto& op : doc["rows"][0]["ops"])
    if (op["name"] == "linear") linear_backward = op["backward_ms"].get<double>() > 0;
  EXPECT_TRUE(linear_backward);
}

TEST(BenchTrain, RecipeRowWithOverride) {
  const fs::path json = folder() / "recipe.json";
  const auto result = testing::run_mega_command(
      "bench train " + (kSourceDir / "recipes/configs/lra/listops_small.yaml").string() +
          " model.num_hidden_layers=1 --lengths 32 --batch-tokens 64 --steps 1 --warmup 0 --threads 1 --json " +
          json.string(),
      folder() / "recipe.log");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const nlohmann::json doc = read_json_file(json.string());
  ASSERT_EQ(doc["rows"].size(), 1u);
  expect_row_fields(doc["rows"][0]);
}

TEST(BenchTrain, BadLengthsNameTheOption) {
  const auto result = testing::run_mega_command("bench train --baseline-config --lengths 16,x", folder() / "bad.log");
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.output.find("--lengths"), std::string::npos) << result.output;
}

TEST(OpProfile, OffRecordsNothing) {
  set_profiling(true);  // clears the table
  set_profiling(false);
  Var x = Var::parameter(Tensor::full({3, 4}, 0.5));
  Var w = Var::parameter(Tensor::full({2, 4}, 0.25));
  sum(linear(x, w, Var())).backward();
  EXPECT_TRUE(profile_snapshot().empty());
}

TEST(OpProfile, RecordsForwardAndBackwardPerOp) {
  set_profiling(true);
  Var x = Var::parameter(Tensor::full({3, 4}, 0.5));
  Var w = Var::parameter(Tensor::full({2, 4}, 0.25));
  sum(linear(x, w, Var())).backward();
  set_profiling(false);
  std::set<std::string> names;
  for (const OpTime& t : profile_snapshot()) {
    names.insert(t.name);
    if (t.name == "linear") {
      EXPECT_EQ(t.forward_calls, 1);
      EXPECT_EQ(t.backward_calls, 1);
    }
  }
  // grad_accumulate: adding each node's gradients into its inputs', timed apart from the ops.
  EXPECT_EQ(names, (std::set<std::string>{"grad_accumulate", "linear", "sum"}));
}

TEST(OpProfile, SelfTimeExcludesNestedScopesAndBackwardIsInherited) {
  using namespace std::chrono_literals;
  set_profiling(true);
  {
    OpScope outer("outer");
    std::this_thread::sleep_for(20ms);
    OpScope inner("inner");
    std::this_thread::sleep_for(20ms);
  }
  {
    OpScope backward("closure", OpPhase::Backward);
    OpScope forward_op("called_in_backward");
  }
  set_profiling(false);
  for (const OpTime& t : profile_snapshot()) {
    if (t.name == "outer") {
      EXPECT_GE(t.forward_s, 0.019);
      EXPECT_LT(t.forward_s, 0.035);  // not the inner 20 ms as well
    } else if (t.name == "inner") {
      EXPECT_GE(t.forward_s, 0.019);
    } else if (t.name == "called_in_backward") {
      EXPECT_EQ(t.forward_calls, 0);
      EXPECT_EQ(t.backward_calls, 1);
    }
  }
  EXPECT_EQ(profile_snapshot().size(), 4u);
}

TEST(BenchTrainFlops, TinyConfigMatchesHandCount) {
  MegaConfig c;
  c.num_hidden_layers = 1;
  c.hidden_size = 4;              // D
  c.intermediate_size = 6;        // I
  c.shared_representation_size = 3;  // Z
  c.nffn_hidden_size = 5;         // F
  c.use_normalized_ffn = true;
  c.bidirectional = true;
  c.truncation = std::nullopt;
  c.use_chunking = false;
  // L 8: v_proj 2*4*6 = 48, mx_proj 2*4*(3+6+8) = 136, h_proj 2*6*4 = 48, QK^T and AV 2*8*(3+6) = 144,
  // FFN 4*4*5 = 80, direct EMA (short: below the FFT crossover) 2 directions * 2*8*4 = 128: 584.
  EXPECT_DOUBLE_EQ(bench::model_flops_per_token(c, 8, false), 584);
  EXPECT_DOUBLE_EQ(bench::model_flops_per_token(c, 8, true), 3 * 584);
  c.use_chunking = true;
  c.chunk_size = 4;  // attention over 4 keys: 2*4*9 = 72 instead of 144
  EXPECT_DOUBLE_EQ(bench::model_flops_per_token(c, 8, false), 584 - 72);
  c.num_hidden_layers = 2;
  EXPECT_DOUBLE_EQ(bench::model_flops_per_token(c, 8, false), 2 * (584 - 72));
}

}  // namespace
}  // namespace mega
