// The LRA classifier: Mega encoder over tokens or pixels, pooling, MLP head; and the pieces the dual
// encoder shares (pooling, inputs, head, config.json).
#include "nn/lra_classifier.h"

#include <algorithm>

#include "core/error.h"
#include "core/json_file.h"
#include "ops/dropout.h"
#include "ops/elementwise.h"
#include "ops/reduce.h"
#include "ops/shape.h"

namespace mega {

EnumNames<Pooling> pooling_names() {
  static constexpr EnumName<Pooling> names[] = {{Pooling::Mean, "mean"}, {Pooling::First, "first"}};
  return names;
}

Pooling pooling_from_name(const std::string& name) {
  if (auto pooling = enum_from_name(pooling_names(), name)) return *pooling;
  fail("[lra_classifier] unknown pooling '", name, "' (expected ", or_list(enum_name_list(pooling_names())), ")");
}

const char* pooling_name(Pooling pooling) {
  return enum_name(pooling_names(), pooling).data();  // the table's literals are NUL-terminated
}

LraInput lra_input_from_name(const std::string& name) {
  if (name == "tokens") return LraInput::Tokens;
  if (name == "pixels") return LraInput::Pixels;
  fail("[lra_classifier] unknown input '", name, "' (expected tokens or pixels)");
}

const char* lra_input_name(LraInput input) { return input == LraInput::Tokens ? "tokens" : "pixels"; }

Var pool_sentence(const Var& h, const Tensor& mask, Pooling pooling) {
  if (pooling == Pooling::First) return select(h, 1, 0);
  // Mean over the tokens only: sum(h * mask) / count, the padding contributing nothing.
  const int64_t B = h.size(0), L = h.size(1);
  MEGA_CHECK(mask.defined() && mask.shape() == Shape({B, L}), "[lra_classifier] mask should be ",
             shape_str({B, L}), ", got ", mask.defined() ? shape_str(mask.shape()) : "none");
  const Tensor m = mask.to(DType::F32);
  Tensor counts = Tensor::empty({B, 1});
  for (int64_t b = 0; b < B; ++b) {
    double n = 0;
    for (int64_t t = 0; t < L; ++t) n += m.data<float>()[b * L + t];
    counts.data<float>()[b] = static_cast<float>(std::max(n, 1.0));
  }
  return div(sum(mul(h, Var(m.reshape({B, L, 1}))), 1), Var(counts));  // (B, H)
}

MegaInputs lra_encoder_inputs(const Tensor& ids, const Tensor& mask, const PixelEmbedding* pixels) {
  MegaInputs inputs;
  if (pixels) inputs.inputs_embeds = pixels->forward(ids);
  else inputs.input_ids = ids;
  inputs.attention_mask = mask;
  return inputs;
}

LraHead::LraHead(int64_t in_features, const LraClassifierOptions& options)
    : activation_(options.classifier_activation),
      dropout_(options.classifier_dropout),
      out_proj_(options.classifier_layers > 0 ? options.classifier_hidden_size : in_features, options.num_labels) {
  MEGA_CHECK(options.num_labels >= 1, "[lra_classifier] num_labels must be >= 1, got ", options.num_labels);
  MEGA_CHECK(options.classifier_layers == 0 || options.classifier_hidden_size >= 1,
             "[lra_classifier] classifier_hidden_size must be >= 1, got ", options.classifier_hidden_size);
  int64_t width = in_features;
  for (int64_t i = 0; i < options.classifier_layers; ++i) {
    hidden_.push_back(std::make_unique<Linear>(width, options.classifier_hidden_size));
    register_module("layers." + std::to_string(i), hidden_.back().get());
    width = options.classifier_hidden_size;
  }
  register_module("out_proj", &out_proj_);
}

Var LraHead::forward(const Var& features, Rng& rng) {
  Var x = features;
  for (auto& layer : hidden_) x = dropout(activate(activation_, layer->forward(x)), dropout_, training(), rng);
  return out_proj_.forward(x);
}

LraClassifier::LraClassifier(const LraClassifierOptions& options)
    : mega(options.encoder, /*add_pooling_layer=*/false),
      options_(options),
      classifier(options.encoder.hidden_size, options) {
  register_module("mega", &mega);
  register_module("classifier", &classifier);
  if (options.input == LraInput::Pixels) {
    pixel_embedding = std::make_unique<PixelEmbedding>(options.encoder.hidden_size, options.pixel_mean, options.pixel_std);
    register_module("pixel_embedding", pixel_embedding.get());
  }
}

Var LraClassifier::forward(const Tensor& ids, const Tensor& mask, Rng& rng) {
  Var h = mega.forward(lra_encoder_inputs(ids, mask, pixel_embedding.get()), rng).last_hidden_state;  // (B, L, H)
  return classifier.forward(pool_sentence(h, mask, options_.pooling), rng);                            // (B, C)
}

nlohmann::json lra_config_json(const LraClassifierOptions& options) {
  MegaConfig config = options.encoder;
  config.architectures = {"MegaModel"};
  // The encoder's label names (id2label, from the task) are kept when they fit the head.
  if (config.num_labels() != options.num_labels) config.set_num_labels(options.num_labels);
  nlohmann::json json = config.to_json();
  json["lra_classifier"] = {{"pooling", pooling_name(options.pooling)},
                            {"classifier_layers", options.classifier_layers},
                            {"classifier_hidden_size", options.classifier_hidden_size},
                            {"classifier_activation", activation_name(options.classifier_activation)},
                            {"classifier_dropout", options.classifier_dropout},
                            {"num_labels", options.num_labels},
                            {"input", lra_input_name(options.input)}};
  if (options.input == LraInput::Pixels) {
    json["lra_classifier"]["pixel_mean"] = options.pixel_mean;
    json["lra_classifier"]["pixel_std"] = options.pixel_std;
  }
  return json;
}

// Sizes read from a file are bounded before anything is allocated from them (a corrupt or hand-edited
// "classifier_layers: 1e9" must not allocate until memory runs out): the layer count as the recipe
// schema bounds it, widths and label counts far above any real model.
LraClassifierOptions lra_options_from_config_json(const nlohmann::json& json) {
  MEGA_CHECK(json.contains("lra_classifier") && json["lra_classifier"].is_object(),
             "[lra_classifier] config.json has no 'lra_classifier' section: not an LRA classifier");
  const nlohmann::json& head = json["lra_classifier"];
  LraClassifierOptions options;
  nlohmann::json encoder = json;
  encoder.erase("lra_classifier");
  options.encoder = parse_json_naming_key(encoder, [](const nlohmann::json& j) { return MegaConfig::from_json(j); });
  const std::string where = "[lra_classifier] config.json lra_classifier";
  options.pooling = pooling_from_name(json_string(head, "pooling", where));
  options.classifier_layers = json_integer(head, "classifier_layers", where, 0, 16);
  options.classifier_hidden_size = json_integer(head, "classifier_hidden_size", where, 0, 65536);
  options.classifier_activation = activation_from_name(json_string(head, "classifier_activation", where));
  options.classifier_dropout = json_number(head, "classifier_dropout", where, 0.0, 1.0);
  MEGA_CHECK(options.classifier_dropout < 1, where, ": 'classifier_dropout' must be in [0, 1), got ",
             options.classifier_dropout);
  options.num_labels = json_integer(head, "num_labels", where, 1, 1000000);
  // Folders saved before pixel input existed have no "input": they are token models.
  options.input = lra_input_from_name(head.contains("input") ? json_string(head, "input", where) : "tokens");
  if (options.input == LraInput::Pixels) {
    options.pixel_mean = json_number(head, "pixel_mean", where, -1e6, 1e6);
    options.pixel_std = json_number(head, "pixel_std", where, 1e-12, 1e6);
  }
  return options;
}

nlohmann::json LraClassifier::config_json() const { return lra_config_json(options_); }

LraClassifierOptions LraClassifier::options_from_config_json(const nlohmann::json& json) {
  MEGA_CHECK(!(json.contains("lra_classifier") && json["lra_classifier"].contains("pair_features")),
             "[lra_classifier] config.json describes a dual encoder (lra_classifier.pair_features): load it as "
             "LraDualEncoder");
  return lra_options_from_config_json(json);
}

}  // namespace mega
