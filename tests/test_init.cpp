// init_mega_weights: HF's _init_weights rules by parameter name, their statistics, and determinism.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>

#include "nn/init.h"
#include "nn/lra_classifier.h"
#include "nn/mega_model.h"

using namespace mega;

namespace {

MegaConfig small_config(NormalizationType norm, RelativePositionalBias bias) {
  MegaConfig c;
  c.vocab_size = 300;
  c.hidden_size = 64;
  c.num_hidden_layers = 2;
  c.intermediate_size = 128;
  c.shared_representation_size = 32;
  c.ema_projection_size = 16;
  c.nffn_hidden_size = 128;
  c.max_positions = 512;
  c.normalization_type = norm;
  c.relative_positional_bias = bias;
  c.pad_token_id = 3;
  return c;
}

struct Stats {
  double mean = 0, std = 0;
};

Stats stats_of(const Tensor& t) {
  Tensor x = t.to(DType::F64);
  const double* v = x.data<double>();
  double sum = 0, squares = 0;
  for (int64_t i = 0; i < x.numel(); ++i) sum += v[i];
  const double mean = sum / static_cast<double>(x.numel());
  for (int64_t i = 0; i < x.numel(); ++i) squares += (v[i] - mean) * (v[i] - mean);
  return {mean, std::sqrt(squares / static_cast<double>(x.numel()))};
}

bool all_equal(const Tensor& t, double value) {
  Tensor x = t.to(DType::F64);
  for (int64_t i = 0; i < x.numel(); ++i)
    if (x.data<double>()[i] != value) return false;
  return true;
}

// Pools every parameter whose name ends in `suffix` into one sample's statistics.
Stats pooled(const Module& model, const std::string& suffix, int64_t* count = nullptr) {
  std::vector<double> values;
  for (const auto& [name, p] : model.named_parameters()) {
    if (name.size() < suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    Tensor x = p.value().to(DType::F64);
    values.insert(values.end(), x.data<double>(), x.data<double>() + x.numel());
  }
  if (count) *count = static_cast<int64_t>(values.size());
  return stats_of(Tensor::from(values, {static_cast<int64_t>(values.size())}));
}

}  // namespace

TEST(Init, EmaParametersFollowHfRanges) {
  MegaConfig c = small_config(NormalizationType::LayerNorm, RelativePositionalBias::Simple);
  c.ema_delta_alpha_range = 0.2;
  c.ema_beta_range = 0.02;
  c.ema_gamma_omega_range = 1.0;
  MegaModel model(c, false);
  Rng rng(7);
  init_mega_weights(model, c, rng);
  int64_t n = 0;
  Stats delta = pooled(model, "ema_gate.damping_factor", &n);
  ASSERT_EQ(n, 2 * 2 * 64 * 16);  // layers x (2H, N, 1)
  EXPECT_NEAR(delta.mean, 0, 0.02);
  EXPECT_NEAR(delta.std, 0.2, 0.02);
  Stats alpha = pooled(model, "ema_gate.decay_factor");
  EXPECT_NEAR(alpha.std, 0.2, 0.02);
  Stats gamma = pooled(model, "ema_gate.kernel_projection_matrix");
  EXPECT_NEAR(gamma.std, 1.0, 0.1);
  Stats omega = pooled(model, "ema_gate.residual_weight", &n);
  EXPECT_NEAR(omega.std, 1.0, 0.25);  // only 2 x 64 values
  // beta = N(0, 0.02) + [1, -1, 1, ...] along N: subtracting the pattern leaves the noise.
  for (const auto& [name, p] : model.named_parameters()) {
    if (name.find("ema_expansion_matrix") == std::string::npos) continue;
    const Tensor& beta = p.value();
    ASSERT_EQ(beta.dim(), 3);
    ASSERT_EQ(beta.size(1), 16);
    Tensor noise = beta.to(DType::F64);
    double* v = noise.data<double>();
    for (int64_t i = 0; i < noise.numel(); ++i) v[i] -= (i % 16) % 2 == 0 ? 1.0 : -1.0;
    Stats s = stats_of(noise);
    EXPECT_NEAR(s.mean, 0, 0.005) << name;
    EXPECT_NEAR(s.std, 0.02, 0.003) << name;
  }
}

TEST(Init, LinearsEmbeddingsNormsAndAttentionParameters) {
  MegaConfig c = small_config(NormalizationType::LayerNorm, RelativePositionalBias::Simple);
  c.initializer_range = 0.05;
  MegaModel model(c, false);
  Rng rng(1);
  init_mega_weights(model, c, rng);
  Stats fc1 = pooled(model, "nffn.fc1.weight");
  EXPECT_NEAR(fc1.mean, 0, 0.005);
  EXPECT_NEAR(fc1.std, 0.05, 0.003);
  EXPECT_NEAR(pooled(model, "qk_weight").std, 0.05, 0.01);
  EXPECT_NEAR(pooled(model, "rel_pos_bias.rel_pos_bias").std, 0.05, 0.005);
  for (const auto& [name, p] : model.named_parameters()) {
    const bool is_bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    if (is_bias || name.find("qk_bias") != std::string::npos) {
      EXPECT_TRUE(all_equal(p.value(), 0)) << name;
    }
    if (name.find("norm.norm.weight") != std::string::npos) {
      EXPECT_TRUE(all_equal(p.value(), 1)) << name;
    }
  }
  // The word embeddings: N(0, range) with the padding row (3) zero.
  Tensor embeddings = model.embedding_layer.word_embeddings.weight.value();
  for (int64_t j = 0; j < c.hidden_size; ++j) EXPECT_EQ(embeddings.data<float>()[3 * c.hidden_size + j], 0.0f);
  EXPECT_NEAR(stats_of(embeddings).std, 0.05, 0.005);
}

TEST(Init, EveryNormAndBiasKindHasARule) {
  for (const auto& [norm, norm_name] : normalization_type_names()) {
    for (const auto& [bias, bias_name] : relative_positional_bias_names()) {
      MegaConfig c = small_config(norm, bias);
      c.num_hidden_layers = 1;
      MegaModel model(c, true);
      Rng rng(0);
      ASSERT_NO_THROW(init_mega_weights(model, c, rng)) << norm_name << " " << bias_name;
      for (const auto& [name, p] : model.named_parameters()) {
        if (name.find("norm.scalar") != std::string::npos) {
          EXPECT_TRUE(all_equal(p.value(), 1)) << name;
        }
        if (name.find("rel_pos_bias.alpha") != std::string::npos) {
          EXPECT_NEAR(stats_of(p.value()).std, 0.02, 0.01);
        }
      }
      for (const auto& [name, buffer] : model.named_buffers()) {
        if (name.find("running_var") != std::string::npos) {
          EXPECT_TRUE(all_equal(*buffer, 1)) << name;
        }
        if (name.find("running_mean") != std::string::npos) {
          EXPECT_TRUE(all_equal(*buffer, 0)) << name;
        }
      }
    }
  }
}

TEST(Init, DeterministicInTheSeedAndCoversTheClassifierHead) {
  LraClassifierOptions options;
  options.encoder = small_config(NormalizationType::LayerNorm, RelativePositionalBias::Simple);
  options.classifier_hidden_size = 32;
  options.num_labels = 10;
  LraClassifier a(options), b(options), other(options);
  Rng rng_a(5), rng_b(5), rng_other(6);
  init_mega_weights(a, options.encoder, rng_a);
  init_mega_weights(b, options.encoder, rng_b);
  init_mega_weights(other, options.encoder, rng_other);
  auto pa = a.named_parameters(), pb = b.named_parameters(), po = other.named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  bool any_differs = false;
  for (size_t i = 0; i < pa.size(); ++i) {
    ASSERT_EQ(pa[i].first, pb[i].first);
    const Tensor &x = pa[i].second.value(), &y = pb[i].second.value(), &z = po[i].second.value();
    EXPECT_EQ(0, std::memcmp(x.raw(), y.raw(), x.nbytes())) << pa[i].first;
    any_differs = any_differs || std::memcmp(x.raw(), z.raw(), x.nbytes()) != 0;
  }
  EXPECT_TRUE(any_differs);
  EXPECT_NEAR(pooled(a, "classifier.layers.0.weight").std, 0.02, 0.003);
  EXPECT_TRUE(all_equal(a.state_dict().at("classifier.out_proj.bias"), 0));
}
