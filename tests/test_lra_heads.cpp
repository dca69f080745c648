// The LRA heads' pieces of the original Mega: the real-valued pixel embedding (gradchecked, and as the
// classifier's pixel input), the Retrieval dual encoder against a hand computation of its pooling and
// head, its backward against finite differences, and config.json + state_dict round trips of both.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "core/safetensors.h"
#include "nn/init.h"
#include "nn/lra_dual_encoder.h"
#include "tests/gradcheck_util.h"

using namespace mega;
using mega::testing::error_of;
using mega::testing::random_tensor;

namespace {

MegaConfig tiny_config() {
  MegaConfig c;
  c.vocab_size = 20;
  c.hidden_size = 8;
  c.num_hidden_layers = 1;
  c.intermediate_size = 16;
  c.shared_representation_size = 4;
  c.ema_projection_size = 2;
  c.nffn_hidden_size = 16;
  c.max_positions = 64;
  c.pad_token_id = 0;
  c.hidden_dropout_prob = 0;
  c.attention_probs_dropout_prob = 0;
  c.dropout_prob = 0;
  return c;
}

LraClassifierOptions tiny_options(LraInput input) {
  LraClassifierOptions o;
  o.encoder = tiny_config();
  o.classifier_layers = 1;
  o.classifier_hidden_size = 6;
  o.num_labels = 3;
  o.input = input;
  o.pixel_mean = 0.5;
  o.pixel_std = 0.25;
  return o;
}

// Ids (B, L) and their mask from rows of unequal length (0 = padding after each row).
struct Docs {
  Tensor ids, mask;
};
Docs docs(const std::vector<std::vector<int64_t>>& rows, int64_t L) {
  const int64_t B = static_cast<int64_t>(rows.size());
  std::vector<int64_t> ids(B * L, 0);
  std::vector<float> mask(B * L, 0);
  for (int64_t b = 0; b < B; ++b)
    for (size_t t = 0; t < rows[b].size(); ++t) {
      ids[b * L + t] = rows[b][t];
      mask[b * L + t] = 1;
    }
  return {Tensor::from(ids, {B, L}), Tensor::from(mask, {B, L})};
}

using Matrix = std::vector<std::vector<double>>;

Matrix to_matrix(const Tensor& t) {  // (R, C)
  Tensor x = t.to(DType::F64);
  Matrix m(x.size(0), std::vector<double>(x.size(1)));
  for (int64_t r = 0; r < x.size(0); ++r)
    for (int64_t c = 0; c < x.size(1); ++c) m[r][c] = x.data<double>()[r * x.size(1) + c];
  return m;
}

std::vector<double> to_vector(const Tensor& t) {
  Tensor x = t.to(DType::F64);
  return std::vector<double>(x.data<double>(), x.data<double>() + x.numel());
}

// W x + b for W (out, in).
std::vector<double> linear(const std::vector<double>& x, const Tensor& weight, const Tensor& bias) {
  Matrix w = to_matrix(weight);
  std::vector<double> b = to_vector(bias), y(w.size());
  for (size_t o = 0; o < w.size(); ++o) {
    y[o] = b[o];
    for (size_t i = 0; i < x.size(); ++i) y[o] += w[o][i] * x[i];
  }
  return y;
}

// The mean over row b's tokens of h (B, L, H), by hand.
std::vector<double> masked_mean(const Tensor& h, const Tensor& mask, int64_t b) {
  Tensor x = h.to(DType::F64), m = mask.to(DType::F64);
  const int64_t L = h.size(1), H = h.size(2);
  std::vector<double> mean(H, 0);
  double n = 0;
  for (int64_t t = 0; t < L; ++t) {
    const double w = m.data<double>()[b * L + t];
    n += w;
    for (int64_t d = 0; d < H; ++d) mean[d] += w * x.data<double>()[(b * L + t) * H + d];
  }
  for (double& v : mean) v /= n;
  return mean;
}

// The head by hand: Linear -> gelu (erf) -> Linear, from the model's own weights.
std::vector<double> head_by_hand(const std::map<std::string, Tensor>& state, std::vector<double> x) {
  x = linear(x, state.at("classifier.layers.0.weight"), state.at("classifier.layers.0.bias"));
  for (double& v : x) v = v / 2 * (1 + std::erf(v / std::sqrt(2.0)));
  return linear(x, state.at("classifier.out_proj.weight"), state.at("classifier.out_proj.bias"));
}

template <class Model>
void init(Model& model, const MegaConfig& config, uint64_t seed) {
  Rng rng(seed);
  init_mega_weights(model, config, rng);
  model.eval();
}

void expect_close(const Tensor& actual, const Tensor& expected, double tol, const std::string& what) {
  ASSERT_EQ(actual.shape(), expected.shape()) << what;
  std::vector<double> a = to_vector(actual), e = to_vector(expected);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], e[i], tol) << what << " element " << i;
}

}  // namespace

TEST(PixelEmbedding, GradcheckOfTheRealNumberEmbedding) {
  using V = const std::vector<Var>&;
  EXPECT_GRADCHECK([](V v) { return real_number_embedding(v[0], v[1], v[2]); },
                   (std::vector<Tensor>{random_tensor({2, 5}, 1), random_tensor({4}, 2), random_tensor({4}, 3)}));
}

TEST(PixelEmbedding, NormalisesThenScalesAndShifts) {
  PixelEmbedding embedding(3, 0.5, 0.25);
  embedding.weight.value_mut().copy_from(Tensor::from(std::vector<float>{1, -2, 0.5f}, {3}));
  embedding.bias.value_mut().copy_from(Tensor::from(std::vector<float>{0.1f, 0.2f, 0.3f}, {3}));
  Tensor pixels = Tensor::from(std::vector<int64_t>{0, 255, 51, 128}, {2, 2});
  Tensor out = embedding.forward(pixels).value();
  ASSERT_EQ(out.shape(), (Shape{2, 2, 3}));
  const double w[3] = {1, -2, 0.5}, b[3] = {0.1, 0.2, 0.3};
  const double v[4] = {0, 255, 51, 128};
  for (int i = 0; i < 4; ++i)
    for (int d = 0; d < 3; ++d)
      EXPECT_NEAR(out.data<float>()[i * 3 + d], (v[i] / 255 - 0.5) / 0.25 * w[d] + b[d], 1e-5) << i << "," << d;
  std::string e = error_of([&] { embedding.forward(Tensor::from(std::vector<int64_t>{3, 256}, {1, 2})); });
  EXPECT_NE(e.find("pixel 1 has intensity 256"), std::string::npos) << e;
  EXPECT_NE(error_of([] { PixelEmbedding(3, 0, 0); }).find("std must be > 0"), std::string::npos);
}

TEST(PixelEmbedding, ClassifierFeedsItToMegaAsInputsEmbeds) {
  LraClassifierOptions options = tiny_options(LraInput::Pixels);
  LraClassifier model(options);
  init(model, options.encoder, 3);
  auto state = model.state_dict();
  ASSERT_TRUE(state.count("pixel_embedding.weight") && state.count("pixel_embedding.bias"));
  // Mega's initialisation, not the Linear rule's zero bias.
  EXPECT_GT(std::abs(to_vector(state.at("pixel_embedding.bias"))[0]), 0.0);
  Docs d = docs({{0, 255, 17, 200, 99}, {40, 80}}, 5);
  Rng rng(1);
  Tensor logits = model.forward(d.ids, d.mask, rng).value();
  ASSERT_EQ(logits.shape(), (Shape{2, 3}));

  MegaInputs inputs;
  inputs.inputs_embeds = model.pixel_embedding->forward(d.ids);
  inputs.attention_mask = d.mask;
  Tensor h = model.mega.forward(inputs, rng).last_hidden_state.value();
  for (int64_t b = 0; b < 2; ++b) {
    std::vector<double> expected = head_by_hand(state, masked_mean(h, d.mask, b));
    for (int64_t c = 0; c < 3; ++c) EXPECT_NEAR(logits.data<float>()[b * 3 + c], expected[c], 1e-4) << b << "," << c;
  }
}

TEST(LraDualEncoder, MatchesHandComputationForBothPairFeatures) {
  for (PairFeatures features : {PairFeatures::Concat, PairFeatures::Interaction}) {
    LraDualEncoderOptions options{tiny_options(LraInput::Tokens), features};
    LraDualEncoder model(options);
    init(model, options.classifier.encoder, 4);
    auto state = model.state_dict();
    // One encoder for both documents: a single "mega." tree, and a head reading 2H or 4H features.
    EXPECT_EQ(state.at("classifier.layers.0.weight").size(1), features == PairFeatures::Concat ? 16 : 32);
    for (const auto& [name, tensor] : state)
      EXPECT_TRUE(name.rfind("mega.", 0) == 0 || name.rfind("classifier.", 0) == 0) << name;

    Docs first = docs({{5, 6, 7}, {8, 9, 10, 11, 12, 13}}, 6), second = docs({{3, 4, 19, 2}, {1}}, 4);
    Rng rng(2);
    Tensor logits = model.forward(first.ids, first.mask, second.ids, second.mask, rng).value();
    ASSERT_EQ(logits.shape(), (Shape{2, 3}));

    auto encode = [&](const Docs& d) {
      MegaInputs inputs;
      inputs.input_ids = d.ids;
      inputs.attention_mask = d.mask;
      return model.mega.forward(inputs, rng).last_hidden_state.value();
    };
    Tensor h1 = encode(first), h2 = encode(second);
    for (int64_t b = 0; b < 2; ++b) {
      std::vector<double> u = masked_mean(h1, first.mask, b), v = masked_mean(h2, second.mask, b);
      std::vector<double> x = u;
      x.insert(x.end(), v.begin(), v.end());
      if (features == PairFeatures::Interaction) {
        for (size_t i = 0; i < u.size(); ++i) x.push_back(u[i] * v[i]);
        for (size_t i = 0; i < u.size(); ++i) x.push_back(u[i] - v[i]);
      }
      std::vector<double> expected = head_by_hand(state, x);
      for (int64_t c = 0; c < 3; ++c)
        EXPECT_NEAR(logits.data<float>()[b * 3 + c], expected[c], 1e-4)
            << pair_features_name(features) << " row " << b << " label " << c;
    }
    // Swapping the documents changes the answer (the head is not symmetric).
    Tensor swapped = model.forward(second.ids, second.mask, first.ids, first.mask, rng).value();
    EXPECT_GT(std::abs(swapped.data<float>()[0] - logits.data<float>()[0]), 1e-6);
  }
}

TEST(LraDualEncoder, CombinePairGradcheck) {
  using V = const std::vector<Var>&;
  for (PairFeatures features : {PairFeatures::Concat, PairFeatures::Interaction})
    EXPECT_GRADCHECK([features](V v) { return combine_pair(v[0], v[1], features); },
                     (std::vector<Tensor>{random_tensor({2, 3}, 5), random_tensor({2, 3}, 6)}));
}

TEST(LraDualEncoder, BackwardMatchesFiniteDifferences) {
  LraDualEncoderOptions options{tiny_options(LraInput::Tokens), PairFeatures::Interaction};
  LraDualEncoder model(options);
  init(model, options.classifier.encoder, 9);
  Docs first = docs({{5, 6, 7, 8}, {9, 10}}, 4), second = docs({{3, 4}, {1, 2, 3}}, 3);
  Tensor cotangent = random_tensor({2, 3}, 8).to(DType::F32);
  auto objective = [&] {
    Rng rng(0);
    Tensor logits = model.forward(first.ids, first.mask, second.ids, second.mask, rng).value();
    double s = 0;
    for (int64_t i = 0; i < 6; ++i) s += static_cast<double>(logits.data<float>()[i]) * cotangent.data<float>()[i];
    return s;
  };
  Rng rng(0);
  Var logits = model.forward(first.ids, first.mask, second.ids, second.mask, rng);
  logits.backward(cotangent);
  // Parameters on every path: the head, the encoder's last and first pieces (both documents reach them).
  int checked = 0;
  for (auto& [name, parameter] : model.named_parameters()) {
    const bool wanted = name == "classifier.out_proj.weight" || name == "classifier.layers.0.weight" ||
                        name == "mega.embedding_layer.word_embeddings.weight" ||
                        name.find("mega_layer.v_proj.weight") != std::string::npos;
    if (!wanted) continue;
    ASSERT_TRUE(parameter.grad().defined()) << name;
    Tensor grad = parameter.grad().to(DType::F64);
    float* value = parameter.value_mut().data<float>();
    // For the word embeddings, rows of tokens in the documents (5 and 9 in the first, 3 in both); the
    // padding row gets no gradient by design.
    const bool embeddings = name.find("word_embeddings") != std::string::npos;
    const std::vector<int64_t> elements = embeddings ? std::vector<int64_t>{5 * 8 + 3, 9 * 8 + 1, 3 * 8 + 6}
                                                     : std::vector<int64_t>{0, parameter.numel() / 2 + 1};
    for (int64_t i : elements) {
      const float saved = value[i];
      const double eps = 1e-2;
      value[i] = saved + static_cast<float>(eps);
      const double plus = objective();
      value[i] = saved - static_cast<float>(eps);
      const double minus = objective();
      value[i] = saved;
      const double numeric = (plus - minus) / (2 * eps), analytic = grad.data<double>()[i];
      EXPECT_NEAR(analytic, numeric, 2e-3 + 2e-2 * std::abs(numeric)) << name << "[" << i << "]";
      ++checked;
    }
  }
  EXPECT_EQ(checked, 9);
}

TEST(LraHeads, ConfigAndStateDictRoundTripThroughFiles) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "mega_test_lra_heads";
  fs::remove_all(dir);
  fs::create_directories(dir);
  Docs a = docs({{0, 255, 7}, {128}}, 3), b = docs({{1, 2}, {3, 4}}, 2);

  LraClassifierOptions pixel_options = tiny_options(LraInput::Pixels);
  LraClassifier classifier(pixel_options);
  init(classifier, pixel_options.encoder, 5);
  save_safetensors((dir / "classifier.safetensors").string(), classifier.state_dict());
  nlohmann::json classifier_config = nlohmann::json::parse(classifier.config_json().dump());
  EXPECT_EQ(classifier_config["lra_classifier"]["input"], "pixels");
  LraClassifierOptions read = LraClassifier::options_from_config_json(classifier_config);
  EXPECT_EQ(read.input, LraInput::Pixels);
  EXPECT_EQ(read.pixel_mean, 0.5);
  EXPECT_EQ(read.pixel_std, 0.25);
  LraClassifier classifier_back(read);
  classifier_back.load_state_dict(load_safetensors((dir / "classifier.safetensors").string()).tensors);
  classifier_back.eval();
  Rng rng(0);
  expect_close(classifier_back.forward(a.ids, a.mask, rng).value(), classifier.forward(a.ids, a.mask, rng).value(),
               0, "classifier");

  LraDualEncoderOptions dual_options{tiny_options(LraInput::Pixels), PairFeatures::Interaction};
  LraDualEncoder dual(dual_options);
  init(dual, dual_options.classifier.encoder, 6);
  save_safetensors((dir / "dual.safetensors").string(), dual.state_dict());
  nlohmann::json dual_config = nlohmann::json::parse(dual.config_json().dump());
  LraDualEncoderOptions dual_read = LraDualEncoder::options_from_config_json(dual_config);
  EXPECT_EQ(dual_read.pair_features, PairFeatures::Interaction);
  EXPECT_EQ(dual_read.classifier.input, LraInput::Pixels);
  LraDualEncoder dual_back(dual_read);
  dual_back.load_state_dict(load_safetensors((dir / "dual.safetensors").string()).tensors);
  dual_back.eval();
  expect_close(dual_back.forward(a.ids, a.mask, b.ids, b.mask, rng).value(),
               dual.forward(a.ids, a.mask, b.ids, b.mask, rng).value(), 0, "dual encoder");
  fs::remove_all(dir);

  // Each refuses the other's config.json; a token classifier saved before "input" existed still loads.
  EXPECT_NE(error_of([&] { LraClassifier::options_from_config_json(dual_config); }).find("LraDualEncoder"),
            std::string::npos);
  EXPECT_NE(error_of([&] { LraDualEncoder::options_from_config_json(classifier_config); }).find("not a dual encoder"),
            std::string::npos);
  nlohmann::json old = LraClassifier(tiny_options(LraInput::Tokens)).config_json();
  old["lra_classifier"].erase("input");
  EXPECT_EQ(LraClassifier::options_from_config_json(old).input, LraInput::Tokens);
  classifier_config["lra_classifier"]["input"] = "voxels";
  EXPECT_NE(error_of([&] { LraClassifier::options_from_config_json(classifier_config); }).find("unknown input 'voxels'"),
            std::string::npos);
}
