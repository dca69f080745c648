// Models behind the trainer's one interface (recipes/task_model.h).
#include "recipes/task_model.h"

#include "core/error.h"

namespace mega {

Var SequenceClassifierModel::forward(const Batch& batch, Rng& rng) {
  MEGA_CHECK(!batch.is_pair(), "[task_model] a single-sequence classifier got a pair batch");
  return classifier_.forward(batch.ids, batch.mask, rng);
}

Var DualEncoderModel::forward(const Batch& batch, Rng& rng) {
  MEGA_CHECK(batch.is_pair(), "[task_model] the dual encoder got a batch without pair_ids");
  return encoder_.forward(batch.ids, batch.mask, batch.pair_ids, batch.pair_mask, rng);
}

std::unique_ptr<TaskModel> make_task_model(const TaskInput& input, const LraClassifierOptions& options,
                                           PairFeatures pair_features) {
  switch (input.kind) {
    case InputKind::Tokens: return std::make_unique<SequenceClassifierModel>(options);
    case InputKind::TokenPair:
      return std::make_unique<DualEncoderModel>(LraDualEncoderOptions{.classifier = options,
                                                                      .pair_features = pair_features});
    case InputKind::Pixels: break;
  }
  fail("[task_model] no model for input kind '", input_kind_name(input.kind),
       "' yet (nn/lra_classifier's pixel embedding and dual encoder come with those tasks)");
}

std::unique_ptr<TaskModel> task_model_from_config_json(const TaskInput& input, const nlohmann::json& config) {
  switch (input.kind) {
    case InputKind::TokenPair:
      return std::make_unique<DualEncoderModel>(LraDualEncoder::options_from_config_json(config));
    case InputKind::Tokens:
    case InputKind::Pixels: break;
  }
  return make_task_model(input, LraClassifier::options_from_config_json(config));
}

}  // namespace mega
