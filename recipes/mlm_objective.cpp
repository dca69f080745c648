// Masked-LM pretraining (recipes/mlm_objective.h).
#include "recipes/mlm_objective.h"

#include <algorithm>

#include "ops/loss.h"
#include "ops/shape.h"

namespace mega {

namespace {
MegaInputs token_inputs(const Tensor& ids, const Tensor& mask) {
  MegaInputs inputs;
  inputs.input_ids = ids;
  inputs.attention_mask = mask;
  return inputs;
}

// Evaluation's masking streams (far from the training Rng's, which counts up from 0).
constexpr uint64_t kEvalStreamBase = uint64_t{1} << 62;
}  // namespace

Var MaskedLmModel::forward(const Batch& batch, Rng& rng) {
  return model_.forward(token_inputs(batch.ids, batch.mask), rng).logits;
}

Var MaskedLmModel::masked_loss(const Batch& batch, Rng& rng, uint64_t stream, int64_t* correct, int64_t* scored) {
  const MaskedTokens masked = mask_tokens(batch.ids, batch.mask, masking_, rng, stream);
  Var logits = model_.forward(token_inputs(masked.inputs, batch.mask), rng).logits;
  const int64_t V = logits.size(2);
  Var flat = reshape(logits, {-1, V});
  const Tensor labels = masked.labels.reshape({-1});
  if (correct) {
    const Tensor values = flat.value().to(DType::F32);
    const float* z = values.data<float>();
    const int64_t* y = labels.data<int64_t>();
    for (int64_t i = 0; i < labels.numel(); ++i) {
      if (y[i] == masking_.ignore_index) continue;
      *scored += 1;
      *correct += std::max_element(z + i * V, z + (i + 1) * V) - (z + i * V) == y[i];
    }
  }
  return cross_entropy(flat, labels, masking_.ignore_index);
}

Var MaskedLmModel::loss(const Batch& batch, Rng& rng) {
  const uint64_t stream = rng.next_stream();
  return masked_loss(batch, rng, stream, nullptr, nullptr);
}

nlohmann::json MaskedLmModel::config_json() const {
  MegaConfig config = model_.config();
  config.architectures = {"MegaForMaskedLM"};
  return config.to_json();
}

std::unique_ptr<MaskedLmModel> build_masked_lm(const Recipe& recipe, const TaskDescription& task) {
  TaskInfo info = task_info(recipe);
  const int64_t mask_id = task.input.vocab_size;
  if (recipe.is_null("model.vocab_size")) info.vocab_size = mask_id + 1;
  MegaConfig config = mega_config_from_recipe(recipe, info);
  MEGA_CHECK(config.vocab_size > mask_id,
             problem_at(recipe, "model.vocab_size",
                        "masked_lm needs room for <mask> past the task's " + std::to_string(mask_id) +
                            " ids: at least " + std::to_string(mask_id + 1)));
  MaskingOptions masking{.mask_id = mask_id, .vocab_size = mask_id, .never_mask = {task.input.pad_id}};
  return std::make_unique<MaskedLmModel>(config, masking);
}

EvalResult evaluate_masked_lm(MaskedLmModel& model, const std::vector<SequenceExample>& examples, const Recipe& recipe,
                              const TaskDescription& task) {
  model.module().eval();
  NoGradGuard no_grad;
  BatchingOptions options;
  options.batch_size = recipe.train.eval_batch_size;
  options.shuffle = false;
  options.bucket_batches = recipe.data.bucket_batches;
  Rng rng(recipe.train.seed);  // eval draws no dropout; the masks come from the fixed streams
  double loss_sum = 0;
  int64_t correct = 0, scored = 0;
  uint64_t stream = kEvalStreamBase;
  for (const std::vector<int64_t>& indices : epoch_batches(sequence_lengths(examples), options, 0)) {
    const MegaConfig& c = model.encoder_config();
    Batch batch = make_batch(examples, indices, task.input.pad_id, c.use_chunking ? c.chunk_size : 1);
    const int64_t before = scored;
    const double loss = model.masked_loss(batch, rng, stream++, &correct, &scored).item();
    loss_sum += loss * static_cast<double>(scored - before);
  }
  model.module().train();
  const double n = static_cast<double>(std::max<int64_t>(scored, 1));
  return EvalResult{.loss = loss_sum / n, .accuracy = static_cast<double>(correct) / n,
                    .examples = static_cast<int64_t>(examples.size()), .tokens = scored};
}

}  // namespace mega
