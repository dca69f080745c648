// Bad input gets a clear error, never a crash: each probe below once crashed, hung, read past a buffer,
// replaced a file it should not have, or was silently accepted. Command-line probes run the `mega`
// binary (MEGA_BINARY) under `timeout`, so a hang fails instead of stalling the suite; each checks
// the exit status and that the message names the file, key or option and the allowed range.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <string>
#include <tuple>

#include <nlohmann/json.hpp>

#include "core/json_file.h"
#include "core/safetensors.h"
#include "gradcheck_util.h"
#include "nn/lra_classifier.h"

namespace fs = std::filesystem;
using mega::Tensor;
using mega::testing::error_of;

namespace {

const fs::path kFixtures = fs::path(MEGA_FIXTURES_DIR);
const fs::path kCausal = kFixtures / "pub14_clm_incremental_softmax_rotary";  // V = 64, (2, 10) inputs
const fs::path kTokenTypes = kFixtures / "pub03_mlm_layernorm_laplace_simple_tokentypes";  // type_vocab_size 2

struct Result {
  int exit_code = -1;  // 128 + signal when killed, as a shell reports it; 124: timed out
  std::string output;
};

class BadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) /
           ("mega_bad_input_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path path(const std::string& name) const { return dir_ / name; }

  Result run_mega(const std::string& arguments, const std::string& environment = "") const {
    const fs::path log = dir_ / "output.txt";
    std::string command = "OMP_WAIT_POLICY=PASSIVE " + environment + " timeout 60 " + MEGA_BINARY + " " + arguments +
                          " > " + log.string() + " 2>&1";
    int status = std::system(command.c_str());
    Result run;
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::ifstream in(log);
    std::stringstream text;
    text << in.rdbuf();
    run.output = text.str();
    return run;
  }

  // Writes an inputs file of the given tensors and returns its path.
  std::string inputs(const std::map<std::string, Tensor>& tensors, const std::string& name = "inputs.safetensors") {
    mega::save_safetensors(path(name).string(), tensors);
    return path(name).string();
  }

  Result hf_run(const std::string& inputs_file, const std::string& extra = "",
                const fs::path& model = kCausal) const {
    return run_mega("--threads 1 hf-run --model " + model.string() + " --inputs " + inputs_file + " --out " +
                    path("out.safetensors").string() + " " + extra);
  }

  // A writable copy of a fixture checkpoint (the shared fixtures may be read-only).
  fs::path copy_model(const fs::path& fixture) const {
    const fs::path model = dir_ / "model";
    fs::copy(fixture, model, fs::copy_options::recursive);
    fs::permissions(model, fs::perms::owner_all, fs::perm_options::add);
    for (const auto& entry : fs::directory_iterator(model))
      fs::permissions(entry.path(), fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::add);
    return model;
  }

  fs::path dir_;
};

// An error exit (1) whose output contains every piece.
void expect_refused(const Result& run, std::initializer_list<std::string> pieces) {
  EXPECT_EQ(run.exit_code, 1) << run.output;
  for (const std::string& piece : pieces) EXPECT_NE(run.output.find(piece), std::string::npos) << "missing '" << piece << "' in: " << run.output;
}

Tensor ids(int64_t B, int64_t L, int64_t value = 5) {
  return Tensor::from(std::vector<int64_t>(static_cast<size_t>(B * L), value), {B, L});
}

// ---- mega hf-run: every input checked against input_ids before anything runs ----

TEST_F(BadInput, HfRunShortMasksAreRefusedInEveryMode) {
  for (const char* name : {"attention_mask", "token_type_ids"}) {
    std::string file = inputs({{"input_ids", ids(2, 10)}, {name, ids(2, 4, 1)}, {"labels", ids(2, 10)}});
    for (const char* mode : {"", "--grads", "--train", "--incremental", "--incremental --prefill 3"})
      expect_refused(hf_run(file, mode), {file, name, "(2, 4)", "(2, 10)"});
  }
}

TEST_F(BadInput, HfRunEmptyBatchAndMissingIdsAreRefused) {
  std::string empty = inputs({{"input_ids", ids(0, 10)}, {"attention_mask", ids(0, 10, 1)}});
  expect_refused(hf_run(empty, "--incremental"), {empty, "input_ids", "(0, 10)", "at least 1"});
  std::string no_ids = inputs({{"attention_mask", ids(2, 10, 1)}});
  expect_refused(hf_run(no_ids, "--incremental"), {no_ids, "input_ids", "inputs_embeds", "neither"});
  expect_refused(hf_run(no_ids), {no_ids, "input_ids", "neither"});
}

TEST_F(BadInput, HfRunIdsMustBeIntegersWithinTheVocabulary) {
  std::string floats = inputs({{"input_ids", Tensor::full({2, 10}, 5.0)}});
  expect_refused(hf_run(floats), {floats, "input_ids", "I64 or I32", "F32"});
  for (int64_t bad : {64, -1}) {
    Tensor t = ids(2, 10);
    t.data<int64_t>()[7] = bad;
    std::string file = inputs({{"input_ids", t}});
    expect_refused(hf_run(file, "--incremental"), {file, "input_ids", std::to_string(bad), "0..63", "vocab_size"});
  }
  // token type ids against type_vocab_size, where the model has token type embeddings
  std::string types = inputs({{"input_ids", ids(2, 12)}, {"token_type_ids", ids(2, 12, 2)}});
  expect_refused(hf_run(types, "", kTokenTypes), {types, "token_type_ids", "0..1", "type_vocab_size"});
}

TEST_F(BadInput, HfRunLabelsMustFitTheHead) {
  std::string short_labels = inputs({{"input_ids", ids(2, 10)}, {"labels", ids(2, 9)}});
  expect_refused(hf_run(short_labels), {short_labels, "labels", "(2, 9)", "(2, 10)"});
  Tensor out_of_vocab = ids(2, 10);
  out_of_vocab.data<int64_t>()[3] = 99;
  std::string file = inputs({{"input_ids", ids(2, 10)}, {"labels", out_of_vocab}});
  expect_refused(hf_run(file, "--grads"), {file, "labels", "99", "0..63", "-100"});
  std::string float_labels = inputs({{"input_ids", ids(2, 10)}, {"labels", Tensor::full({2, 10}, 5.0)}});
  expect_refused(hf_run(float_labels), {float_labels, "labels", "I64 or I32", "F32"});
  std::string positions = inputs({{"input_ids", ids(2, 10)}, {"start_positions", Tensor::from(std::vector<int64_t>{1, 2}, {2})}});
  expect_refused(hf_run(positions), {positions, "start_positions", "MegaForQuestionAnswering"});
  std::string typo = inputs({{"input_ids", ids(2, 10)}, {"attention_masks", ids(2, 10, 1)}});
  expect_refused(hf_run(typo), {typo, "attention_masks", "unknown input"});
}

TEST_F(BadInput, HfRunSequenceLongerThanMaxPositionsIsRefusedUpFront) {
  std::string file = inputs({{"input_ids", ids(1, 65)}});  // max_positions 64, no chunking
  expect_refused(hf_run(file), {file, "input_ids", "L = 65", "max_positions = 64"});
  expect_refused(hf_run(file, "--incremental"), {file, "max_positions = 64"});
}

TEST_F(BadInput, HfRunPrefillMustLieWithinTheSequence) {
  std::string file = inputs({{"input_ids", ids(2, 10)}});
  expect_refused(hf_run(file, "--incremental --prefill 11"), {"--prefill 11", "1..10"});
  expect_refused(hf_run(file, "--incremental --prefill=-2"), {"--prefill -2", "1..10"});
  expect_refused(hf_run(file, "--seed=-1"), {"--seed", "0 or more"});
  Result fine = hf_run(file, "--incremental --prefill 10");
  EXPECT_EQ(fine.exit_code, 0) << fine.output;
}

// ---- mega hf-run --out: never replaces an input or anything but a regular file ----

TEST_F(BadInput, HfRunOutRefusesInputsSymlinksAndSpecialFiles) {
  const fs::path model = copy_model(kCausal), weights = model / "model.safetensors";
  const auto weights_size = fs::file_size(weights);
  std::string file = inputs({{"input_ids", ids(2, 10)}});
  auto run_out = [&](const fs::path& out) {
    return run_mega("--threads 1 hf-run --model " + model.string() + " --inputs " + file + " --out " + out.string());
  };
  expect_refused(run_out(weights), {weights.string(), "--model", "inside the checkpoint folder"});
  EXPECT_EQ(fs::file_size(weights), weights_size);
  expect_refused(run_out(model / "other.safetensors"), {"inside the checkpoint folder"});
  expect_refused(run_out(file), {file, "the inputs file"});
  EXPECT_NO_THROW(mega::load_safetensors(file));

  std::ofstream(path("keep.txt")) << "precious";
  fs::create_symlink(path("keep.txt"), path("link.safetensors"));
  expect_refused(run_out(path("link.safetensors")), {"link.safetensors", "a symlink", "not a regular file"});
  EXPECT_TRUE(fs::is_symlink(path("link.safetensors")));
  ASSERT_EQ(::mkfifo(path("fifo").c_str(), 0600), 0);
  expect_refused(run_out(path("fifo")), {"fifo", "not a regular file"});
  EXPECT_TRUE(fs::is_fifo(path("fifo")));
  fs::create_directories(path("folder"));
  expect_refused(run_out(path("folder")), {"folder", "a folder"});

  Result fine = run_out(path("out.safetensors"));  // and an existing regular file is replaced, atomically
  EXPECT_EQ(fine.exit_code, 0) << fine.output;
  Result again = run_out(path("out.safetensors"));
  EXPECT_EQ(again.exit_code, 0) << again.output;
  EXPECT_FALSE(fs::exists(path("out.safetensors.tmp")));
}

// The temporary beside the output is created fresh: a symlink planted under its name is removed, not
// written through.
TEST_F(BadInput, SafetensorsTemporaryIsNeverWrittenThrough) {
  std::ofstream(path("victim.txt")) << "precious";
  fs::create_symlink(path("victim.txt"), path("out.safetensors.tmp"));
  mega::save_safetensors(path("out.safetensors").string(), {{"x", Tensor::full({2}, 1.0)}});
  std::ifstream in(path("victim.txt"));
  std::string text;
  in >> text;
  EXPECT_EQ(text, "precious");
  EXPECT_EQ(mega::load_safetensors(path("out.safetensors").string()).tensors.at("x").numel(), 2);
}

// ---- recipes: base files and output_dir ----

TEST_F(BadInput, RecipeBaseMustBeABoundedRegularFile) {
  auto recipe = [&](const std::string& name, const std::string& text) {
    std::ofstream(path(name)) << text;
    return path(name).string();
  };
  std::string zero = recipe("zero.yaml", "# a device\nbase: /dev/zero\n");
  expect_refused(run_mega("validate " + zero), {zero + ":2: base:", "/dev/zero", "not a regular file"});
  std::string folder = recipe("folder.yaml", "base: .\n");
  expect_refused(run_mega("validate " + folder), {folder + ":1: base:", "is a folder"});
  std::string huge = path("huge.yaml").string();
  {
    std::ofstream out(huge);
    for (int i = 0; i < 40000; ++i) out << "# padding padding padding padding padding padding\n";
  }
  std::string includes_huge = recipe("includes_huge.yaml", "base: huge.yaml\n");
  expect_refused(run_mega("validate " + includes_huge), {includes_huge + ":1: base:", "huge.yaml", "1 MiB"});
  expect_refused(run_mega("validate " + huge), {huge, "1 MiB"});
  expect_refused(run_mega("validate " + path("").string()), {"is a folder"});
}

TEST_F(BadInput, RecipeOutputDirMustNameAFolder) {
  std::ofstream(path("empty.yaml")) << "train: {max_steps: 10}\noutput_dir: \"\"\n";
  expect_refused(run_mega("validate " + path("empty.yaml").string()),
                 {path("empty.yaml").string() + ":2: output_dir:", "empty"});
  std::ofstream(path("file.txt")) << "x";
  std::ofstream(path("file.yaml")) << "train: {max_steps: 10}\noutput_dir: " << path("file.txt").string() << "\n";
  expect_refused(run_mega("validate " + path("file.yaml").string()),
                 {path("file.yaml").string() + ":2: output_dir:", "not a folder"});
}

// ---- mega generate and the thread count ----

TEST_F(BadInput, GenerateRefusesSamplingOutsideItsRange) {
  const std::string base = "--threads 1 generate --model " + kCausal.string() + " --prompt \"3 4 5\" ";
  expect_refused(run_mega(base + "--temperature nan"), {"--temperature", ">= 0", "nan"});
  expect_refused(run_mega(base + "--temperature=-0.5"), {"--temperature", ">= 0", "-0.5"});
  expect_refused(run_mega(base + "--max-new-tokens=-1"), {"--max-new-tokens", "0..1048576", "-1"});
  expect_refused(run_mega(base + "--max-new-tokens 99999999999"), {"--max-new-tokens", "0..1048576"});
  expect_refused(run_mega(base + "--seed=-5"), {"--seed", "0 or more", "-5"});
  expect_refused(run_mega(base + "--top-k=-3"), {"--top-k", "0", "-3"});
  for (const char* p : {"0", "1.5", "nan"}) expect_refused(run_mega(base + "--top-p " + p), {"--top-p", "(0, 1]", p});
  Result fine = run_mega(base + "--max-new-tokens 3 --temperature 0.7 --top-k 5 --top-p 0.9");
  EXPECT_EQ(fine.exit_code, 0) << fine.output;
}

TEST_F(BadInput, ThreadCountsOutsideTheRangeAreRefused) {
  for (const char* n : {"0", "-1", "100000"})
    expect_refused(run_mega(std::string("--threads=") + n + " version"), {"--threads", "1..1024", n});
  expect_refused(run_mega("version", "MEGA_NUM_THREADS=4abc"), {"MEGA_NUM_THREADS", "1..1024", "4abc"});
  expect_refused(run_mega("version", "MEGA_NUM_THREADS=0"), {"MEGA_NUM_THREADS", "1..1024"});
  Result fine = run_mega("--threads 2 version", "MEGA_NUM_THREADS=3");
  EXPECT_EQ(fine.exit_code, 0) << fine.output;
}

TEST_F(BadInput, TrainMlpRefusesAbsurdSizes) {
  expect_refused(run_mega("train-mlp --hidden 0"), {"--hidden", "1..4096"});
  expect_refused(run_mega("train-mlp --hidden 100000"), {"--hidden", "1..4096"});
  expect_refused(run_mega("train-mlp --steps 0"), {"--steps", "1 or more"});
  expect_refused(run_mega("train-mlp --lr nan"), {"--lr", "> 0"});
  expect_refused(run_mega("train-mlp --seed=-1"), {"--seed", "0 or more"});
}

// ---- JSON files: errors name the file and the key; sizes are bounded before allocating ----

TEST_F(BadInput, ConfigJsonTypeErrorsNameTheFileAndKey) {
  const fs::path config = copy_model(kCausal) / "config.json";
  nlohmann::json j;
  std::ifstream(config) >> j;
  j["architectures"] = {1};
  std::ofstream(config) << j.dump(2);
  const std::string generate = "--threads 1 generate --model " + path("model").string() + " --prompt 3";
  expect_refused(run_mega(generate), {config.string(), "'architectures'", "got 1"});

  std::ofstream(config) << "{\"vocab_size\": 64,\n \"hidden_size\": }";
  expect_refused(run_mega(generate), {config.string(), "not valid JSON", "line 2"});
  fs::remove(config);
  fs::create_directories(config);
  expect_refused(run_mega(generate), {config.string(), "is a folder"});
}

TEST_F(BadInput, EvalCheckpointConfigMustBeAJsonFile) {
  std::ofstream(path("recipe.yaml")) << "train: {max_steps: 10}\noutput_dir: " << path("run").string() << "\n";
  fs::create_directories(path("checkpoint") / "config.json");
  expect_refused(run_mega("eval " + path("recipe.yaml").string() + " --checkpoint " + path("checkpoint").string()),
                 {(path("checkpoint") / "config.json").string(), "is a folder"});
}

TEST_F(BadInput, JsonHelpersNameTheKeyAndRange) {
  nlohmann::json head = {{"layers", 1e9}, {"half", 2.5}, {"name", 3}};
  std::string error = error_of([&] { mega::json_integer(head, "layers", "f.json", 0, 16); });
  EXPECT_NE(error.find("f.json: 'layers'"), std::string::npos) << error;
  EXPECT_NE(error.find("0..16"), std::string::npos) << error;
  EXPECT_NE(error_of([&] { mega::json_integer(head, "half", "f.json", 0, 16); }).find("must be an integer"),
            std::string::npos);
  EXPECT_NE(error_of([&] { mega::json_string(head, "name", "f.json"); }).find("'name' must be a string"),
            std::string::npos);
  EXPECT_NE(error_of([&] { mega::json_string(head, "gone", "f.json"); }).find("'gone' is missing"), std::string::npos);
  EXPECT_EQ(mega::json_integer(nlohmann::json{{"n", 12}}, "n", "f.json", 0, 16), 12);
}

TEST_F(BadInput, LraClassifierSizesFromAFileAreBounded) {
  mega::LraClassifierOptions options;
  options.encoder.vocab_size = 20;
  options.classifier_hidden_size = 8;
  nlohmann::json good = mega::LraClassifier(options).config_json();
  EXPECT_NO_THROW(mega::LraClassifier::options_from_config_json(good));
  for (const auto& [key, value, range] :
       {std::tuple{"classifier_layers", nlohmann::json(1e9), "0..16"},
        std::tuple{"classifier_hidden_size", nlohmann::json(int64_t{1} << 40), "0..65536"},
        std::tuple{"num_labels", nlohmann::json(0), "1..1000000"},
        std::tuple{"classifier_dropout", nlohmann::json(1.5), "[0, 1]"}}) {
    nlohmann::json bad = good;
    bad["lra_classifier"][key] = value;
    std::string error = error_of([&] { mega::LraClassifier::options_from_config_json(bad); });
    EXPECT_NE(error.find(std::string("'") + key + "'"), std::string::npos) << error;
    EXPECT_NE(error.find(range), std::string::npos) << error;
  }
  nlohmann::json bad_encoder = good;
  bad_encoder["architectures"] = {1};
  std::string error = error_of([&] { mega::LraClassifier::options_from_config_json(bad_encoder); });
  EXPECT_NE(error.find("'architectures'"), std::string::npos) << error;
}

}  // namespace
