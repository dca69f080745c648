// hf_run: one forward (and optionally backward, cached decoding) of a Mega checkpoint, outputs named as
// the HF fixtures name them.
#include "nn/hf_run.h"

#include <cstring>
#include <optional>
#include <set>

#include "ops/elementwise.h"
#include "ops/reduce.h"
#include "ops/shape.h"

namespace mega {

namespace {

bool is_integer(DType dtype) { return dtype == DType::I64 || dtype == DType::I32; }
bool is_floating(DType dtype) { return dtype == DType::F32 || dtype == DType::F64; }

// Checks every input against input_ids (or inputs_embeds) and the model before anything runs, so a
// tensor of the wrong dtype or shape, or an id outside its table, is an error naming the file and
// the tensor instead of a read past a buffer further in.
class InputCheck {
 public:
  InputCheck(const MegaPreTrainedModel& model, const std::map<std::string, Tensor>& inputs,
             const HfRunOptions& options)
      : model_(model), config_(model.config()), inputs_(inputs), options_(options) {}

  void run() {
    check_names();
    check_tokens();
    check_like_tokens("attention_mask", /*integer_only=*/false);
    check_like_tokens("token_type_ids", /*integer_only=*/true);
    if (config_.add_token_type_embeddings && has("token_type_ids"))
      check_ids("token_type_ids", config_.type_vocab_size, "type_vocab_size", false);
    check_encoder();
    check_targets();
    check_cotangents();
    if (options_.incremental && options_.prefill != 0 &&
        (options_.prefill < 1 || options_.prefill > tokens_.back()))
      fail("[hf-run] --prefill ", options_.prefill, " is outside 1..", tokens_.back(), " (the ", tokens_.back(),
           " tokens of ", first_name(), " in ", options_.inputs_name, ")");
  }

 private:
  template <class... Parts>
  [[noreturn]] void bad(const std::string& name, const Parts&... parts) const {
    fail("[hf-run] ", options_.inputs_name, ": ", name, ": ", parts...);
  }
  bool has(const std::string& name) const { return inputs_.count(name) > 0; }
  const Tensor& at(const std::string& name) const { return inputs_.at(name); }
  const char* first_name() const { return has("input_ids") ? "input_ids" : "inputs_embeds"; }
  template <class T>
  bool is() const { return dynamic_cast<const T*>(&model_) != nullptr; }
  std::string tokens_shape() const { return is<MegaForMultipleChoice>() ? "(B, C, L)" : "(B, L)"; }

  void check_names() const {
    static const std::set<std::string> known = {
        "input_ids", "inputs_embeds", "attention_mask", "token_type_ids", "encoder_hidden_states",
        "encoder_attention_mask", "labels", "start_positions", "end_positions", "cotangent.last_hidden_state",
        "cotangent.pooler_output"};
    for (const auto& [name, tensor] : inputs_)
      if (!known.count(name))
        bad(name, "unknown input (expected input_ids or inputs_embeds, attention_mask, token_type_ids, "
                  "encoder_hidden_states, encoder_attention_mask, labels, start_positions, end_positions, "
                  "cotangent.last_hidden_state, cotangent.pooler_output)");
  }

  void check_tokens() {
    if (has("input_ids") == has("inputs_embeds"))
      fail("[hf-run] ", options_.inputs_name, ": needs exactly one of input_ids ", tokens_shape(),
           " and inputs_embeds ", tokens_shape(), " + (H), got ", has("input_ids") ? "both" : "neither");
    const int64_t dims = is<MegaForMultipleChoice>() ? 3 : 2;
    if (has("input_ids")) {
      const Tensor& ids = at("input_ids");
      if (!is_integer(ids.dtype())) bad("input_ids", "token ids must be I64 or I32, got ", dtype_name(ids.dtype()));
      if (ids.dim() != dims) bad("input_ids", "expected ", tokens_shape(), ", got shape ", shape_str(ids.shape()));
      tokens_ = ids.shape();
    } else {
      const Tensor& embeds = at("inputs_embeds");
      if (!is_floating(embeds.dtype()))
        bad("inputs_embeds", "must be F32 or F64, got ", dtype_name(embeds.dtype()));
      if (embeds.dim() != dims + 1 || embeds.shape().back() != config_.hidden_size)
        bad("inputs_embeds", "expected ", tokens_shape(), " + (H = hidden_size = ", config_.hidden_size,
            "), got shape ", shape_str(embeds.shape()));
      tokens_ = Shape(embeds.shape().begin(), embeds.shape().end() - 1);
    }
    for (int64_t n : tokens_)
      if (n < 1) bad(first_name(), "has shape ", shape_str(tokens_), ": every dimension must be at least 1");
    // The relative bias covers max_positions tokens (chunk_size with chunking): a longer sequence would
    // be refused by the first attention anyway, after allocating its (L, L) weights.
    if (!config_.use_chunking && tokens_.back() > config_.max_positions)
      bad(first_name(), "has L = ", tokens_.back(), " tokens; without chunking the model attends over at most ",
          "max_positions = ", config_.max_positions);
    if (has("input_ids")) check_ids("input_ids", config_.vocab_size, "vocab_size", false);
  }

  // An optional input shaped like the tokens (B, L) / (B, C, L).
  void check_like_tokens(const std::string& name, bool integer_only) const {
    if (!has(name)) return;
    const Tensor& t = at(name);
    bool dtype_ok = is_integer(t.dtype()) || (!integer_only && (is_floating(t.dtype()) || t.dtype() == DType::Bool));
    if (!dtype_ok)
      bad(name, "must be ", integer_only ? "I64 or I32" : "I64, I32, BOOL, F32 or F64", ", got ", dtype_name(t.dtype()));
    if (t.shape() != tokens_)
      bad(name, "has shape ", shape_str(t.shape()), " but ", first_name(), " gives ", tokens_shape(), " = ",
          shape_str(tokens_));
  }

  // Integer values in [0, limit), or the ignore index -100 where targets allow it.
  void check_ids(const std::string& name, int64_t limit, const std::string& what, bool ignore_allowed) const {
    Tensor ids = at(name).to(DType::I64);
    const int64_t* v = ids.data<int64_t>();
    for (int64_t i = 0; i < ids.numel(); ++i)
      if ((v[i] < 0 || v[i] >= limit) && !(ignore_allowed && v[i] == -100))
        bad(name, "value ", v[i], " (element ", i, ") is outside 0..", limit - 1, " (", what, " = ", limit, ")",
            ignore_allowed ? " and is not the ignore index -100" : "");
  }

  // An integer tensor of exactly `shape`.
  void check_integer(const std::string& name, const Shape& shape, const std::string& meaning) const {
    const Tensor& t = at(name);
    if (!is_integer(t.dtype())) bad(name, "must be I64 or I32, got ", dtype_name(t.dtype()));
    if (t.shape() != shape) bad(name, "expected ", meaning, " = ", shape_str(shape), ", got ", shape_str(t.shape()));
  }

  void check_encoder() const {
    if (has("encoder_attention_mask") && !has("encoder_hidden_states"))
      bad("encoder_attention_mask", "given without encoder_hidden_states");
    if (!has("encoder_hidden_states")) return;
    const Tensor& source = at("encoder_hidden_states");
    if (!is_floating(source.dtype()))
      bad("encoder_hidden_states", "must be F32 or F64, got ", dtype_name(source.dtype()));
    if (source.dim() != 3 || source.size(0) != tokens_[0] || source.size(1) < 1 ||
        source.size(2) != config_.hidden_size)
      bad("encoder_hidden_states", "expected (B = ", tokens_[0], ", S >= 1, H = hidden_size = ", config_.hidden_size,
          "), got ", shape_str(source.shape()));
    if (!has("encoder_attention_mask")) return;
    const Tensor& mask = at("encoder_attention_mask");
    if (!is_integer(mask.dtype()) && !is_floating(mask.dtype()) && mask.dtype() != DType::Bool)
      bad("encoder_attention_mask", "must be I64, I32, BOOL, F32 or F64, got ", dtype_name(mask.dtype()));
    if (mask.shape() != Shape{source.size(0), source.size(1)})
      bad("encoder_attention_mask", "expected (B, S) = ", shape_str({source.size(0), source.size(1)}),
          " from encoder_hidden_states, got ", shape_str(mask.shape()));
  }

  // labels / start_positions / end_positions, as the model's head reads them (README of the fixtures, "Heads").
  void check_targets() const {
    const int64_t B = tokens_[0], labels = config_.num_labels();
    const bool qa = is<MegaForQuestionAnswering>();
    for (const char* name : {"start_positions", "end_positions"})
      if (has(name) && !qa) bad(name, "only MegaForQuestionAnswering reads it");
    if (qa) {
      if (has("labels")) bad("labels", "MegaForQuestionAnswering reads start_positions and end_positions instead");
      if (has("start_positions") != has("end_positions"))
        bad(has("start_positions") ? "end_positions" : "start_positions",
            "missing: the loss needs both start_positions and end_positions");
      // Out-of-range positions are clamped to L and ignored, as HF does: any integer is valid.
      for (const char* name : {"start_positions", "end_positions"})
        if (has(name)) check_integer(name, {B}, "(B)");
      return;
    }
    if (!has("labels")) return;
    const Tensor& t = at("labels");
    if (is<MegaBaseModel>()) bad("labels", "MegaModel has no head and no loss");
    if (is<MegaForLanguageModeling>()) {
      check_integer("labels", tokens_, "(B, L) like " + std::string(first_name()));
      check_ids("labels", config_.vocab_size, "vocab_size", true);
    } else if (is<MegaForTokenClassification>()) {
      check_integer("labels", tokens_, "(B, L) like " + std::string(first_name()));
      check_ids("labels", labels, "num_labels", true);
    } else if (is<MegaForMultipleChoice>()) {
      check_integer("labels", {B}, "(B)");
      check_ids("labels", tokens_[1], "C, the number of choices", true);
    } else if (is<MegaForSequenceClassification>()) {
      // The problem type as the head decides it (mega_model.cpp): the config's, else by label count and dtype.
      const ProblemType kind = config_.problem_type.value_or(
          labels == 1 ? ProblemType::Regression
                      : is_integer(t.dtype()) ? ProblemType::SingleLabelClassification
                                              : ProblemType::MultiLabelClassification);
      const std::string problem(enum_name(problem_type_names(), kind));
      if (kind == ProblemType::SingleLabelClassification) {
        check_integer("labels", {B}, "(B) class indices");
        check_ids("labels", labels, "num_labels", true);
        return;
      }
      if (!is_integer(t.dtype()) && !is_floating(t.dtype()))
        bad("labels", "must be numeric for ", problem, ", got ", dtype_name(t.dtype()));
      const bool flat = kind == ProblemType::Regression && labels == 1;
      Shape expected = flat ? Shape{B} : Shape{B, labels};
      if (t.shape() != expected && !(flat && t.shape() == Shape{B, 1}))
        bad("labels", "expected ", shape_str(expected), " for ", problem, " with num_labels = ", labels, ", got ",
            shape_str(t.shape()));
    }
  }

  void check_cotangents() const {
    const int64_t B = tokens_[0], L = tokens_.back(), H = config_.hidden_size;
    for (const auto& [name, shape] : {std::pair{"cotangent.last_hidden_state", Shape{B, L, H}},
                                      std::pair{"cotangent.pooler_output", Shape{B, H}}}) {
      if (!has(name)) continue;
      if (!is<MegaBaseModel>()) bad(name, "only MegaModel (no head) takes cotangents; heads use the loss");
      const Tensor& t = at(name);
      if (!is_floating(t.dtype())) bad(name, "must be F32 or F64, got ", dtype_name(t.dtype()));
      if (t.shape() != shape) bad(name, "expected ", shape_str(shape), " like the output, got ", shape_str(t.shape()));
    }
  }

  const MegaPreTrainedModel& model_;
  const MegaConfig& config_;
  const std::map<std::string, Tensor>& inputs_;
  const HfRunOptions& options_;
  Shape tokens_;  // (B, L) or (B, C, L): the shape every per-token input must have
};

Tensor find(const std::map<std::string, Tensor>& inputs, const std::string& key) {
  auto it = inputs.find(key);
  return it == inputs.end() ? Tensor() : it->second;
}

// Tokens [begin, begin + length) along dimension 1 of a (B, L, ...) tensor of any dtype.
Tensor slice_tokens(const Tensor& t, int64_t begin, int64_t length) {
  if (!t.defined()) return t;
  const int64_t B = t.size(0), L = t.size(1);
  const size_t row = t.nbytes() / static_cast<size_t>(B * L);  // bytes per token
  Shape shape = t.shape();
  shape[1] = length;
  Tensor out = Tensor::empty(shape, t.dtype());
  for (int64_t b = 0; b < B; ++b)
    std::memcpy(static_cast<char*>(out.raw()) + b * length * row,
                static_cast<const char*>(t.raw()) + (b * L + begin) * row, length * row);
  return out;
}

// Feeds the sequence through the cache in calls of `first` tokens, then one token per call, and
// concatenates the logits: what cached decoding must reproduce of the full forward.
Tensor decode_incrementally(MegaForCausalLM& lm, const MegaInputs& full, int64_t first, Rng& rng) {
  const int64_t L = full.input_ids.defined() ? full.input_ids.size(1) : full.inputs_embeds.size(1);
  MegaCache cache;
  std::vector<Var> logits;
  for (int64_t t = 0; t < L;) {
    int64_t n = t == 0 ? std::min(std::max<int64_t>(first, 1), L) : 1;
    MegaInputs step;
    step.input_ids = slice_tokens(full.input_ids, t, n);
    if (full.inputs_embeds.defined()) step.inputs_embeds = Var(slice_tokens(full.inputs_embeds.value(), t, n));
    step.attention_mask = slice_tokens(full.attention_mask, t, n);
    step.token_type_ids = slice_tokens(full.token_type_ids, t, n);
    step.encoder_hidden_states = full.encoder_hidden_states;
    step.encoder_attention_mask = full.encoder_attention_mask;
    logits.push_back(lm.forward_cached(step, cache, rng));
    t += n;
  }
  NoGradGuard no_grad;
  return logits.size() == 1 ? logits[0].value() : concat(logits, 1).value();
}

}  // namespace

std::map<std::string, Tensor> hf_run(MegaPreTrainedModel& model, const std::map<std::string, Tensor>& inputs,
                                     const HfRunOptions& options) {
  InputCheck(model, inputs, options).run();
  MegaInputs in;
  in.input_ids = find(inputs, "input_ids");
  if (Tensor embeds = find(inputs, "inputs_embeds"); embeds.defined()) in.inputs_embeds = Var(embeds.to(DType::F32));
  in.attention_mask = find(inputs, "attention_mask");
  in.token_type_ids = find(inputs, "token_type_ids");
  if (Tensor source = find(inputs, "encoder_hidden_states"); source.defined())
    in.encoder_hidden_states = Var(source.to(DType::F32));
  in.encoder_attention_mask = find(inputs, "encoder_attention_mask");
  in.labels = find(inputs, "labels");
  in.start_positions = find(inputs, "start_positions");
  in.end_positions = find(inputs, "end_positions");
  in.output_hidden_states = true;
  in.output_attentions = true;

  std::map<std::string, Tensor> out;
  Rng rng(options.seed);

  if (options.incremental) {
    auto* lm = dynamic_cast<MegaForCausalLM*>(&model);
    MEGA_CHECK(lm, "[hf-run] --incremental needs a MegaForCausalLM checkpoint");
    model.eval();  // decoding is inference: running statistics, no dropout
    out["incremental.logits"] = decode_incrementally(*lm, in, 1, rng);
    if (options.prefill > 0) out["incremental_prefill.logits"] = decode_incrementally(*lm, in, options.prefill, rng);
  }

  model.train(options.train);
  for (const Var& p : model.parameters()) p.zero_grad();
  std::optional<NoGradGuard> no_grad;
  if (!options.grads) no_grad.emplace();
  MegaOutputs result = model.forward(in, rng);

  const bool base_model = dynamic_cast<MegaBaseModel*>(&model) != nullptr;
  if (base_model) {
    out["last_hidden_state"] = result.last_hidden_state.value();
    out["pooler_output"] = result.pooler_output.value();
  } else if (result.start_logits.defined()) {
    out["start_logits"] = result.start_logits.value();
    out["end_logits"] = result.end_logits.value();
  } else {
    out["logits"] = result.logits.value();
  }
  if (result.loss.defined()) out["loss"] = result.loss.value();
  for (size_t i = 0; i < result.hidden_states.size(); ++i)
    out["hidden_states." + std::to_string(i)] = result.hidden_states[i];
  for (size_t i = 0; i < result.attentions.size(); ++i) out["attentions." + std::to_string(i)] = result.attentions[i];
  for (size_t i = 0; i < result.cross_attentions.size(); ++i)
    out["cross_attentions." + std::to_string(i)] = result.cross_attentions[i];

  if (options.grads) {
    Var objective;
    if (base_model) {  // sum(output * cotangent.<output>) over the cotangents given
      for (const auto& [name, output] : {std::pair{"last_hidden_state", result.last_hidden_state},
                                         std::pair{"pooler_output", result.pooler_output}}) {
        Tensor cotangent = find(inputs, std::string("cotangent.") + name);
        if (!cotangent.defined()) continue;
        Var term = sum(output * Var(cotangent.to(DType::F32)));
        objective = objective.defined() ? objective + term : term;
      }
      MEGA_CHECK(objective.defined(), "[hf-run] --grads on MegaModel needs cotangent.last_hidden_state and/or "
                                      "cotangent.pooler_output in the inputs");
    } else {
      MEGA_CHECK(result.loss.defined(), "[hf-run] --grads needs labels (the objective is the loss)");
      objective = result.loss;
    }
    objective.backward();
    // A tied alias is the same Var, so it reports the same total gradient.
    for (const auto& [name, p] : model.named_parameters())
      out["grad." + name] = p.grad().defined() ? p.grad() : Tensor::zeros(p.shape());
  }
  if (options.train) {
    for (const auto& [name, buffer] : model.named_buffers()) {
      bool batch_norm = name.ends_with("running_mean") || name.ends_with("running_var") ||
                        name.ends_with("num_batches_tracked");
      if (batch_norm) out["running." + name] = buffer->clone();
    }
  }
  return out;
}

}  // namespace mega
