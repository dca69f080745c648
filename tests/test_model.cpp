// Mega model behaviour beyond the fixtures: config round trips and validation errors, state dict
// loading errors, save -> reload, internal chunk padding against manual padding, cached decoding across
// chunk boundaries and with EMA truncation. Checkpoints come from the HF fixtures.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <unistd.h>

#include "core/safetensors.h"
#include "core/threading.h"
#include "nn/hf_run.h"
#include "nn/mega_model.h"

using namespace mega;
namespace fs = std::filesystem;

namespace {

const std::string kFixtures = std::string(MEGA_SHARED_DIR) + "/fixtures/hf_mega/";

// The fixture models are tiny: one thread is fastest, and parallel regions on a loaded machine spin.
struct OneThread {
  OneThread() { set_num_threads(1); }
  ~OneThread() { set_num_threads(0); }
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(shape_str(a.shape()), shape_str(b.shape()));
  std::vector<double> x = a.to_vector(), y = b.to_vector();
  double worst = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) worst = std::max(worst, std::abs(x[i] - y[i]));
  return worst;
}

// A fixture's model with a changed config (same weights).
std::unique_ptr<MegaPreTrainedModel> load_with(const std::string& name, const std::function<void(MegaConfig&)>& edit) {
  MegaConfig config = MegaConfig::load(kFixtures + name + "/config.json");
  edit(config);
  config.validate();
  auto model = make_mega(config, architecture_of(config));
  model->load_state_dict(load_safetensors(kFixtures + name + "/model.safetensors").tensors, model->tied_aliases());
  model->eval();
  return model;
}

Tensor ids_tensor(const std::vector<int64_t>& ids, int64_t batch) {
  return Tensor::from(ids, {batch, static_cast<int64_t>(ids.size()) / batch});
}

}  // namespace

TEST(MegaConfig, RoundTripsEveryKeyOfAFixtureConfig) {
  std::ifstream in(kFixtures + "pub12_decoder_model_crossattn_softmax_rotary/config.json");
  nlohmann::json original;
  in >> original;
  original["some_future_key"] = {{"nested", 3}};
  nlohmann::json written = MegaConfig::from_json(original).to_json();
  for (auto& [key, value] : original.items()) EXPECT_EQ(written[key], value) << key;
}

TEST(MegaConfig, ReadsHfDefaultsWhenKeysAreMissing) {
  MegaConfig c = MegaConfig::from_json(nlohmann::json::object());
  EXPECT_EQ(c.vocab_size, 30522);
  EXPECT_EQ(c.hidden_size, 128);
  EXPECT_EQ(c.ema_projection_size, 16);
  EXPECT_EQ(c.chunk_size, -1);
  EXPECT_FALSE(c.truncation.has_value());
  EXPECT_EQ(c.normalization_type, "scalenorm");
  EXPECT_EQ(c.relative_positional_bias, "rotary");
  EXPECT_EQ(c.max_positions, 2048);
  EXPECT_EQ(c.num_labels(), 2);
  EXPECT_TRUE(c.tie_word_embeddings);
}

TEST(MegaConfig, RefusesConfigurationsThatCannotWork) {
  auto error = [](nlohmann::json j) { return error_of([&] { MegaConfig::from_json(j); }); };
  EXPECT_NE(error({{"is_decoder", true}, {"bidirectional", true}}).find("bidirectional"), std::string::npos);
  EXPECT_NE(error({{"relative_positional_bias", "rotary"}, {"shared_representation_size", 7}}).find("even"),
            std::string::npos);
  EXPECT_NE(error({{"activation", "swishy"}}).find("swishy"), std::string::npos);
  EXPECT_NE(error({{"attention_activation", "sparsemax"}}).find("attention_activation"), std::string::npos);
  EXPECT_NE(error({{"normalization_type", "groupnorm"}}).find("normalization_type"), std::string::npos);
  EXPECT_NE(error({{"relative_positional_bias", "alibi"}}).find("relative_positional_bias"), std::string::npos);
  EXPECT_NE(error({{"use_chunking", true}, {"chunk_size", -1}}).find("chunk_size"), std::string::npos);
  EXPECT_NE(error({{"add_cross_attention", true}}).find("is_decoder"), std::string::npos);
  EXPECT_NE(error({{"hidden_size", "big"}}).find("hidden_size"), std::string::npos);
  EXPECT_NE(error({{"dropout_prob", 1.5}}).find("dropout_prob"), std::string::npos);
  EXPECT_NE(error({{"relative_positional_bias", "simple"}, {"chunk_size", 64}, {"max_positions", 32}})
                .find("max_positions"),
            std::string::npos);
  EXPECT_EQ(error({{"is_decoder", true}, {"bidirectional", false}}), "");
}

TEST(MegaModule, StateDictNamesMatchTheCheckpointAndLoadErrorsNameTheKey) {
  const std::string name = "pub03_mlm_layernorm_laplace_simple_tokentypes";
  MegaCheckpoint checkpoint = load_pretrained(kFixtures + name);
  std::map<std::string, Tensor> file = load_safetensors(kFixtures + name + "/model.safetensors").tensors;
  std::map<std::string, Tensor> state = checkpoint.model->state_dict();
  ASSERT_EQ(state.size(), file.size());
  for (const auto& [key, t] : file) EXPECT_TRUE(state.count(key)) << key;

  std::map<std::string, Tensor> missing = file;
  missing.erase("mega.layers.1.nffn.fc1.bias");
  EXPECT_NE(error_of([&] { checkpoint.model->load_state_dict(missing); }).find("mega.layers.1.nffn.fc1.bias"),
            std::string::npos);
  std::map<std::string, Tensor> wrong = file;
  wrong["mega.layers.0.mega_layer.qk_bias"] = Tensor::zeros({3, 8});
  EXPECT_NE(error_of([&] { checkpoint.model->load_state_dict(wrong); }).find("mega.layers.0.mega_layer.qk_bias"),
            std::string::npos);
  std::map<std::string, Tensor> extra = file;
  extra["mega.pooler.dense.bias"] = Tensor::zeros({16});
  EXPECT_NE(error_of([&] { checkpoint.model->load_state_dict(extra); }).find("mega.pooler.dense.bias"),
            std::string::npos);
  // A tied head weight is one parameter under two names, and may be absent from a checkpoint.
  std::map<std::string, Tensor> untied = file;
  untied.erase("mlm_head.weight");
  checkpoint.model->load_state_dict(untied, checkpoint.model->tied_aliases());
  EXPECT_EQ(checkpoint.model->parameters().size(), checkpoint.model->named_parameters().size() - 1);
}

TEST(MegaModel, SaveThenReloadGivesIdenticalOutputs) {
  OneThread one_thread;
  const std::string name = "pub05_clm_batchnorm_softmax_simple";
  MegaCheckpoint original = load_pretrained(kFixtures + name);
  auto inputs = load_safetensors(kFixtures + name + "/inputs.safetensors").tensors;
  auto before = hf_run(*original.model, inputs, {});
  fs::path folder = fs::temp_directory_path() / ("mega_save_test_" + std::to_string(::getpid()));
  save_pretrained(*original.model, original.config, folder.string());
  MegaCheckpoint reloaded = load_pretrained(folder.string());
  auto after = hf_run(*reloaded.model, inputs, {});
  for (const auto& [key, t] : before) EXPECT_EQ(max_abs_diff(t, after.at(key)), 0.0) << key;
  EXPECT_EQ(reloaded.config.to_json(), original.config.to_json());
  auto saved = load_safetensors((folder / "model.safetensors").string()).tensors;
  auto file = load_safetensors(kFixtures + name + "/model.safetensors").tensors;
  ASSERT_EQ(saved.size(), file.size());
  for (const auto& [key, t] : file) {
    ASSERT_TRUE(saved.count(key)) << key;
    EXPECT_EQ(saved.at(key).dtype(), t.dtype()) << key;
    EXPECT_EQ(max_abs_diff(saved.at(key), t), 0.0) << key;
  }
  fs::remove_all(folder);
}

// A length that is not a multiple of chunk_size is padded inside; that must equal padding by hand.
TEST(MegaModel, ChunkingPadsALengthThatIsNotAMultipleOfTheChunk) {
  OneThread one_thread;
  for (const std::string name : {"pub06_seqcls_single_chunked_fullpadchunk", "pub15_clm_chunked_softmax_scalenorm"}) {
    auto model = load_with(name, [](MegaConfig&) {});
    const int64_t c = model->config().chunk_size, L = 2 * c + 3, padded = 3 * c;
    std::vector<int64_t> ids, padded_ids, padded_mask;
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t t = 0; t < padded; ++t) {
        int64_t id = 3 + (7 * t + 11 * b) % 50;
        if (t < L) ids.push_back(id);
        padded_ids.push_back(t < L ? id : 1);
        padded_mask.push_back(t < L ? 1 : 0);
      }
    Rng rng(0);
    MegaInputs short_in;
    short_in.input_ids = ids_tensor(ids, 2);
    MegaInputs long_in;
    long_in.input_ids = ids_tensor(padded_ids, 2);
    long_in.attention_mask = ids_tensor(padded_mask, 2);
    Tensor a = model->mega().forward(short_in, rng).last_hidden_state.value();
    Tensor b = model->mega().forward(long_in, rng).last_hidden_state.value();
    ASSERT_EQ(a.size(1), L);
    Tensor b_real = Tensor::empty(a.shape());
    for (int64_t r = 0; r < 2; ++r)
      for (int64_t t = 0; t < L; ++t)
        for (int64_t h = 0; h < a.size(2); ++h)
          b_real.data<float>()[(r * L + t) * a.size(2) + h] = b.data<float>()[(r * padded + t) * a.size(2) + h];
    EXPECT_LT(max_abs_diff(a, b_real), 1e-5) << name;
  }
}

// Cached decoding with pieces that cross chunk boundaries, and with a truncated EMA (no fixture has
// either): the logits must equal the full causal forward's.
TEST(MegaModel, CachedDecodingEqualsFullForwardAcrossChunksAndWithTruncation) {
  OneThread one_thread;
  struct Case {
    std::string name;
    std::function<void(MegaConfig&)> edit;
    int64_t prefill;
  };
  std::vector<Case> cases = {
      {"pub18_clm_incremental_chunked_softmax", [](MegaConfig&) {}, 6},
      {"pub14_clm_incremental_softmax_rotary", [](MegaConfig& c) { c.truncation = 3; }, 5},
      {"pub16_clm_incremental_relu2", [](MegaConfig& c) { c.truncation = 2; }, 1},
  };
  for (const Case& test : cases) {
    auto model = load_with(test.name, test.edit);
    auto inputs = load_safetensors(kFixtures + test.name + "/inputs.safetensors").tensors;
    HfRunOptions options;
    options.incremental = true;
    options.prefill = test.prefill;
    auto out = hf_run(*model, inputs, options);
    double scale = 0;
    for (double v : out.at("logits").to_vector()) scale = std::max(scale, std::abs(v));
    EXPECT_LT(max_abs_diff(out.at("incremental.logits"), out.at("logits")), 1e-4 * scale) << test.name;
    EXPECT_LT(max_abs_diff(out.at("incremental_prefill.logits"), out.at("logits")), 1e-4 * scale) << test.name;
  }
}

TEST(MegaModel, SimpleBiasLongerThanItsPositionsIsAClearError) {
  auto model = load_with("pub16_clm_incremental_relu2", [](MegaConfig& c) { c.chunk_size = 4; });
  MegaInputs in;
  in.input_ids = ids_tensor({5, 6, 7, 8, 9, 10}, 1);
  Rng rng(0);
  std::string message = error_of([&] { model->forward(in, rng); });
  EXPECT_NE(message.find("max_positions"), std::string::npos) << message;
  EXPECT_NE(message.find("chunk_size"), std::string::npos) << message;
}
