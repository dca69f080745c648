// Runs a Mega checkpoint on named input tensors and returns named outputs, under the names of the HF
// reference fixtures (README of shared/fixtures/hf_mega): what `mega hf-run` writes and what the
// fixture tests compare.
#pragma once
#include <map>
#include <string>

#include "nn/mega_model.h"

namespace mega {

struct HfRunOptions {
  bool grads = false;        // grad.<param> for every parameter name of the state dict
  bool train = false;        // train mode (batch statistics) and running.<buffer> after the forward
  bool incremental = false;  // incremental.logits: the causal LM fed one token per call through the cache
  int64_t prefill = 0;       // > 0 (with incremental): incremental_prefill.logits, the first `prefill` at once
  uint64_t seed = 0;         // dropout streams
  std::string inputs_name = "inputs";  // where the inputs came from (the file), for error messages
};

// inputs: input_ids or inputs_embeds, attention_mask, token_type_ids, labels, start_positions,
// end_positions, encoder_hidden_states, encoder_attention_mask, cotangent.<output> (MegaModel).
// Outputs: logits | start_logits, end_logits | last_hidden_state, pooler_output; loss; hidden_states.i;
// attentions.i; cross_attentions.i; and the optional groups above. Leaves the model in the mode it ran.
// Every input is checked (presence, dtype, shape against input_ids, ids within their tables) before
// anything runs; a bad one is an error naming options.inputs_name and the tensor.
std::map<std::string, Tensor> hf_run(MegaPreTrainedModel& model, const std::map<std::string, Tensor>& inputs,
                                     const HfRunOptions& options);

}  // namespace mega
