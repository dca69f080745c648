// Models behind the trainer's one interface (recipes/task_model.h).
#include "recipes/task_model.h"

#include "core/error.h"
#include "nn/init.h"
#include "ops/loss.h"

namespace mega {

Var TaskModel::loss(const Batch& batch, Rng& rng) { return cross_entropy(forward(batch, rng), batch.labels); }

void TaskModel::init_weights(Rng& rng) { init_mega_weights(module(), encoder_config(), rng); }

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
    case InputKind::Pixels: {
      // The same classifier, its encoder fed by the pixel embedding with the task's normalisation.
      LraClassifierOptions pixels = options;
      pixels.input = LraInput::Pixels;
      pixels.pixel_mean = input.pixel_mean;
      pixels.pixel_std = input.pixel_std;
      return std::make_unique<SequenceClassifierModel>(pixels);
    }
    case InputKind::TokenPair:
      return std::make_unique<DualEncoderModel>(LraDualEncoderOptions{.classifier = options,
                                                                      .pair_features = pair_features});
  }
  fail("[task_model] unknown input kind ", static_cast<int>(input.kind));
}

std::unique_ptr<TaskModel> task_model_from_config_json(const TaskInput& input, const nlohmann::json& config) {
  if (input.kind == InputKind::TokenPair)
    return std::make_unique<DualEncoderModel>(LraDualEncoder::options_from_config_json(config));
  const LraClassifierOptions options = LraClassifier::options_from_config_json(config);
  // A saved model keeps the input it was trained on: its kind must be the task's, and a pixel model
  // keeps its own normalisation (its weights were learnt on it), whatever the recipe now says.
  const bool pixels = input.kind == InputKind::Pixels;
  MEGA_CHECK((options.input == LraInput::Pixels) == pixels, "[task_model] config.json describes a model over ",
             lra_input_name(options.input), ", the task's input is ", input_kind_name(input.kind));
  TaskInput saved = input;
  if (pixels) {
    saved.pixel_mean = options.pixel_mean;
    saved.pixel_std = options.pixel_std;
  }
  return make_task_model(saved, options);
}

}  // namespace mega
