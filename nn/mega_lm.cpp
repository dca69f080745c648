// The causal Mega language model and its full-softmax head (nn/mega_lm.h).
#include "nn/mega_lm.h"

#include "core/error.h"
#include "ops/attention_fn.h"
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
      return std::make_unique<SoftmaxHead>(c.hidden_size, c.vocab_size,
                                           c.tie_word_embeddings ? &mega.embedding_layer.word_embeddings.weight : nullptr);
  }
  fail("[mega_lm] unknown output head ", static_cast<int>(options.output));
}

std::unique_ptr<LmInput> make_input(const MegaLmOptions& options) {
  switch (options.input) {
    case LmInputKind::WordEmbeddings: return nullptr;  // MegaModel's own embedding_layer
  }
  fail("[mega_lm] unknown input embedding ", static_cast<int>(options.input));
}

const char* head_name(LmOutputKind kind) {
  switch (kind) {
    case LmOutputKind::FullSoftmax: return "lm_head";
  }
  return "?";
}

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

// ---- The model ----

MegaConfig causal_lm_config(MegaConfig c) {
  c.is_decoder = true;
  c.add_lm_hidden_dense_layer = false;
  c.architectures = {"MegaForCausalLM"};
  return c;
}

MegaLanguageModel::MegaLanguageModel(const MegaLmOptions& options) : options_(options) {
  options_.config.validate();
  MEGA_CHECK(options_.config.is_decoder, "[mega_lm] a causal language model needs is_decoder");
  mega_ = std::make_unique<MegaModel>(options_.config, false);
  register_module("mega", mega_.get());
  input_ = make_input(options_);
  head_ = make_output_head(options_, *mega_);
  register_module(head_name(options_.output), head_.get());
}

Var MegaLanguageModel::hidden_states(const Tensor& ids, const Tensor& mask, Rng& rng) {
  MegaInputs inputs;
  if (input_) inputs.inputs_embeds = input_->forward(ids, rng);
  else inputs.input_ids = ids;
  inputs.attention_mask = mask;
  return mega_->forward(inputs, rng).last_hidden_state;
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

nlohmann::json MegaLanguageModel::config_json() const { return options_.config.to_json(); }

std::set<std::string> MegaLanguageModel::tied_aliases() const {
  if (options_.output == LmOutputKind::FullSoftmax && options_.config.tie_word_embeddings) return {"lm_head.weight"};
  return {};
}

}  // namespace mega
