// The MegaConfig field table (see config_fields.h) and the generic get/set/check over it.
#include "nn/config_fields.h"

#include <charconv>
#include <cmath>
#include <type_traits>

#include "core/error.h"

namespace mega {

namespace {

// Size bounds. A size in config.json or a recipe is checked against these before any tensor is sized
// from it (num_hidden_layers: 1e9 used to allocate until memory ran out). Each sits far above any
// published Mega (the paper's largest stacks are 24 layers of width 1024; HF's mega-base-wikitext is
// 128 wide) or any common model, yet keeps a single typo from asking for a terabyte.
constexpr double kMaxLayers = 1024;
constexpr double kMaxWidth = 65536;          // D, Z: GPT-3's width is 12288
constexpr double kMaxInnerWidth = 262144;    // the attention's value width and the FFN: 4 x kMaxWidth
constexpr double kMaxEmaDims = 4096;         // N per feature: the paper uses 16; the EMA holds D x N of them
constexpr double kMaxVocab = 10'000'000;     // the largest vocabularies in use are about 256K tokens
constexpr double kMaxPositions = 1 << 20;    // LRA's Path-X is 16K; the simple bias holds 2M - 1 weights
constexpr double kMaxTokenTypes = 1024;      // BERT-style segment ids: 2
constexpr FieldRange kProbability{0, 1, true};
constexpr FieldRange kNonNegative{0, std::numeric_limits<double>::infinity()};

using M = MegaConfig;
constexpr ConfigField kFields[] = {
    {"vocab_size", &M::vocab_size, {1, kMaxVocab}, "token vocabulary", RecipeUse::TaskDefault},
    {"hidden_size", &M::hidden_size, {1, kMaxWidth}, "D, the model dimension"},
    {"num_hidden_layers", &M::num_hidden_layers, {1, kMaxLayers}, "Mega blocks"},
    {"intermediate_size", &M::intermediate_size, {1, kMaxInnerWidth}, "the gated attention's value/hidden dimension"},
    {"ema_projection_size", &M::ema_projection_size, {1, kMaxEmaDims}, "N, EMA dimensions per feature"},
    {"bidirectional", &M::bidirectional, {}, "two-directional EMA"},
    {"shared_representation_size", &M::shared_representation_size, {1, kMaxWidth}, "Z, the shared query/key dimension"},
    {"use_chunking", &M::use_chunking, {}, "Mega-chunk: attention within chunks of chunk_size"},
    {"chunk_size", &M::chunk_size, {-1, kMaxPositions}, "-1: no chunking"},
    {"truncation", &M::truncation, {1, kMaxPositions}, "EMA kernel length; null: the sequence length"},
    {"normalize_before_mega", &M::normalize_before_mega, {}, "pre-norm (true) or post-norm (false)"},
    {"normalization_type", &M::normalization_type, {}, "the norm of every block"},
    {"norm_affine", &M::norm_affine, {}, "learned gain/bias in the norms"},
    {"activation", &M::activation, {}, "activation of the gated attention and the FFN"},
    {"attention_activation", &M::attention_activation, {}, "the attention function"},
    {"dropout_prob", &M::dropout_prob, kProbability, "dropout on block outputs"},
    {"hidden_dropout_prob", &M::hidden_dropout_prob, kProbability, "dropout on the gated attention's hidden units"},
    {"attention_probs_dropout_prob", &M::attention_probs_dropout_prob, kProbability, "dropout on attention weights"},
    {"use_feature_dropout", &M::use_feature_dropout, {}, "drop whole features instead of elements"},
    {"use_normalized_ffn", &M::use_normalized_ffn, {}, "a normalized feed-forward network after each block"},
    {"nffn_hidden_size", &M::nffn_hidden_size, {1, kMaxInnerWidth}, "the FFN's hidden dimension"},
    {"normalize_before_ffn", &M::normalize_before_ffn, {}, "pre-norm (true) or post-norm (false) FFN"},
    {"nffn_activation_dropout_prob", &M::nffn_activation_dropout_prob, kProbability, "dropout after the FFN's activation"},
    {"max_positions", &M::max_positions, {1, kMaxPositions}, "longest sequence (relative position bias size)"},
    {"add_token_type_embeddings", &M::add_token_type_embeddings, {}, "segment embeddings"},
    {"type_vocab_size", &M::type_vocab_size, {1, kMaxTokenTypes}, "segment ids"},
    {"initializer_range", &M::initializer_range, kNonNegative, "std of the normal initializer"},
    {"ema_delta_alpha_range", &M::ema_delta_alpha_range, kNonNegative, "std of the EMA's delta and alpha at init"},
    {"ema_beta_range", &M::ema_beta_range, kNonNegative, "std of the EMA's beta at init"},
    {"ema_gamma_omega_range", &M::ema_gamma_omega_range, kNonNegative, "std of the EMA's gamma and omega at init"},
    {"pad_token_id", &M::pad_token_id, {0, kMaxVocab - 1}, "padding token", RecipeUse::TaskDefault},
    // A classifier takes no sentence markers: the trainer sets both to null.
    {"bos_token_id", &M::bos_token_id, {0, kMaxVocab - 1}, "start-of-sequence token", RecipeUse::NotInRecipe},
    {"eos_token_id", &M::eos_token_id, {0, kMaxVocab - 1}, "end-of-sequence token", RecipeUse::NotInRecipe},
    {"relative_positional_bias", &M::relative_positional_bias, {}, "the attention's relative position bias"},
    {"classifier_dropout", &M::classifier_dropout, kProbability, "classification head dropout; null: dropout_prob"},
    {"use_cache", &M::use_cache, {}, "decoders return key/value caches", RecipeUse::NotInRecipe},
    {"add_lm_hidden_dense_layer", &M::add_lm_hidden_dense_layer, {}, "a dense layer in the LM head", RecipeUse::NotInRecipe},
    // Unused by Mega (single-headed); HF keeps it.
    {"num_attention_heads", &M::num_attention_heads, {1, kMaxWidth}, "unused", RecipeUse::NotInRecipe},
    // PretrainedConfig fields a model reads.
    {"is_decoder", &M::is_decoder, {}, "causal attention and EMA (needs bidirectional: false)"},
    {"add_cross_attention", &M::add_cross_attention, {}, "decoder cross-attention", RecipeUse::NotInRecipe},
    {"tie_word_embeddings", &M::tie_word_embeddings, {}, "causal_lm: the LM head shares the word embeddings", RecipeUse::Key},
    {"problem_type", &M::problem_type, {}, "the sequence-classification loss; null: from the labels",
     RecipeUse::NotInRecipe},
    {"output_attentions", &M::output_attentions, {}, "return attention weights", RecipeUse::NotInRecipe},
    {"output_hidden_states", &M::output_hidden_states, {}, "return every layer's states", RecipeUse::NotInRecipe},
};

// The name table of each enum a field can hold, found by the field's type.
EnumNames<Activation> names_of(Activation) { return activation_names(); }
EnumNames<AttentionFunction> names_of(AttentionFunction) { return attention_function_names(); }
EnumNames<NormalizationType> names_of(NormalizationType) { return normalization_type_names(); }
EnumNames<RelativePositionalBias> names_of(RelativePositionalBias) { return relative_positional_bias_names(); }
EnumNames<ProblemType> names_of(ProblemType) { return problem_type_names(); }

// T for std::optional<T> and for T.
template <class T>
struct Unwrapped {
  using type = T;
  static constexpr bool optional = false;
};
template <class T>
struct Unwrapped<std::optional<T>> {
  using type = T;
  static constexpr bool optional = true;
};

// The type a pointer-to-member points at.
template <class P>
struct MemberType;
template <class T>
struct MemberType<T MegaConfig::*> {
  using type = T;
};

// Calls f.template operator()<Stored, Value>() with the member's stored type (std::optional<V> or V)
// and its value type V.
template <class F>
decltype(auto) with_types(const FieldMember& member, F&& f) {
  return std::visit(
      [&](auto pointer) -> decltype(auto) {
        using Stored = typename MemberType<decltype(pointer)>::type;
        return f.template operator()<Stored, typename Unwrapped<Stored>::type>();
      },
      member);
}

std::string number_text(double value) {
  if (std::isinf(value)) return value < 0 ? "-inf" : "inf";
  if (value == std::floor(value) && std::abs(value) < 1e15) return std::to_string(static_cast<int64_t>(value));
  char buffer[64];
  auto [end, error] = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, end);
}

template <class... Parts>
[[noreturn]] void field_error(const ConfigField& field, const Parts&... parts) {
  fail("[config] '", field.name, "': ", parts...);
}

void check_range(const ConfigField& field, double value) {
  const FieldRange& r = field.range;
  if (value < r.min || (r.max_open ? value >= r.max : value > r.max))
    field_error(field, number_text(value), " is out of range ", field.range_text());
}

}  // namespace

EnumNames<NormalizationType> normalization_type_names() {
  static constexpr EnumName<NormalizationType> names[] = {
      {NormalizationType::LayerNorm, "layernorm"}, {NormalizationType::ScaleNorm, "scalenorm"},
      {NormalizationType::RmsNorm, "rmsnorm"},     {NormalizationType::BatchNorm, "batchnorm"},
      {NormalizationType::SyncBatchNorm, "syncbatchnorm"}};
  return names;
}

EnumNames<RelativePositionalBias> relative_positional_bias_names() {
  static constexpr EnumName<RelativePositionalBias> names[] = {{RelativePositionalBias::Rotary, "rotary"},
                                                               {RelativePositionalBias::Simple, "simple"}};
  return names;
}

EnumNames<ProblemType> problem_type_names() {
  static constexpr EnumName<ProblemType> names[] = {
      {ProblemType::Regression, "regression"},
      {ProblemType::SingleLabelClassification, "single_label_classification"},
      {ProblemType::MultiLabelClassification, "multi_label_classification"}};
  return names;
}

std::span<const ConfigField> mega_config_fields() { return kFields; }

FieldKind ConfigField::kind() const {
  return with_types(member, []<class Stored, class V>() {
    if constexpr (std::is_same_v<V, bool>) return FieldKind::Bool;
    else if constexpr (std::is_same_v<V, int64_t>) return FieldKind::Int;
    else if constexpr (std::is_same_v<V, double>) return FieldKind::Float;
    else return FieldKind::Choice;
  });
}

bool ConfigField::nullable() const {
  return with_types(member, []<class Stored, class V>() { return Unwrapped<Stored>::optional; });
}

std::vector<std::string> ConfigField::choices() const {
  return with_types(member, []<class Stored, class V>() {
    if constexpr (std::is_enum_v<V>) return enum_name_list(names_of(V{}));
    else return std::vector<std::string>{};
  });
}

std::string ConfigField::range_text() const {
  std::string text = "[";  // appended piecewise: GCC 12 misreports "[" + std::string as -Wrestrict at -O3
  text += number_text(range.min);
  text += ", ";
  text += number_text(range.max);
  text += range.max_open ? ")" : "]";
  return text;
}

FieldValue ConfigField::default_value() const { return get(MegaConfig{}); }

FieldValue ConfigField::get(const MegaConfig& config) const {
  return std::visit(
      [&](auto pointer) -> FieldValue {
        const auto& stored = config.*pointer;
        auto plain = [](const auto& value) -> FieldValue {
          using V = std::decay_t<decltype(value)>;
          if constexpr (std::is_enum_v<V>) return std::string(enum_name(names_of(value), value));
          else return value;
        };
        if constexpr (Unwrapped<std::decay_t<decltype(stored)>>::optional) {
          if (!stored) return std::monostate{};
          return plain(*stored);
        } else {
          return plain(stored);
        }
      },
      member);
}

void ConfigField::set(MegaConfig& config, const FieldValue& value) const {
  std::visit(
      [&](auto pointer) {
        auto& stored = config.*pointer;
        using Stored = std::decay_t<decltype(stored)>;
        using V = typename Unwrapped<Stored>::type;
        if (std::holds_alternative<std::monostate>(value)) {
          if constexpr (Unwrapped<Stored>::optional) {
            stored.reset();
            return;
          } else {
            field_error(*this, "must not be null (expected ", field_kind_text(*this), ")");
          }
        }
        if constexpr (std::is_same_v<V, bool>) {
          const bool* b = std::get_if<bool>(&value);
          if (!b) field_error(*this, "expected true or false");
          stored = *b;
        } else if constexpr (std::is_same_v<V, int64_t>) {
          const int64_t* i = std::get_if<int64_t>(&value);
          if (!i) field_error(*this, "expected an integer");
          check_range(*this, static_cast<double>(*i));
          stored = *i;
        } else if constexpr (std::is_same_v<V, double>) {
          const int64_t* i = std::get_if<int64_t>(&value);
          const double* d = std::get_if<double>(&value);
          if (!i && !d) field_error(*this, "expected a number");
          double number = i ? static_cast<double>(*i) : *d;
          check_range(*this, number);
          stored = number;
        } else {
          const std::string* name = std::get_if<std::string>(&value);
          if (!name) field_error(*this, "expected ", field_kind_text(*this));
          std::optional<V> parsed = enum_from_name(names_of(V{}), *name);
          if (!parsed) field_error(*this, "'", *name, "' is not one of ", or_list(choices()));
          stored = *parsed;
        }
      },
      member);
}

void ConfigField::check(const MegaConfig& config) const {
  FieldValue value = get(config);
  if (const int64_t* i = std::get_if<int64_t>(&value)) check_range(*this, static_cast<double>(*i));
  if (const double* d = std::get_if<double>(&value)) check_range(*this, *d);
}

std::string field_kind_text(const ConfigField& field) {
  switch (field.kind()) {
    case FieldKind::Bool: return "true or false";
    case FieldKind::Int: return "an integer";
    case FieldKind::Float: return "a number";
    case FieldKind::Choice: return "one of " + or_list(field.choices());
  }
  return "?";
}

}  // namespace mega
