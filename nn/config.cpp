// MegaConfig from and to HF's config.json, and the checks that keep a bad configuration from building a
// model that would fail (or silently differ from HF) later.
#include "nn/config.h"

#include <cstdio>
#include <fstream>

#include "core/error.h"
#include "core/json_file.h"
#include "ops/activation.h"

namespace mega {

namespace {

using nlohmann::json;

// Reads json[key] into `out` when the key is present (and not null for optional fields); a value of
// the wrong type is an error naming the key.
template <class T>
void read(const json& j, const char* key, T& out) {
  auto it = j.find(key);
  if (it == j.end()) return;
  try {
    if constexpr (std::is_same_v<T, bool>) {
      MEGA_CHECK(it->is_boolean(), "expected true or false");
      out = it->get<bool>();
    } else if constexpr (std::is_integral_v<T>) {
      MEGA_CHECK(it->is_number(), "expected an integer");
      double v = it->get<double>();
      MEGA_CHECK(v == static_cast<double>(static_cast<T>(v)), "expected an integer, got ", v);
      out = static_cast<T>(v);
    } else if constexpr (std::is_floating_point_v<T>) {
      MEGA_CHECK(it->is_number(), "expected a number");
      out = it->get<T>();
    } else {
      MEGA_CHECK(it->is_string(), "expected a string");
      out = it->get<T>();
    }
  } catch (const std::exception& e) {
    fail("[config] '", key, "': ", e.what(), " (value ", it->dump(), ")");
  }
}

template <class T>
void read(const json& j, const char* key, std::optional<T>& out) {
  auto it = j.find(key);
  if (it == j.end()) return;
  if (it->is_null()) {
    out.reset();
    return;
  }
  T value{};
  read(j, key, value);
  out = value;
}

template <class T>
json optional_json(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}

// The keys this struct models; everything else in config.json goes to `extra`.
const char* const kKnownKeys[] = {
    "vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size", "ema_projection_size",
    "bidirectional", "shared_representation_size", "use_chunking", "chunk_size", "truncation",
    "normalize_before_mega", "normalization_type", "norm_affine", "activation", "attention_activation",
    "dropout_prob", "hidden_dropout_prob", "attention_probs_dropout_prob", "use_feature_dropout",
    "use_normalized_ffn", "nffn_hidden_size", "normalize_before_ffn", "nffn_activation_dropout_prob",
    "max_positions", "add_token_type_embeddings", "type_vocab_size", "initializer_range",
    "ema_delta_alpha_range", "ema_beta_range", "ema_gamma_omega_range", "pad_token_id", "bos_token_id",
    "eos_token_id", "relative_positional_bias", "classifier_dropout", "use_cache",
    "add_lm_hidden_dense_layer", "num_attention_heads", "is_decoder", "add_cross_attention",
    "tie_word_embeddings", "id2label", "label2id", "num_labels", "problem_type", "architectures",
    "output_attentions", "output_hidden_states"};

}  // namespace

void MegaConfig::set_num_labels(int64_t n) {
  MEGA_CHECK(n >= 1, "[config] num_labels must be at least 1, got ", n);
  id2label.clear();
  for (int64_t i = 0; i < n; ++i) id2label[std::to_string(i)] = "LABEL_" + std::to_string(i);
}

void MegaConfig::validate() const {
  auto positive = [](int64_t v, const char* key) {
    MEGA_CHECK(v > 0, "[config] ", key, " must be positive, got ", v);
  };
  positive(vocab_size, "vocab_size");
  positive(hidden_size, "hidden_size");
  positive(num_hidden_layers, "num_hidden_layers");
  positive(intermediate_size, "intermediate_size");
  positive(ema_projection_size, "ema_projection_size");
  positive(shared_representation_size, "shared_representation_size");
  positive(max_positions, "max_positions");
  if (use_normalized_ffn) positive(nffn_hidden_size, "nffn_hidden_size");
  if (add_token_type_embeddings) positive(type_vocab_size, "type_vocab_size");
  if (truncation) positive(*truncation, "truncation");

  activation_from_name(activation);  // throws with the list of known names
  MEGA_CHECK(attention_activation == "softmax" || attention_activation == "laplace" ||
                 attention_activation == "relu2",
             "[config] unknown attention_activation '", attention_activation,
             "' (expected softmax, laplace or relu2)");
  MEGA_CHECK(normalization_type == "layernorm" || normalization_type == "scalenorm" ||
                 normalization_type == "rmsnorm" || normalization_type == "batchnorm" ||
                 normalization_type == "syncbatchnorm",
             "[config] unknown normalization_type '", normalization_type,
             "' (expected layernorm, scalenorm, rmsnorm, batchnorm or syncbatchnorm)");
  MEGA_CHECK(relative_positional_bias == "rotary" || relative_positional_bias == "simple",
             "[config] unknown relative_positional_bias '", relative_positional_bias,
             "' (expected rotary or simple)");
  MEGA_CHECK(!(relative_positional_bias == "rotary" && shared_representation_size % 2 != 0),
             "[config] the rotary relative bias rotates halves of the shared representation, so "
             "shared_representation_size must be even, got ",
             shared_representation_size);
  MEGA_CHECK(!(is_decoder && bidirectional),
             "[config] a decoder (is_decoder=true) cannot use a bidirectional EMA: it would read future "
             "tokens; set bidirectional=false");
  MEGA_CHECK(!add_cross_attention || is_decoder,
             "[config] add_cross_attention needs is_decoder=true (cross-attention follows a decoder's "
             "self-attention)");
  MEGA_CHECK(!use_chunking || chunk_size > 0, "[config] use_chunking needs a positive chunk_size, got ",
             chunk_size);
  MEGA_CHECK(!(relative_positional_bias == "simple" && chunk_size > max_positions),
             "[config] the simple relative bias holds 2*max_positions-1 = ", 2 * max_positions - 1,
             " weights but chunk_size (", chunk_size, ") needs 2*chunk_size-1; raise max_positions");
  for (auto [value, key] : {std::pair{dropout_prob, "dropout_prob"},
                            {hidden_dropout_prob, "hidden_dropout_prob"},
                            {attention_probs_dropout_prob, "attention_probs_dropout_prob"},
                            {nffn_activation_dropout_prob, "nffn_activation_dropout_prob"},
                            {classifier_dropout.value_or(0.0), "classifier_dropout"}})
    MEGA_CHECK(value >= 0 && value < 1, "[config] ", key, " must be in [0, 1), got ", value);
  MEGA_CHECK(!id2label.empty(), "[config] id2label is empty (num_labels must be at least 1)");
  MEGA_CHECK(!problem_type || *problem_type == "regression" ||
                 *problem_type == "single_label_classification" ||
                 *problem_type == "multi_label_classification",
             "[config] unknown problem_type '", problem_type.value_or(""),
             "' (expected regression, single_label_classification or multi_label_classification)");
}

MegaConfig MegaConfig::from_json(const json& j) {
  MEGA_CHECK(j.is_object(), "[config] expected a JSON object");
  MegaConfig c;
  read(j, "vocab_size", c.vocab_size);
  read(j, "hidden_size", c.hidden_size);
  read(j, "num_hidden_layers", c.num_hidden_layers);
  read(j, "intermediate_size", c.intermediate_size);
  read(j, "ema_projection_size", c.ema_projection_size);
  read(j, "bidirectional", c.bidirectional);
  read(j, "shared_representation_size", c.shared_representation_size);
  read(j, "use_chunking", c.use_chunking);
  read(j, "chunk_size", c.chunk_size);
  read(j, "truncation", c.truncation);
  read(j, "normalize_before_mega", c.normalize_before_mega);
  read(j, "normalization_type", c.normalization_type);
  read(j, "norm_affine", c.norm_affine);
  read(j, "activation", c.activation);
  read(j, "attention_activation", c.attention_activation);
  read(j, "dropout_prob", c.dropout_prob);
  read(j, "hidden_dropout_prob", c.hidden_dropout_prob);
  read(j, "attention_probs_dropout_prob", c.attention_probs_dropout_prob);
  read(j, "use_feature_dropout", c.use_feature_dropout);
  read(j, "use_normalized_ffn", c.use_normalized_ffn);
  read(j, "nffn_hidden_size", c.nffn_hidden_size);
  read(j, "normalize_before_ffn", c.normalize_before_ffn);
  read(j, "nffn_activation_dropout_prob", c.nffn_activation_dropout_prob);
  read(j, "max_positions", c.max_positions);
  read(j, "add_token_type_embeddings", c.add_token_type_embeddings);
  read(j, "type_vocab_size", c.type_vocab_size);
  read(j, "initializer_range", c.initializer_range);
  read(j, "ema_delta_alpha_range", c.ema_delta_alpha_range);
  read(j, "ema_beta_range", c.ema_beta_range);
  read(j, "ema_gamma_omega_range", c.ema_gamma_omega_range);
  read(j, "pad_token_id", c.pad_token_id);
  read(j, "bos_token_id", c.bos_token_id);
  read(j, "eos_token_id", c.eos_token_id);
  read(j, "relative_positional_bias", c.relative_positional_bias);
  read(j, "classifier_dropout", c.classifier_dropout);
  read(j, "use_cache", c.use_cache);
  read(j, "add_lm_hidden_dense_layer", c.add_lm_hidden_dense_layer);
  read(j, "num_attention_heads", c.num_attention_heads);
  read(j, "is_decoder", c.is_decoder);
  read(j, "add_cross_attention", c.add_cross_attention);
  read(j, "tie_word_embeddings", c.tie_word_embeddings);
  read(j, "problem_type", c.problem_type);
  read(j, "output_attentions", c.output_attentions);
  read(j, "output_hidden_states", c.output_hidden_states);
  if (auto it = j.find("id2label"); it != j.end() && !it->is_null()) {
    MEGA_CHECK(it->is_object(), "[config] 'id2label' must be an object {\"0\": \"name\", ...}");
    c.id2label.clear();
    for (auto& [k, v] : it->items()) {
      MEGA_CHECK(v.is_string(), "[config] id2label[", k, "] must be a string");
      c.id2label[k] = v.get<std::string>();
    }
    int64_t num_labels = c.num_labels();
    read(j, "num_labels", num_labels);
    MEGA_CHECK(num_labels == c.num_labels(), "[config] num_labels (", num_labels, ") disagrees with id2label (",
               c.num_labels(), " entries)");
  } else if (auto n = j.find("num_labels"); n != j.end()) {
    int64_t num_labels = 0;
    read(j, "num_labels", num_labels);
    c.set_num_labels(num_labels);
  }
  if (auto it = j.find("architectures"); it != j.end() && !it->is_null()) {
    MEGA_CHECK(it->is_array(), "[config] 'architectures' must be a list of class names");
    for (const json& a : *it) c.architectures.push_back(a.get<std::string>());
  }
  for (auto& [k, v] : j.items()) {
    bool known = false;
    for (const char* key : kKnownKeys) known = known || k == key;
    if (!known) c.extra[k] = v;
  }
  c.validate();
  return c;
}

json MegaConfig::to_json() const {
  json j = extra;
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["intermediate_size"] = intermediate_size;
  j["ema_projection_size"] = ema_projection_size;
  j["bidirectional"] = bidirectional;
  j["shared_representation_size"] = shared_representation_size;
  j["use_chunking"] = use_chunking;
  j["chunk_size"] = chunk_size;
  j["truncation"] = optional_json(truncation);
  j["normalize_before_mega"] = normalize_before_mega;
  j["normalization_type"] = normalization_type;
  j["norm_affine"] = norm_affine;
  j["activation"] = activation;
  j["attention_activation"] = attention_activation;
  j["dropout_prob"] = dropout_prob;
  j["hidden_dropout_prob"] = hidden_dropout_prob;
  j["attention_probs_dropout_prob"] = attention_probs_dropout_prob;
  j["use_feature_dropout"] = use_feature_dropout;
  j["use_normalized_ffn"] = use_normalized_ffn;
  j["nffn_hidden_size"] = nffn_hidden_size;
  j["normalize_before_ffn"] = normalize_before_ffn;
  j["nffn_activation_dropout_prob"] = nffn_activation_dropout_prob;
  j["max_positions"] = max_positions;
  j["add_token_type_embeddings"] = add_token_type_embeddings;
  j["type_vocab_size"] = type_vocab_size;
  j["initializer_range"] = initializer_range;
  j["ema_delta_alpha_range"] = ema_delta_alpha_range;
  j["ema_beta_range"] = ema_beta_range;
  j["ema_gamma_omega_range"] = ema_gamma_omega_range;
  j["pad_token_id"] = optional_json(pad_token_id);
  j["bos_token_id"] = optional_json(bos_token_id);
  j["eos_token_id"] = optional_json(eos_token_id);
  j["relative_positional_bias"] = relative_positional_bias;
  j["classifier_dropout"] = optional_json(classifier_dropout);
  j["use_cache"] = use_cache;
  j["add_lm_hidden_dense_layer"] = add_lm_hidden_dense_layer;
  j["num_attention_heads"] = num_attention_heads;
  j["is_decoder"] = is_decoder;
  j["add_cross_attention"] = add_cross_attention;
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["id2label"] = id2label;
  json label2id = json::object();
  for (const auto& [id, label] : id2label) label2id[label] = std::stoll(id);
  j["label2id"] = label2id;
  j["num_labels"] = num_labels();
  j["problem_type"] = optional_json(problem_type);
  j["architectures"] = architectures;
  j["output_attentions"] = output_attentions;
  j["output_hidden_states"] = output_hidden_states;
  if (!j.contains("model_type")) j["model_type"] = "mega";
  return j;
}

MegaConfig MegaConfig::load(const std::string& path) {
  return parse_json_file(path, read_json_file(path), [](const json& j) { return from_json(j); });
}

void MegaConfig::save(const std::string& path) const {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    MEGA_CHECK(out, "[config] cannot write ", tmp);
    out << to_json().dump(2) << "\n";
    MEGA_CHECK(out.good(), "[config] writing ", tmp, " failed");
  }
  MEGA_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "[config] cannot rename ", tmp, " to ", path);
}

}  // namespace mega
