// The LRA Retrieval dual encoder (nn/lra_dual_encoder.h).
#include "nn/lra_dual_encoder.h"

#include "core/error.h"
#include "ops/elementwise.h"
#include "ops/shape.h"

namespace mega {

EnumNames<PairFeatures> pair_features_names() {
  static constexpr EnumName<PairFeatures> names[] = {{PairFeatures::Concat, "concat"},
                                                     {PairFeatures::Interaction, "interaction"}};
  return names;
}

PairFeatures pair_features_from_name(const std::string& name) {
  if (auto features = enum_from_name(pair_features_names(), name)) return *features;
  fail("[lra_dual_encoder] unknown pair_features '", name, "' (expected ",
       or_list(enum_name_list(pair_features_names())), ")");
}

const char* pair_features_name(PairFeatures features) {
  return enum_name(pair_features_names(), features).data();  // the table's literals are NUL-terminated
}

Var combine_pair(const Var& u, const Var& v, PairFeatures features) {
  if (features == PairFeatures::Concat) return concat({u, v}, 1);
  return concat({u, v, mul(u, v), sub(u, v)}, 1);
}

namespace {
int64_t head_in_features(const LraDualEncoderOptions& options) {
  return (options.pair_features == PairFeatures::Concat ? 2 : 4) * options.classifier.encoder.hidden_size;
}
}  // namespace

LraDualEncoder::LraDualEncoder(const LraDualEncoderOptions& options)
    : mega(options.classifier.encoder, /*add_pooling_layer=*/false),
      options_(options),
      classifier(head_in_features(options), options.classifier) {
  register_module("mega", &mega);
  register_module("classifier", &classifier);
  const LraClassifierOptions& o = options.classifier;
  if (o.input == LraInput::Pixels) {
    pixel_embedding = std::make_unique<PixelEmbedding>(o.encoder.hidden_size, o.pixel_mean, o.pixel_std);
    register_module("pixel_embedding", pixel_embedding.get());
  }
}

Var LraDualEncoder::encode(const Tensor& ids, const Tensor& mask, Rng& rng) {
  Var h = mega.forward(lra_encoder_inputs(ids, mask, pixel_embedding.get()), rng).last_hidden_state;
  return pool_sentence(h, mask, options_.classifier.pooling);
}

Var LraDualEncoder::forward(const Tensor& ids1, const Tensor& mask1, const Tensor& ids2, const Tensor& mask2,
                            Rng& rng) {
  MEGA_CHECK(ids1.dim() == 2 && ids2.dim() == 2 && ids1.size(0) == ids2.size(0),
             "[lra_dual_encoder] the two documents should be (B, L1) and (B, L2) with one B, got ",
             shape_str(ids1.shape()), " and ", shape_str(ids2.shape()));
  Var u = encode(ids1, mask1, rng), v = encode(ids2, mask2, rng);
  return classifier.forward(combine_pair(u, v, options_.pair_features), rng);
}

nlohmann::json LraDualEncoder::config_json() const {
  nlohmann::json json = lra_config_json(options_.classifier);
  json["lra_classifier"]["pair_features"] = pair_features_name(options_.pair_features);
  return json;
}

LraDualEncoderOptions LraDualEncoder::options_from_config_json(const nlohmann::json& json) {
  LraDualEncoderOptions options;
  options.classifier = lra_options_from_config_json(json);
  const nlohmann::json& head = json["lra_classifier"];
  MEGA_CHECK(head.contains("pair_features") && head["pair_features"].is_string(),
             "[lra_dual_encoder] config.json has no string lra_classifier.pair_features: not a dual encoder");
  options.pair_features = pair_features_from_name(head["pair_features"].get<std::string>());
  return options;
}

}  // namespace mega
