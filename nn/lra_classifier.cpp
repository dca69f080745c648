// The LRA classifier: Mega encoder, pooling, MLP head.
#include "nn/lra_classifier.h"

#include "core/error.h"
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

LraClassifierOptions LraClassifier::options_from_config_json(const nlohmann::json& json) {
  MEGA_CHECK(json.contains("lra_classifier") && json["lra_classifier"].is_object(),
             "[lra_classifier] config.json has no 'lra_classifier' section: not an LRA classifier");
  const nlohmann::json& head = json["lra_classifier"];
  LraClassifierOptions options;
  nlohmann::json encoder = json;
  encoder.erase("lra_classifier");
  options.encoder = MegaConfig::from_json(encoder);
  try {
    options.pooling = pooling_from_name(head.at("pooling").get<std::string>());
    options.classifier_layers = head.at("classifier_layers").get<int64_t>();
    options.classifier_hidden_size = head.at("classifier_hidden_size").get<int64_t>();
    options.classifier_activation = activation_from_name(head.at("classifier_activation").get<std::string>());
    options.classifier_dropout = head.at("classifier_dropout").get<double>();
    options.num_labels = head.at("num_labels").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    fail("[lra_classifier] bad 'lra_classifier' section in config.json: ", e.what());
  }
  return options;
}

}  // namespace mega
