// The causal Mega language model and its full-softmax head (nn/mega_lm.h).
#include "nn/mega_lm.h"

#include <cmath>

#include "core/error.h"
#include "nn/init.h"
#include "ops/attention_fn.h"
#include "ops/elementwise.h"
#include "ops/loss.h"
#include "ops/matmul.h"
#include "ops/shape.h"

namespace mega {

namespace {

constexpr int64_t kIgnore = -100;

std::unique_ptr<LmOutputHead> make_output_head(const MegaLmOptions& options, MegaModel& mega) {
  const MegaConfig& c = options.config;
  switch (options.output) {
    case LmOutputKind::FullSoftmax:
      MEGA_CHECK(!c.tie_word_embeddings || options.input == LmInputKind::WordEmbeddings,
                 "[mega_lm] tie_word_embeddings ties the full softmax to word embeddings the adaptive input "
                 "replaces: set it false, or use the adaptive softmax with tie_adaptive_weights");
      return std::make_unique<SoftmaxHead>(c.hidden_size, c.vocab_size,
                                           c.tie_word_embeddings ? &mega.embedding_layer.word_embeddings.weight : nullptr);
    case LmOutputKind::AdaptiveSoftmax: return std::make_unique<AdaptiveSoftmaxHead>(adaptive_options(options));
  }
  fail("[mega_lm] unknown output head ", static_cast<int>(options.output));
}

std::unique_ptr<LmInput> make_input(const MegaLmOptions& options) {
  switch (options.input) {
    case LmInputKind::WordEmbeddings: return nullptr;  // MegaModel's own embedding_layer
    case LmInputKind::AdaptiveInput: return std::make_unique<AdaptiveInputEmbedding>(adaptive_options(options));
  }
  fail("[mega_lm] unknown input embedding ", static_cast<int>(options.input));
}

const char* head_name(LmOutputKind kind) {
  switch (kind) {
    case LmOutputKind::FullSoftmax: return "lm_head";
    case LmOutputKind::AdaptiveSoftmax: return "adaptive_softmax";
  }
  return "?";
}

constexpr const char* kInputName = "adaptive_input";

// MegaModel's blocks under their HF names ("layers.i"), for a model whose input is an LmInput: its
// MegaModel is built with a one-row word embedding that nothing reads, left out of the parameters.
class MegaBlocks : public Module {
 public:
  explicit MegaBlocks(MegaModel& mega) {
    for (size_t i = 0; i < mega.layers.size(); ++i)
      register_module("layers." + std::to_string(i), mega.layers[i].get());
  }
};

}  // namespace

// ---- The full softmax ----

SoftmaxHead::SoftmaxHead(int64_t hidden, int64_t vocab, const Var* tied_weight)
    : weight(tied_weight ? *tied_weight : Var(Tensor::zeros({vocab, hidden}), true)),
      bias(Tensor::zeros({vocab}), true) {
  MEGA_CHECK(weight.dim() == 2 && weight.size(0) == vocab && weight.size(1) == hidden, "[lm_head] tied weight has shape ",
             shape_str(weight.shape()), ", expected (", vocab, ", ", hidden, ")");
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
}

Var SoftmaxHead::logits(const Var& hidden) const { return linear(hidden, weight, bias); }

Var SoftmaxHead::loss(const Var& hidden, const Tensor& targets, Rng&) {
  return cross_entropy(logits(hidden), targets, kIgnore);
}

Var SoftmaxHead::log_probs(const Var& hidden) { return log_softmax(logits(hidden)); }

LmScore SoftmaxHead::score(const Var& hidden, const Tensor& targets) {
  NoGradGuard no_grad;
  const Tensor lp = log_probs(hidden).value().to(DType::F32);  // (N, V)
  const Tensor y = targets.to(DType::I64);
  const int64_t N = lp.size(0), V = lp.size(1);
  MEGA_CHECK(y.numel() == N, "[lm_head] ", y.numel(), " targets for ", N, " positions");
  LmScore s;
  for (int64_t i = 0; i < N; ++i) {
    const int64_t t = y.data<int64_t>()[i];
    if (t == kIgnore) continue;
    MEGA_CHECK(t >= 0 && t < V, "[lm_head] target ", t, " outside the vocabulary of ", V);
    s.nll_sum -= static_cast<double>(lp.data<float>()[i * V + t]);
    s.count += 1;
  }
  return s;
}

// ---- The adaptive input and softmax ----

AdaptiveOptions adaptive_options(const MegaLmOptions& options) {
  const MegaConfig& c = options.config;
  AdaptiveOptions o;
  o.vocab_size = c.vocab_size;
  o.dim = c.hidden_size;
  o.cutoffs = options.adaptive_cutoffs;
  o.factor = options.adaptive_factor;
  o.dropout = options.adaptive_softmax_dropout;
  o.padding_idx = c.pad_token_id.value_or(-1);
  return o;
}

AdaptiveInputEmbedding::AdaptiveInputEmbedding(const AdaptiveOptions& options) : input(options) {}

Var AdaptiveInputEmbedding::forward(const Tensor& ids) {
  return input.forward(ids) * std::sqrt(static_cast<double>(input.options().dim));
}

Var AdaptiveSoftmaxHead::loss(const Var& hidden, const Tensor& targets, Rng& rng) {
  return softmax.loss(hidden, targets, rng, kIgnore);
}

LmScore AdaptiveSoftmaxHead::score(const Var& hidden, const Tensor& targets) {
  const AdaptiveSoftmax::Scored s = softmax.score(hidden.value(), targets, kIgnore);
  return {s.nll_sum, s.count};
}

Var AdaptiveSoftmaxHead::log_probs(const Var& hidden) { return Var(softmax.log_probs(hidden.value())); }

namespace {

const char* input_kind_name(LmInputKind kind) {
  return kind == LmInputKind::AdaptiveInput ? "adaptive_input" : "word_embeddings";
}
const char* output_kind_name(LmOutputKind kind) {
  return kind == LmOutputKind::AdaptiveSoftmax ? "adaptive_softmax" : "softmax";
}

}  // namespace

nlohmann::json adaptive_json(const MegaLmOptions& o) {
  if (o.input == LmInputKind::WordEmbeddings && o.output == LmOutputKind::FullSoftmax) return nlohmann::json::object();
  return {{"input", input_kind_name(o.input)},
          {"output", output_kind_name(o.output)},
          {"adaptive_cutoffs", o.adaptive_cutoffs},
          {"adaptive_factor", o.adaptive_factor},
          {"adaptive_softmax_dropout", o.adaptive_softmax_dropout},
          {"tie_adaptive_weights", o.tie_adaptive_weights}};
}

void read_adaptive_json(const nlohmann::json& mega_lm, MegaLmOptions& o) {
  auto field = [&](const char* key) -> const nlohmann::json* {
    return mega_lm.contains(key) ? &mega_lm[key] : nullptr;
  };
  auto bad = [](const char* key, const char* expected, const nlohmann::json& value) {
    fail("mega_lm.", key, " must be ", expected, ", got ", value.dump());
  };
  if (const nlohmann::json* v = field("input")) {
    if (*v == "adaptive_input") o.input = LmInputKind::AdaptiveInput;
    else if (*v == "word_embeddings") o.input = LmInputKind::WordEmbeddings;
    else bad("input", "\"word_embeddings\" or \"adaptive_input\"", *v);
  }
  if (const nlohmann::json* v = field("output")) {
    if (*v == "adaptive_softmax") o.output = LmOutputKind::AdaptiveSoftmax;
    else if (*v == "softmax") o.output = LmOutputKind::FullSoftmax;
    else bad("output", "\"softmax\" or \"adaptive_softmax\"", *v);
  }
  if (const nlohmann::json* v = field("adaptive_cutoffs")) {
    if (!v->is_array()) bad("adaptive_cutoffs", "a list of integers", *v);
    o.adaptive_cutoffs.clear();
    for (const nlohmann::json& cutoff : *v) {
      if (!cutoff.is_number_integer()) bad("adaptive_cutoffs", "a list of integers", *v);
      o.adaptive_cutoffs.push_back(cutoff.get<int64_t>());
    }
  }
  if (const nlohmann::json* v = field("adaptive_factor")) {
    if (!v->is_number()) bad("adaptive_factor", "a number", *v);
    o.adaptive_factor = v->get<double>();
  }
  if (const nlohmann::json* v = field("adaptive_softmax_dropout")) {
    if (!v->is_number()) bad("adaptive_softmax_dropout", "a number", *v);
    o.adaptive_softmax_dropout = v->get<double>();
  }
  if (const nlohmann::json* v = field("tie_adaptive_weights")) {
    if (!v->is_boolean()) bad("tie_adaptive_weights", "true or false", *v);
    o.tie_adaptive_weights = v->get<bool>();
  }
}

// ---- The model ----

MegaConfig causal_lm_config(MegaConfig c) {
  c.is_decoder = true;
  c.add_lm_hidden_dense_layer = false;
  c.architectures = {"MegaForCausalLM"};
  return c;
}

MegaLanguageModel::MegaLanguageModel(const MegaLmOptions& options) : options_(options) {
  options_.config.validate();
  const MegaConfig& c = options_.config;
  MEGA_CHECK(c.is_decoder, "[mega_lm] a causal language model needs is_decoder");
  const bool adaptive_input = options_.input == LmInputKind::AdaptiveInput;
  MEGA_CHECK(!options_.tie_adaptive_weights || (adaptive_input && options_.output == LmOutputKind::AdaptiveSoftmax),
             "[mega_lm] tie_adaptive_weights ties the adaptive softmax to the adaptive input: it needs both");
  MEGA_CHECK(!adaptive_input || !c.add_token_type_embeddings,
             "[mega_lm] the adaptive input replaces MegaModel's embeddings: add_token_type_embeddings must be false");
  if (adaptive_input) {
    MegaConfig blocks = c;
    blocks.vocab_size = 1;
    blocks.pad_token_id.reset();
    mega_ = std::make_unique<MegaModel>(blocks, false);
    mega_blocks_ = std::make_unique<MegaBlocks>(*mega_);
    register_module("mega", mega_blocks_.get());
  } else {
    mega_ = std::make_unique<MegaModel>(c, false);
    register_module("mega", mega_.get());
  }
  input_ = make_input(options_);
  if (input_) register_module(kInputName, &input_->module());
  head_ = make_output_head(options_, *mega_);
  register_module(head_name(options_.output), &head_->module());
  if (options_.tie_adaptive_weights)
    static_cast<AdaptiveSoftmaxHead&>(*head_).softmax.tie_to(static_cast<AdaptiveInputEmbedding&>(*input_).input);
}

MegaInputs MegaLanguageModel::inputs_of(const Tensor& ids, const Tensor& mask) {
  MegaInputs inputs;
  if (input_) inputs.inputs_embeds = input_->forward(ids);
  else inputs.input_ids = ids;
  inputs.attention_mask = mask;
  return inputs;
}

Var MegaLanguageModel::hidden_states(const Tensor& ids, const Tensor& mask, Rng& rng) {
  return mega_->forward(inputs_of(ids, mask), rng).last_hidden_state;
}

Var MegaLanguageModel::loss(const Tensor& ids, const Tensor& mask, const Tensor& targets, Rng& rng) {
  Var h = hidden_states(ids, mask, rng);
  return head_->loss(reshape(h, {-1, h.size(2)}), targets.reshape({-1}), rng);
}

LmScore MegaLanguageModel::score(const Tensor& ids, const Tensor& mask, const Tensor& targets) {
  NoGradGuard no_grad;
  Rng rng(0);  // eval mode draws no dropout
  Var h = hidden_states(ids, mask, rng);
  return head_->score(reshape(h, {-1, h.size(2)}), targets.reshape({-1}));
}

Var MegaLanguageModel::log_probs(const Tensor& ids, const Tensor& mask) {
  Rng rng(0);
  Var h = hidden_states(ids, mask, rng);
  return head_->log_probs(reshape(h, {-1, h.size(2)}));
}

Tensor MegaLanguageModel::log_probs_cached(const Tensor& ids, MegaCache& cache) {
  NoGradGuard no_grad;
  Rng rng(0);  // decoding runs in eval mode
  Var h = mega_->forward_cached(inputs_of(ids, Tensor()), cache, rng);
  return head_->log_probs(reshape(h, {-1, h.size(2)})).value();
}

void MegaLanguageModel::init_weights(Rng& rng) {
  // HF's rules cover the adaptive weights too (as Linear weights); fairseq's then redraw them, so the
  // blocks draw the same streams whatever the input and head.
  init_mega_weights(*this, options_.config, rng);
  if (input_) static_cast<AdaptiveInputEmbedding&>(*input_).input.init_weights(rng);
  if (options_.output == LmOutputKind::AdaptiveSoftmax) static_cast<AdaptiveSoftmaxHead&>(*head_).softmax.init_weights(rng);
}

nlohmann::json MegaLanguageModel::config_json() const {
  nlohmann::json json = options_.config.to_json();
  const nlohmann::json seams = adaptive_json(options_);
  if (!seams.empty()) json["mega_lm"] = seams;
  return json;
}

std::set<std::string> MegaLanguageModel::tied_aliases() const {
  if (options_.output == LmOutputKind::FullSoftmax && options_.config.tie_word_embeddings) return {"lm_head.weight"};
  if (!options_.tie_adaptive_weights) return {};
  std::set<std::string> aliases = {"adaptive_softmax.head.word_proj.weight"};
  for (size_t i = 0; i < options_.adaptive_cutoffs.size(); ++i) {
    aliases.insert("adaptive_softmax.tail." + std::to_string(i) + ".0.weight");
    aliases.insert("adaptive_softmax.tail." + std::to_string(i) + ".2.weight");
  }
  return aliases;
}

}  // namespace mega
