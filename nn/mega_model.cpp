// MegaModel, its heads, cached decoding and HF checkpoint folders. Loss rules follow HF's heads (README
// of the fixtures, "Heads").
#include "nn/mega_model.h"

#include "nn/init.h"

#include <algorithm>
#include <filesystem>

#include "core/safetensors.h"
#include "ops/dropout.h"
#include "ops/elementwise.h"
#include "ops/loss.h"
#include "ops/shape.h"

namespace mega {

namespace {

Tensor float_mask_of(const Tensor& mask, const Shape& expected, const char* name) {
  if (!mask.defined()) return Tensor();
  MEGA_CHECK(mask.shape() == expected, "[mega] ", name, " has shape ", shape_str(mask.shape()), ", expected ",
             shape_str(expected));
  return mask.to(DType::F32);
}

// labels[:, 1:] of (B, L) integer labels, as I64 (B, L - 1).
Tensor shift_left(const Tensor& labels) {
  Tensor ids = labels.to(DType::I64);
  const int64_t B = ids.size(0), L = ids.size(1);
  Tensor out = Tensor::empty({B, L - 1}, DType::I64);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 1; t < L; ++t) out.data<int64_t>()[b * (L - 1) + t - 1] = ids.data<int64_t>()[b * L + t];
  return out;
}

bool is_integer(DType dtype) { return dtype == DType::I64 || dtype == DType::I32; }

Shape without_last(const Shape& shape) { return Shape(shape.begin(), shape.end() - 1); }

}  // namespace

MegaEmbeddings::MegaEmbeddings(const MegaConfig& config)
    : word_embeddings(config.vocab_size, config.hidden_size, config.pad_token_id.value_or(-1)) {
  register_module("word_embeddings", &word_embeddings);
  if (config.add_token_type_embeddings) {
    token_type_embeddings = std::make_unique<Embedding>(config.type_vocab_size, config.hidden_size);
    register_module("token_type_embeddings", token_type_embeddings.get());
  }
}

Var MegaEmbeddings::forward(const Tensor& input_ids, const Var& inputs_embeds, const Tensor& token_type_ids) {
  MEGA_CHECK(input_ids.defined() != inputs_embeds.defined(),
             "[MegaEmbeddings] pass exactly one of input_ids and inputs_embeds");
  Var embeddings = input_ids.defined() ? word_embeddings.forward(input_ids.to(DType::I64)) : inputs_embeds;
  if (!token_type_embeddings) return embeddings;
  Shape ids_shape = without_last(embeddings.shape());
  Tensor types = token_type_ids.defined() ? token_type_ids.to(DType::I64) : Tensor::zeros(ids_shape, DType::I64);
  MEGA_CHECK(types.shape() == ids_shape, "[MegaEmbeddings] token_type_ids has shape ", shape_str(types.shape()),
             ", expected ", shape_str(ids_shape));
  return embeddings + token_type_embeddings->forward(types);
}

MegaPooler::MegaPooler(int64_t hidden) : dense(hidden, hidden) { register_module("dense", &dense); }

Var MegaPooler::forward(const Var& hidden_states) { return tanh(dense.forward(select(hidden_states, 1, 0))); }

MegaModel::MegaModel(const MegaConfig& config, bool add_pooling_layer)
    : embedding_layer(config), config_(config) {
  config_.validate();
  register_module("embedding_layer", &embedding_layer);
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    layers.push_back(std::make_unique<MegaBlock>(config));
    register_module("layers." + std::to_string(i), layers.back().get());
  }
  if (add_pooling_layer) {
    pooler = std::make_unique<MegaPooler>(config.hidden_size);
    register_module("pooler", pooler.get());
  }
}

MegaOutputs MegaModel::forward(const MegaInputs& inputs, Rng& rng) {
  MegaOutputs out;
  Var h = embedding_layer.forward(inputs.input_ids, inputs.inputs_embeds, inputs.token_type_ids);
  MEGA_CHECK(h.dim() == 3, "[MegaModel] expected (B, L) ids or (B, L, H) embeddings, got embeddings of shape ",
             shape_str(h.shape()));
  const int64_t B = h.size(0), L = h.size(1);
  Tensor mask = float_mask_of(inputs.attention_mask, {B, L}, "attention_mask");
  const Var& source = inputs.encoder_hidden_states;
  Tensor source_mask;
  if (source.defined())
    source_mask = float_mask_of(inputs.encoder_attention_mask, {B, source.size(1)}, "encoder_attention_mask");
  if (inputs.output_hidden_states) out.hidden_states.push_back(h.value());
  for (auto& layer : layers) {
    Tensor self_weights, cross_weights;
    h = layer->forward(h, mask, source, source_mask, 0, nullptr, rng,
                       inputs.output_attentions ? &self_weights : nullptr,
                       inputs.output_attentions ? &cross_weights : nullptr);
    if (inputs.output_hidden_states) out.hidden_states.push_back(h.value());
    if (inputs.output_attentions) {
      out.attentions.push_back(self_weights);
      if (layer->has_cross_attention())
        out.cross_attentions.push_back(cross_weights.reshape({B, L, source.size(1)}));
    }
  }
  out.last_hidden_state = h;
  if (pooler) out.pooler_output = pooler->forward(h);
  return out;
}

Var MegaModel::forward_cached(const MegaInputs& inputs, MegaCache& cache, Rng& rng) {
  MEGA_CHECK(config_.is_decoder, "[MegaModel] cached decoding needs a decoder (is_decoder=true)");
  NoGradGuard no_grad;
  if (cache.layers.empty()) cache.layers.resize(layers.size());
  MEGA_CHECK(cache.layers.size() == layers.size(), "[MegaModel] the cache holds ", cache.layers.size(),
             " layers, the model has ", layers.size());
  Var embeddings = embedding_layer.forward(inputs.input_ids, inputs.inputs_embeds, inputs.token_type_ids);
  const int64_t B = embeddings.size(0), L = embeddings.size(1);
  Tensor mask = float_mask_of(inputs.attention_mask, {B, L}, "attention_mask");
  const Var& source = inputs.encoder_hidden_states;
  Tensor source_mask;
  if (source.defined())
    source_mask = float_mask_of(inputs.encoder_attention_mask, {B, source.size(1)}, "encoder_attention_mask");
  // With chunking, tokens are fed in pieces that never cross a chunk boundary: the self-attention
  // cache restarts at each boundary, exactly as the full forward's chunks never see each other.
  std::vector<Var> pieces;
  for (int64_t t = 0; t < L;) {
    int64_t piece = L - t;
    if (config_.use_chunking) piece = std::min(piece, config_.chunk_size - cache.length % config_.chunk_size);
    Var h = narrow(embeddings, 1, t, piece);
    Tensor piece_mask = mask.defined() ? narrow(Var(mask), 1, t, piece).value() : Tensor();
    for (size_t i = 0; i < layers.size(); ++i)
      h = layers[i]->forward(h, piece_mask, source, source_mask, cache.length, &cache.layers[i], rng, nullptr,
                             nullptr);
    pieces.push_back(h);
    cache.length += piece;
    t += piece;
  }
  return pieces.size() == 1 ? pieces[0] : concat(pieces, 1);
}

MegaBaseModel::MegaBaseModel(const MegaConfig& config)
    : MegaPreTrainedModel(config), model_(std::make_unique<MegaModel>(config, true)) {
  // HF's MegaModel is its own root: its keys carry no "mega." prefix.
  register_module("embedding_layer", &model_->embedding_layer);
  for (size_t i = 0; i < model_->layers.size(); ++i)
    register_module("layers." + std::to_string(i), model_->layers[i].get());
  register_module("pooler", model_->pooler.get());
}

MegaOutputs MegaBaseModel::forward(const MegaInputs& inputs, Rng& rng) { return model_->forward(inputs, rng); }

MegaForLanguageModeling::MegaForLanguageModeling(const MegaConfig& config, bool causal)
    : MegaPreTrainedModel(config),
      causal_(causal),
      head_name_(causal ? "lm_head" : "mlm_head"),
      mega_(std::make_unique<MegaModel>(config, false)) {
  register_module("mega", mega_.get());
  if (config.add_lm_hidden_dense_layer) {
    dense_ = std::make_unique<Linear>(config.hidden_size, config.hidden_size);
    register_module("dense", dense_.get());
  }
  lm_head_ = std::make_unique<Linear>(config.hidden_size, config.vocab_size);
  if (config.tie_word_embeddings) lm_head_->weight = mega_->embedding_layer.word_embeddings.weight;
  register_module(head_name_, lm_head_.get());
}

std::set<std::string> MegaForLanguageModeling::tied_aliases() const {
  if (!config_.tie_word_embeddings) return {};
  return {head_name_ + ".weight"};
}

Var MegaForLanguageModeling::head(const Var& sequence_output) {
  Var h = dense_ ? tanh(dense_->forward(sequence_output)) : sequence_output;
  return lm_head_->forward(h);
}

MegaOutputs MegaForLanguageModeling::forward(const MegaInputs& inputs, Rng& rng) {
  MegaOutputs out = mega_->forward(inputs, rng);
  out.logits = head(out.last_hidden_state);  // (B, L, V)
  if (!inputs.labels.defined()) return out;
  const int64_t V = config_.vocab_size, L = out.logits.size(1);
  if (causal_) {  // next-token prediction: logits[:, :-1] against labels[:, 1:]
    MEGA_CHECK(inputs.labels.dim() == 2, "[", head_name_, "] labels must be (B, L)");
    out.loss = cross_entropy(reshape(narrow(out.logits, 1, 0, L - 1), {-1, V}), shift_left(inputs.labels).reshape({-1}));
  } else {
    out.loss = cross_entropy(reshape(out.logits, {-1, V}), inputs.labels.to(DType::I64).reshape({-1}));
  }
  return out;
}

Var MegaForLanguageModeling::forward_cached(const MegaInputs& inputs, MegaCache& cache, Rng& rng) {
  MEGA_CHECK(causal_, "[MegaForMaskedLM] cached decoding is for MegaForCausalLM");
  NoGradGuard no_grad;
  return head(mega_->forward_cached(inputs, cache, rng));
}

MegaForSequenceClassification::ClassificationHead::ClassificationHead(int64_t hidden, int64_t labels)
    : dense(hidden, hidden), out_proj(hidden, labels) {
  register_module("dense", &dense);
  register_module("out_proj", &out_proj);
}

MegaForSequenceClassification::MegaForSequenceClassification(const MegaConfig& config)
    : MegaPreTrainedModel(config),
      classifier_dropout_(config.classifier_dropout.value_or(config.hidden_dropout_prob)),
      mega_(std::make_unique<MegaModel>(config, false)),
      classifier_(std::make_unique<ClassificationHead>(config.hidden_size, config.num_labels())) {
  register_module("mega", mega_.get());
  register_module("classifier", classifier_.get());
}

MegaOutputs MegaForSequenceClassification::forward(const MegaInputs& inputs, Rng& rng) {
  MegaOutputs out = mega_->forward(inputs, rng);
  // The first token's state -> dropout -> dense -> tanh -> dropout -> out_proj.
  Var x = dropout(select(out.last_hidden_state, 1, 0), classifier_dropout_, training(), rng);
  x = dropout(tanh(classifier_->dense.forward(x)), classifier_dropout_, training(), rng);
  out.logits = classifier_->out_proj.forward(x);  // (B, num_labels)
  if (!inputs.labels.defined()) return out;
  const int64_t labels = config_.num_labels();
  ProblemType problem = config_.problem_type.value_or(
      labels == 1 ? ProblemType::Regression
                  : is_integer(inputs.labels.dtype()) ? ProblemType::SingleLabelClassification
                                                      : ProblemType::MultiLabelClassification);
  if (problem == ProblemType::Regression) {
    Tensor target = inputs.labels.to(DType::F32);
    out.loss = labels == 1 ? mse(reshape(out.logits, {-1}), target.reshape({-1})) : mse(out.logits, target);
  } else if (problem == ProblemType::SingleLabelClassification) {
    out.loss = cross_entropy(reshape(out.logits, {-1, labels}), inputs.labels.to(DType::I64).reshape({-1}));
  } else {
    out.loss = bce_with_logits(out.logits, inputs.labels.to(DType::F32));
  }
  return out;
}

MegaForMultipleChoice::MegaForMultipleChoice(const MegaConfig& config)
    : MegaPreTrainedModel(config),
      mega_(std::make_unique<MegaModel>(config, true)),
      classifier_(std::make_unique<Linear>(config.hidden_size, 1)) {
  register_module("mega", mega_.get());
  register_module("classifier", classifier_.get());
}

MegaOutputs MegaForMultipleChoice::forward(const MegaInputs& inputs, Rng& rng) {
  // (B, C, L) -> (B*C, L): each choice is a sequence of its own.
  const Shape& shape = inputs.input_ids.defined() ? inputs.input_ids.shape() : inputs.inputs_embeds.shape();
  MEGA_CHECK(shape.size() >= 3, "[MegaForMultipleChoice] expected (B, C, L) inputs, got ", shape_str(shape));
  const int64_t choices = shape[1], L = shape[2];
  MegaInputs flat = inputs;
  auto flatten = [L](const Tensor& t) { return t.defined() ? t.reshape({-1, L}) : t; };
  flat.input_ids = flatten(inputs.input_ids);
  flat.attention_mask = flatten(inputs.attention_mask);
  flat.token_type_ids = flatten(inputs.token_type_ids);
  if (inputs.inputs_embeds.defined()) flat.inputs_embeds = reshape(inputs.inputs_embeds, {-1, L, shape[3]});
  MegaOutputs out = mega_->forward(flat, rng);
  Var pooled = dropout(out.pooler_output, config_.hidden_dropout_prob, training(), rng);
  out.logits = reshape(classifier_->forward(pooled), {-1, choices});  // (B, C)
  if (inputs.labels.defined())
    out.loss = cross_entropy(out.logits, inputs.labels.to(DType::I64).reshape({-1}));
  return out;
}

MegaForTokenClassification::MegaForTokenClassification(const MegaConfig& config)
    : MegaPreTrainedModel(config),
      mega_(std::make_unique<MegaModel>(config, false)),
      classifier_(std::make_unique<Linear>(config.hidden_size, config.num_labels())) {
  register_module("mega", mega_.get());
  register_module("classifier", classifier_.get());
}

MegaOutputs MegaForTokenClassification::forward(const MegaInputs& inputs, Rng& rng) {
  MegaOutputs out = mega_->forward(inputs, rng);
  double p = config_.classifier_dropout.value_or(config_.hidden_dropout_prob);
  out.logits = classifier_->forward(dropout(out.last_hidden_state, p, training(), rng));  // (B, L, labels)
  if (inputs.labels.defined())
    out.loss = cross_entropy(reshape(out.logits, {-1, config_.num_labels()}),
                             inputs.labels.to(DType::I64).reshape({-1}));
  return out;
}

MegaForQuestionAnswering::MegaForQuestionAnswering(const MegaConfig& config)
    : MegaPreTrainedModel(config),
      mega_(std::make_unique<MegaModel>(config, false)),
      qa_outputs_(std::make_unique<Linear>(config.hidden_size, config.num_labels())) {
  MEGA_CHECK(config.num_labels() == 2, "[MegaForQuestionAnswering] needs num_labels = 2 (start, end), got ",
             config.num_labels());
  register_module("mega", mega_.get());
  register_module("qa_outputs", qa_outputs_.get());
}

MegaOutputs MegaForQuestionAnswering::forward(const MegaInputs& inputs, Rng& rng) {
  MegaOutputs out = mega_->forward(inputs, rng);
  Var logits = qa_outputs_->forward(out.last_hidden_state);  // (B, L, 2)
  const int64_t B = logits.size(0), L = logits.size(1);
  std::vector<Var> start_end = split(logits, 2, {1, 1});
  out.start_logits = reshape(start_end[0], {B, L});
  out.end_logits = reshape(start_end[1], {B, L});
  if (!inputs.start_positions.defined() || !inputs.end_positions.defined()) return out;
  // Positions outside [0, L] are clamped to L, which is the ignored index.
  auto clamp = [L](const Tensor& positions) {
    Tensor p = positions.to(DType::I64).reshape({-1}).clone();
    for (int64_t i = 0; i < p.numel(); ++i) p.data<int64_t>()[i] = std::clamp<int64_t>(p.data<int64_t>()[i], 0, L);
    return p;
  };
  Var start_loss = cross_entropy(out.start_logits, clamp(inputs.start_positions), L);
  Var end_loss = cross_entropy(out.end_logits, clamp(inputs.end_positions), L);
  out.loss = (start_loss + end_loss) * 0.5;
  return out;
}

void MegaPreTrainedModel::init_weights(Rng& rng) { init_mega_weights(*this, config_, rng); }

std::unique_ptr<MegaPreTrainedModel> make_mega(const MegaConfig& config, const std::string& architecture) {
  if (architecture == "MegaModel") return std::make_unique<MegaBaseModel>(config);
  if (architecture == "MegaForMaskedLM") return std::make_unique<MegaForMaskedLM>(config);
  if (architecture == "MegaForCausalLM") return std::make_unique<MegaForCausalLM>(config);
  if (architecture == "MegaForSequenceClassification") return std::make_unique<MegaForSequenceClassification>(config);
  if (architecture == "MegaForMultipleChoice") return std::make_unique<MegaForMultipleChoice>(config);
  if (architecture == "MegaForTokenClassification") return std::make_unique<MegaForTokenClassification>(config);
  if (architecture == "MegaForQuestionAnswering") return std::make_unique<MegaForQuestionAnswering>(config);
  fail("[make_mega] unknown architecture '", architecture,
       "' (expected MegaModel, MegaForMaskedLM, MegaForCausalLM, MegaForSequenceClassification, "
       "MegaForMultipleChoice, MegaForTokenClassification or MegaForQuestionAnswering)");
}

std::string architecture_of(const MegaConfig& config) {
  MEGA_CHECK(!config.architectures.empty(), "[config] 'architectures' is empty: cannot tell which head to build");
  return config.architectures.front();
}

MegaCheckpoint load_pretrained(const std::string& folder) {
  MegaCheckpoint checkpoint;
  checkpoint.config = MegaConfig::load(folder + "/config.json");
  checkpoint.model = make_mega(checkpoint.config, architecture_of(checkpoint.config));
  SafetensorsFile file = load_safetensors(folder + "/model.safetensors");
  try {
    checkpoint.model->load_state_dict(file.tensors, checkpoint.model->tied_aliases());
  } catch (const Error& e) {
    fail(e.what(), " (in ", folder, "/model.safetensors)");
  }
  checkpoint.model->eval();  // as HF's from_pretrained
  return checkpoint;
}

void save_pretrained(const MegaPreTrainedModel& model, const MegaConfig& config, const std::string& folder) {
  std::filesystem::create_directories(folder);
  config.save(folder + "/config.json");
  save_safetensors(folder + "/model.safetensors", model.state_dict(), {{"format", "pt"}});
}

}  // namespace mega
