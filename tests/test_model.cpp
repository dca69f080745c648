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
#include "tests/gradcheck_util.h"

using namespace mega;
using mega::testing::error_of;
namespace fs = std::filesystem;

namespace {

const std::string kFixtures = std::string(MEGA_FIXTURES_DIR) + "/";

// The fixture models are tiny: one thread is fastest, and parallel regions on a loaded machine spin.
struct OneThread {
  OneThread() { set_num_threads(1); }
  ~OneThread() { set_num_threads(0); }
};

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
  EXPECT_EQ(c.normalization_type, NormalizationType::ScaleNorm);
  EXPECT_EQ(c.relative_positional_bias, RelativePositionalBias::Rotary);
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
  EXPECT_EQ(error({{"is_decoder", true}, {"bidirectional", false}}), "(no error)");
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

TEST(MegaModel, FreshWeightsFollowHfInitialisationAndTrain) {
  OneThread one_thread;
  MegaConfig config = MegaConfig::from_json({{"vocab_size", 40}, {"hidden_size", 16}, {"num_hidden_layers", 2},
                                             {"intermediate_size", 24}, {"ema_projection_size", 4},
                                             {"shared_representation_size", 8}, {"nffn_hidden_size", 32},
                                             {"is_decoder", true}, {"bidirectional", false},
                                             {"dropout_prob", 0.0}, {"hidden_dropout_prob", 0.0},
                                             {"attention_probs_dropout_prob", 0.0},
                                             {"nffn_activation_dropout_prob", 0.0}});
  auto model = make_mega(config, "MegaForCausalLM");
  Rng rng(3);
  model->init_weights(rng);
  auto state = model->state_dict();
  EXPECT_TRUE(state.at("lm_head.weight").shares_storage(state.at("mega.embedding_layer.word_embeddings.weight")));
  Tensor embeddings = state.at("mega.embedding_layer.word_embeddings.weight");
  for (int64_t h = 0; h < 16; ++h) EXPECT_EQ(embeddings.at(1 * 16 + h), 0.0);  // pad_token_id 1
  Tensor beta = state.at("mega.layers.0.mega_layer.ema_gate.ema_expansion_matrix");  // (H, N, 1)
  EXPECT_NEAR(beta.at(0), 1.0, 0.1);
  EXPECT_NEAR(beta.at(1), -1.0, 0.1);
  EXPECT_EQ(state.at("mega.layers.0.mega_layer.norm.norm.scalar").item(), 1.0);
  EXPECT_EQ(state.at("mega.layers.0.mega_layer.qk_bias").at(3), 0.0);

  // A few plain SGD steps on one batch lower the loss: the whole graph is differentiable.
  MegaInputs in;
  in.input_ids = ids_tensor({0, 5, 9, 13, 7, 22, 31, 4, 0, 8, 8, 3, 12, 19, 25, 6}, 2);
  in.labels = in.input_ids;
  model->train();
  double first = 0, last = 0;
  for (int step = 0; step < 8; ++step) {
    for (const Var& p : model->parameters()) p.zero_grad();
    Var loss = model->forward(in, rng).loss;
    loss.backward();
    (step == 0 ? first : last) = loss.item();
    for (const Var& p : model->parameters()) {
      if (!p.grad().defined()) continue;
      float* w = p.value_mut().data<float>();
      const float* g = p.grad().data<float>();
      for (int64_t i = 0; i < p.numel(); ++i) w[i] -= 0.5f * g[i];
    }
  }
  EXPECT_TRUE(std::isfinite(first));
  EXPECT_LT(last, first);
}

TEST(MegaModel, InputsEmbedsEqualInputIds) {
  OneThread one_thread;
  const std::string name = "pub09_multiple_choice_layernorm_tokentypes";  // token types and (B, C, L) inputs
  MegaCheckpoint checkpoint = load_pretrained(kFixtures + name);
  auto inputs = load_safetensors(kFixtures + name + "/inputs.safetensors").tensors;
  auto by_ids = hf_run(*checkpoint.model, inputs, {});
  Tensor table = checkpoint.model->state_dict().at("mega.embedding_layer.word_embeddings.weight");
  Tensor ids = inputs.at("input_ids");
  const int64_t H = table.size(1);
  Shape shape = ids.shape();
  shape.push_back(H);
  Tensor embeds = Tensor::empty(shape);
  for (int64_t i = 0; i < ids.numel(); ++i)
    for (int64_t h = 0; h < H; ++h) embeds.data<float>()[i * H + h] = table.data<float>()[ids.data<int64_t>()[i] * H + h];
  auto with_embeds = inputs;
  with_embeds.erase("input_ids");
  with_embeds["inputs_embeds"] = embeds;
  auto by_embeds = hf_run(*checkpoint.model, with_embeds, {});
  for (const auto& [key, t] : by_ids) EXPECT_LT(max_abs_diff(t, by_embeds.at(key)), 1e-6) << key;
}

TEST(MegaModel, DropoutActsInTrainModeOnlyAndFollowsTheSeed) {
  OneThread one_thread;
  for (bool featurewise : {false, true}) {
    auto model = load_with("pub20_seqcls_layernorm_noaffine", [&](MegaConfig& c) {
      c.dropout_prob = c.hidden_dropout_prob = c.attention_probs_dropout_prob = c.nffn_activation_dropout_prob = 0.3;
      c.use_feature_dropout = featurewise;
    });
    auto inputs = load_safetensors(kFixtures + std::string("pub20_seqcls_layernorm_noaffine/inputs.safetensors")).tensors;
    HfRunOptions eval_options, train_a, train_b, train_c;
    train_a.train = train_b.train = train_c.train = true;
    train_c.seed = 1;
    Tensor eval_logits = hf_run(*model, inputs, eval_options).at("logits");
    Tensor a = hf_run(*model, inputs, train_a).at("logits");
    Tensor b = hf_run(*model, inputs, train_b).at("logits");
    Tensor c = hf_run(*model, inputs, train_c).at("logits");
    Tensor reference = load_safetensors(kFixtures + std::string("pub20_seqcls_layernorm_noaffine/expected.safetensors"))
                           .tensors.at("logits");
    EXPECT_LT(max_abs_diff(eval_logits, reference), 1e-5);  // eval: dropout is the identity
    EXPECT_EQ(max_abs_diff(a, b), 0.0);                      // same seed, same masks
    EXPECT_GT(max_abs_diff(a, c), 1e-3);                     // another seed, other masks
    EXPECT_GT(max_abs_diff(a, eval_logits), 1e-3);
  }
}

// Padding in cached decoding: with right padding (here leaving whole chunks of padding) and with left
// padding, every row equals the full forward (see zero_left_padding_rows for the two cases that cannot).
TEST(MegaModel, CachedDecodingWithPadding) {
  OneThread one_thread;
  for (const std::string name : {"pub18_clm_incremental_chunked_softmax", "pub14_clm_incremental_softmax_rotary"}) {
    auto model = load_with(name, [](MegaConfig&) {});
    auto inputs = load_safetensors(kFixtures + name + "/inputs.safetensors").tensors;
    const int64_t B = inputs.at("input_ids").size(0), L = inputs.at("input_ids").size(1);
    std::vector<int64_t> right(B * L), left(B * L);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < L; ++t) {
        right[b * L + t] = t < 3 + b ? 1 : 0;
        left[b * L + t] = t >= 2 + b ? 1 : 0;
      }
    HfRunOptions options;
    options.incremental = true;
    options.prefill = 3;
    for (const auto& mask : {right, left}) {
      inputs["attention_mask"] = ids_tensor(mask, B);
      auto out = hf_run(*model, inputs, options);
      EXPECT_LT(max_abs_diff(out.at("incremental.logits"), out.at("logits")), 1e-4) << name;
      EXPECT_LT(max_abs_diff(out.at("incremental_prefill.logits"), out.at("logits")), 1e-4) << name;
    }
  }
}
