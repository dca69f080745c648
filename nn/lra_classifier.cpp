// The LRA classifier: Mega encoder, pooling, MLP head.
#include "nn/lra_classifier.h"

#include "core/error.h"
#include "core/json_file.h"
#include "ops/dropout.h"
#include "ops/elementwise.h"
#include "ops/reduce.h"
#include "ops/shape.h"

namespace mega {

Pooling pooling_from_name(const std::string& name) {
  if (name == "mean") return Pooling::Mean;
  if (name == "first") return Pooling::First;
  fail("[lra_classifier] unknown pooling '", name, "' (expected mean or first)");
}

const char* pooling_name(Pooling pooling) { return pooling == Pooling::Mean ? "mean" : "first"; }

LraClassifier::Head::Head(const LraClassifierOptions& options)
    : out_proj(options.classifier_layers > 0 ? options.classifier_hidden_size : options.encoder.hidden_size,
               options.num_labels) {
  int64_t width = options.encoder.hidden_size;
  for (int64_t i = 0; i < options.classifier_layers; ++i) {
    hidden.push_back(std::make_unique<Linear>(width, options.classifier_hidden_size));
    register_module("layers." + std::to_string(i), hidden.back().get());
    width = options.classifier_hidden_size;
  }
  register_module("out_proj", &out_proj);
}

LraClassifier::LraClassifier(const LraClassifierOptions& options)
    : mega(options.encoder, /*add_pooling_layer=*/false), options_(options), classifier(options) {
  MEGA_CHECK(options.num_labels >= 1, "[lra_classifier] num_labels must be >= 1, got ", options.num_labels);
  MEGA_CHECK(options.classifier_layers == 0 || options.classifier_hidden_size >= 1,
             "[lra_classifier] classifier_hidden_size must be >= 1, got ", options.classifier_hidden_size);
  register_module("mega", &mega);
  register_module("classifier", &classifier);
}

Var LraClassifier::forward(const Tensor& ids, const Tensor& mask, Rng& rng) {
  MegaInputs inputs;
  inputs.input_ids = ids;
  inputs.attention_mask = mask;
  Var h = mega.forward(inputs, rng).last_hidden_state;  // (B, L, H)
  Var sentence;
  if (options_.pooling == Pooling::Mean) {
    // Mean over the tokens only: sum(h * mask) / count, the padding contributing nothing.
    const int64_t B = h.size(0), L = h.size(1);
    Tensor weights = mask.reshape({B, L, 1});
    Tensor counts = Tensor::empty({B, 1});
    const float* m = mask.data<float>();
    for (int64_t b = 0; b < B; ++b) {
      double n = 0;
      for (int64_t t = 0; t < L; ++t) n += m[b * L + t];
      counts.data<float>()[b] = static_cast<float>(std::max(n, 1.0));
    }
    sentence = div(sum(mul(h, Var(weights)), 1), Var(counts));  // (B, H)
  } else {
    sentence = select(h, 1, 0);
  }
  Var x = sentence;
  for (auto& layer : classifier.hidden)
    x = dropout(activate(options_.classifier_activation, layer->forward(x)), options_.classifier_dropout,
                training(), rng);
  return classifier.out_proj.forward(x);  // (B, C)
}

nlohmann::json LraClassifier::config_json() const {
  MegaConfig config = options_.encoder;
  config.architectures = {"MegaModel"};
  config.set_num_labels(options_.num_labels);
  nlohmann::json json = config.to_json();
  json["lra_classifier"] = {{"pooling", pooling_name(options_.pooling)},
                            {"classifier_layers", options_.classifier_layers},
                            {"classifier_hidden_size", options_.classifier_hidden_size},
                            {"classifier_activation", activation_name(options_.classifier_activation)},
                            {"classifier_dropout", options_.classifier_dropout},
                            {"num_labels", options_.num_labels}};
  return json;
}

// Sizes read from a file are bounded before anything is allocated from them (a corrupt or hand-edited
// "classifier_layers: 1e9" must not allocate until memory runs out): the layer count as the recipe
// schema bounds it, widths and label counts far above any real model.
LraClassifierOptions LraClassifier::options_from_config_json(const nlohmann::json& json) {
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
  return options;
}

}  // namespace mega
