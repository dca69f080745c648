// hf_run: one forward (and optionally backward, cached decoding) of a Mega checkpoint, outputs named as
// the HF fixtures name them.
#include "nn/hf_run.h"

#include <cstring>
#include <optional>

#include "ops/elementwise.h"
#include "ops/reduce.h"
#include "ops/shape.h"

namespace mega {

namespace {

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
