// MegaConfig: every field of HuggingFace's MegaConfig (configuration_mega.py, same names and defaults)
// plus the PretrainedConfig fields a Mega model reads, read from and written to HF's config.json.
// Keys this struct does not model are kept in `extra` and written back unchanged. How each field is read,
// written, bounded and offered to recipes is described once, in nn/config_fields.h.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/enum_names.h"
#include "ops/activation.h"
#include "ops/attention.h"

namespace mega {

// The settings with a fixed set of values are enums; each name table below is the one list of the
// strings config.json and recipes accept (activation_names() and attention_function_names() live with
// their ops).
enum class NormalizationType { LayerNorm, ScaleNorm, RmsNorm, BatchNorm, SyncBatchNorm };
EnumNames<NormalizationType> normalization_type_names();
enum class RelativePositionalBias { Rotary, Simple };
EnumNames<RelativePositionalBias> relative_positional_bias_names();
enum class ProblemType { Regression, SingleLabelClassification, MultiLabelClassification };
EnumNames<ProblemType> problem_type_names();

struct MegaConfig {
  // configuration_mega.py, in its order, with its defaults.
  int64_t vocab_size = 30522;
  int64_t hidden_size = 128;
  int64_t num_hidden_layers = 4;
  int64_t intermediate_size = 256;
  int64_t ema_projection_size = 16;
  bool bidirectional = true;
  int64_t shared_representation_size = 64;
  bool use_chunking = false;
  int64_t chunk_size = -1;
  std::optional<int64_t> truncation;  // null: the EMA kernel spans the whole sequence
  bool normalize_before_mega = true;
  NormalizationType normalization_type = NormalizationType::ScaleNorm;
  bool norm_affine = true;
  Activation activation = Activation::Silu;
  AttentionFunction attention_activation = AttentionFunction::Softmax;
  double dropout_prob = 0.1;
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  bool use_feature_dropout = false;
  bool use_normalized_ffn = true;
  int64_t nffn_hidden_size = 256;
  bool normalize_before_ffn = true;
  double nffn_activation_dropout_prob = 0.1;
  int64_t max_positions = 2048;
  bool add_token_type_embeddings = false;
  int64_t type_vocab_size = 2;
  double initializer_range = 0.02;
  double ema_delta_alpha_range = 0.2;
  double ema_beta_range = 0.02;
  double ema_gamma_omega_range = 1.0;
  std::optional<int64_t> pad_token_id = 1;
  std::optional<int64_t> bos_token_id = 0;
  std::optional<int64_t> eos_token_id = 2;
  RelativePositionalBias relative_positional_bias = RelativePositionalBias::Rotary;
  std::optional<double> classifier_dropout;
  bool use_cache = true;
  bool add_lm_hidden_dense_layer = true;
  int64_t num_attention_heads = 1;  // unused, HF keeps it

  // PretrainedConfig fields a model reads.
  bool is_decoder = false;
  bool add_cross_attention = false;
  bool tie_word_embeddings = true;
  std::map<std::string, std::string> id2label{{"0", "LABEL_0"}, {"1", "LABEL_1"}};  // num_labels = size
  std::optional<ProblemType> problem_type;  // null: chosen from num_labels and the labels' dtype
  std::vector<std::string> architectures;
  bool output_attentions = false;
  bool output_hidden_states = false;

  nlohmann::json extra = nlohmann::json::object();  // every other key of config.json, kept as read

  int64_t num_labels() const { return static_cast<int64_t>(id2label.size()); }
  void set_num_labels(int64_t n);  // LABEL_0 ... LABEL_{n-1}, as PretrainedConfig does
  // M of the simple relative bias: chunk_size when positive, else max_positions (HF's rule).
  int64_t simple_bias_positions() const { return chunk_size > 0 ? chunk_size : max_positions; }

  // Throws mega::Error naming the field and the rule when the configuration cannot build a model:
  // a value outside its field's range (config_fields.cpp) or a rule between fields.
  void validate() const;

  // Validates. A wrong type, a non-integer number for an integer field, a name outside an enum's
  // table or a value out of range is an error naming the key, before anything is sized from it.
  static MegaConfig from_json(const nlohmann::json& json);
  nlohmann::json to_json() const;
  static MegaConfig load(const std::string& path);  // a config.json file; errors name it
  void save(const std::string& path) const;         // writes path.tmp, then renames
};

}  // namespace mega
