// Fine-tuning: model.from_pretrained on the HF fixtures (real HF checkpoints: an MLM's and a bare
// MegaModel's encoder into the LRA classifier, missing and unexpected keys reported, a shape mismatch an
// error naming the key and both shapes), and end to end through the `mega` binary: a tiny ListOps run,
// then a second run from its checkpoint with optim.freeze, whose frozen weights stay bit-equal.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/safetensors.h"
#include "nn/lra_classifier.h"
#include "recipes/pretrained.h"
#include "tests/gradcheck_util.h"
#include "tests/process_util.h"
#include "tests/temp_folder.h"

namespace fs = std::filesystem;
using namespace mega;

namespace {

fs::path fixture(const std::string& name) { return fs::path(MEGA_FIXTURES_DIR) / name; }

LraClassifierOptions classifier_over(const fs::path& folder) {
  LraClassifierOptions options;
  options.encoder = MegaConfig::load((folder / "config.json").string());
  options.classifier_hidden_size = options.encoder.hidden_size;
  options.num_labels = 3;
  return options;
}

bool bit_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

bool contains(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace

TEST(FromPretrained, MaskedLmEncoderLoadsIntoTheLraClassifierAndTheRestIsReported) {
  const fs::path folder = fixture("pub03_mlm_layernorm_laplace_simple_tokentypes");
  LraClassifier model(classifier_over(folder));
  PretrainedLoad load = load_pretrained(model, model.config_json(), folder.string());
  const SafetensorsFile file = load_safetensors((folder / "model.safetensors").string());
  const std::map<std::string, Tensor> own = model.state_dict();
  for (const auto& [key, tensor] : file.tensors) {
    if (key.rfind("mega.", 0) != 0) continue;
    ASSERT_TRUE(own.count(key)) << key;
    EXPECT_TRUE(bit_equal(own.at(key).to(tensor.dtype()), tensor)) << key;
    EXPECT_TRUE(contains(load.loaded, key)) << key;
  }
  // The new head is missing; the MLM head is unexpected. Nothing else is either.
  for (const std::string& name : load.missing) EXPECT_EQ(name.rfind("classifier.", 0), 0u) << name;
  EXPECT_FALSE(load.missing.empty());
  EXPECT_EQ(load.unexpected, (std::vector<std::string>{"dense.bias", "dense.weight", "mlm_head.bias", "mlm_head.weight"}));
  std::vector<std::string> report = pretrained_report(load, folder.string());
  ASSERT_EQ(report.size(), 3u);
  EXPECT_NE(report[1].find("missing keys, newly initialized: classifier."), std::string::npos) << report[1];
  EXPECT_NE(report[2].find("unexpected keys of the checkpoint, not used: dense.bias, dense.weight, mlm_head.bias"),
            std::string::npos)
      << report[2];
}

TEST(FromPretrained, BareMegaModelKeysAreReadAsTheEncoders) {
  const fs::path folder = fixture("pub01_model_scalenorm_softmax_rotary");
  LraClassifier model(classifier_over(folder));
  PretrainedLoad load = load_pretrained(model, model.config_json(), folder.string());
  EXPECT_TRUE(contains(load.loaded, "mega.embedding_layer.word_embeddings.weight"));
  for (const std::string& name : load.missing) EXPECT_EQ(name.rfind("classifier.", 0), 0u) << name;
  for (const std::string& key : load.unexpected) EXPECT_EQ(key.rfind("pooler.", 0), 0u) << key;
}

TEST(FromPretrained, ShapeMismatchIsAnErrorNamingTheKeyAndBothShapes) {
  const fs::path folder = fixture("pub03_mlm_layernorm_laplace_simple_tokentypes");
  LraClassifierOptions options = classifier_over(folder);
  options.encoder.vocab_size = 65;
  LraClassifier model(options);
  const std::string error = mega::testing::error_of([&] { load_pretrained(model, model.config_json(), folder.string()); });
  EXPECT_NE(error.find("'mega.embedding_layer.word_embeddings.weight' has shape (64, 16) but the model's "
                       "'mega.embedding_layer.word_embeddings.weight' has shape (65, 16)"),
            std::string::npos)
      << error;
  EXPECT_NE(error.find("model.safetensors"), std::string::npos) << error;
}

TEST(FromPretrained, ConfigDifferencesAreListedAndAMissingFolderIsNamed) {
  const fs::path folder = fixture("pub03_mlm_layernorm_laplace_simple_tokentypes");
  LraClassifierOptions options = classifier_over(folder);
  options.encoder.activation = Activation::Silu;
  LraClassifier model(options);
  PretrainedLoad load = load_pretrained(model, model.config_json(), folder.string());
  EXPECT_EQ(load.config_differences, (std::vector<std::string>{"activation (checkpoint \"gelu\", model \"silu\")"}));
  const std::string error = mega::testing::error_of([&] { load_pretrained(model, model.config_json(), "/nonexistent/ckpt"); });
  EXPECT_NE(error.find("/nonexistent/ckpt/config.json"), std::string::npos) << error;
}

// ---- End to end through `mega train` ----

namespace {

const fs::path& root() {
  static const fs::path dir = mega::testing::make_temp_folder("mega_finetune_test");
  return dir;
}

// 1 block of D 16 on generated ListOps; 6 updates, a checkpoint at the end.
fs::path tiny_recipe() {
  fs::path path = root() / "tiny.yaml";
  std::ofstream out(path);
  out << "model:\n"
         "  num_hidden_layers: 1\n  hidden_size: 16\n  intermediate_size: 32\n  nffn_hidden_size: 32\n"
         "  shared_representation_size: 8\n  ema_projection_size: 4\n  max_positions: 64\n"
         "  normalization_type: layernorm\n  relative_positional_bias: simple\n  classifier_hidden_size: 16\n"
         "data:\n  dir: " << (root() / "data").string() << "\n  max_length: 64\n  bucket_batches: 4\n"
         "  generate: true\n"
         "  listops: {train_examples: 64, val_examples: 16, test_examples: 16, min_length: 10,\n"
         "            max_length: 40, max_depth: 4, max_args: 4}\n"
         "optim: {name: adamw, lr: 3.0e-3, weight_decay: 0.01}\n"
         "train: {batch_size: 8, max_steps: 6, eval_interval: 6, save_interval: 6, log_interval: 1, seed: 3,\n"
         "        threads: 1}\n";
  return path;
}

mega::testing::CommandResult train(const std::string& run, const std::string& extra) {
  return mega::testing::run_mega_command(
      "train " + tiny_recipe().string() + " output_dir=" + (root() / run).string() + " " + extra,
      root() / "last_output.txt");
}

std::map<std::string, Tensor> final_weights(const std::string& run) {
  return load_safetensors((root() / run / "checkpoints" / "step-00000006" / "model.safetensors").string()).tensors;
}

}  // namespace

TEST(FineTune, FromACheckpointWithFrozenLayersKeepsThemBitEqual) {
  auto base = train("base", "");
  ASSERT_EQ(base.exit_code, 0) << base.output;
  const std::string checkpoint = (root() / "base" / "checkpoints" / "step-00000006").string();
  auto tuned = train("tuned", "model.from_pretrained=" + checkpoint + " optim.freeze=[mega.layers.*]");
  ASSERT_EQ(tuned.exit_code, 0) << tuned.output;
  EXPECT_NE(tuned.output.find("from_pretrained " + checkpoint + ": loaded"), std::string::npos) << tuned.output;
  // The saved LRA head is not the encoder's: reported unused, and the new head is newly initialized.
  EXPECT_NE(tuned.output.find("missing keys, newly initialized: classifier."), std::string::npos) << tuned.output;
  EXPECT_NE(tuned.output.find("unexpected keys of the checkpoint, not used: classifier."), std::string::npos)
      << tuned.output;
  const auto before = final_weights("base"), after = final_weights("tuned");
  int frozen = 0, moved = 0;
  for (const auto& [name, tensor] : after) {
    if (name.rfind("mega.layers.", 0) == 0) {
      EXPECT_TRUE(bit_equal(tensor, before.at(name))) << name;
      ++frozen;
    } else if (name.rfind("mega.embedding_layer.", 0) == 0) {
      moved += !bit_equal(tensor, before.at(name));
    }
  }
  EXPECT_GT(frozen, 10);
  EXPECT_EQ(moved, 1);  // the word embeddings trained on
}

TEST(FineTune, AFreezePatternThatMatchesNothingStopsTheRunNamingIt) {
  auto run = train("typo", "optim.freeze=[encoder.layers.*]");
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.output.find("optim.freeze"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("'encoder.layers.*'"), std::string::npos) << run.output;
}

TEST(FineTune, MaskedLmPretrainingSavesAnHfCheckpointThatTheClassifierStartsFrom) {
  auto mlm = train("mlm", "model.head=masked_lm train.max_steps=12 train.save_interval=12 train.eval_interval=12 "
                          "optim.lr=1.0e-2");
  ASSERT_EQ(mlm.exit_code, 0) << mlm.output;
  const fs::path checkpoint = root() / "mlm" / "checkpoints" / "step-00000012";
  std::ifstream config_file(checkpoint / "config.json");
  const nlohmann::json config = nlohmann::json::parse(config_file);
  EXPECT_EQ(config["architectures"], nlohmann::json::array({"MegaForMaskedLM"}));
  const int64_t vocab = config["vocab_size"].get<int64_t>();  // the task's ids and <mask>
  const auto weights = load_safetensors((checkpoint / "model.safetensors").string()).tensors;
  EXPECT_TRUE(weights.count("mega.embedding_layer.word_embeddings.weight"));
  EXPECT_TRUE(weights.count("dense.weight"));
  // The masked-token loss falls from its start (about ln V) over the 12 updates.
  std::ifstream metrics(root() / "mlm" / "metrics.jsonl");
  std::vector<double> losses;
  for (std::string line; std::getline(metrics, line);) {
    auto row = nlohmann::json::parse(line);
    if (row.contains("loss")) losses.push_back(row["loss"].get<double>());
  }
  ASSERT_EQ(losses.size(), 12u);
  EXPECT_LT(losses[9] + losses[10] + losses[11], losses[0] + losses[1] + losses[2]);

  auto tuned = train("from_mlm", "model.from_pretrained=" + checkpoint.string() +
                                     " model.vocab_size=" + std::to_string(vocab));
  ASSERT_EQ(tuned.exit_code, 0) << tuned.output;
  EXPECT_NE(tuned.output.find("unexpected keys of the checkpoint, not used: dense.bias, dense.weight, mlm_head"),
            std::string::npos)
      << tuned.output;
  // Without the vocabulary size the word embeddings do not fit: an error naming the key and both shapes.
  auto mismatch = train("mismatch", "model.from_pretrained=" + checkpoint.string());
  EXPECT_NE(mismatch.exit_code, 0);
  EXPECT_NE(mismatch.output.find("model.from_pretrained"), std::string::npos) << mismatch.output;
  EXPECT_NE(mismatch.output.find("'mega.embedding_layer.word_embeddings.weight' has shape (" + std::to_string(vocab)),
            std::string::npos)
      << mismatch.output;
}
