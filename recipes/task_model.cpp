// Models behind the trainer's one interface (recipes/task_model.h).
#include "recipes/task_model.h"

#include "core/error.h"

namespace mega {

Var SequenceClassifierModel::forward(const Batch& batch, Rng& rng) {
  MEGA_CHECK(!batch.is_pair(), "[task_model] a single-sequence classifier got a pair batch");
  return classifier_.forward(batch.ids, batch.mask, rng);
}

std::unique_ptr<TaskModel> make_task_model(const TaskInput& input, const LraClassifierOptions& options) {
  switch (input.kind) {
    case InputKind::Tokens: return std::make_unique<SequenceClassifierModel>(options);
    case InputKind::Pixels: {
      // The same classifier reading intensities through its pixel embedding, normalised as the task says.
      LraClassifierOptions pixels = options;
      pixels.input = LraInput::Pixels;
      pixels.pixel_mean = input.pixel_mean;
      pixels.pixel_std = input.pixel_std;
      return std::make_unique<SequenceClassifierModel>(pixels);
    }
    case InputKind::TokenPair: break;
  }
  fail("[task_model] no model for input kind '", input_kind_name(input.kind),
       "' yet (nn/lra_classifier's dual encoder comes with Retrieval)");
}

std::unique_ptr<TaskModel> task_model_from_config_json(const TaskInput& input, const nlohmann::json& config) {
  return make_task_model(input, LraClassifier::options_from_config_json(config));
}

}  // namespace mega
