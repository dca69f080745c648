// The one interface through which the trainer, `mega eval` and `mega validate` use a model: whatever a
// task's input kind calls for (data/task.h), the trainer only runs forward(batch, rng) -> logits and
// reaches the parameters through module(). A new model kind (the pixel embedding of Image and
// Pathfinder, Retrieval's dual encoder) is a class implementing it plus one case in
// build_task_model / task_model_from_config_json (recipes/task_model.cpp).
#pragma once
#include <memory>

#include "data/task.h"
#include "nn/lra_classifier.h"
#include "nn/lra_dual_encoder.h"

namespace mega {

class TaskModel {
 public:
  virtual ~TaskModel() = default;
  // Logits (B, C) for a batch of the task's input kind: ids/mask for one sequence (token ids, or pixel
  // intensities), plus pair_ids/pair_mask for a pair task.
  virtual Var forward(const Batch& batch, Rng& rng) = 0;
  // The training loss of a batch: cross-entropy of forward's logits against the labels; a language model
  // (recipes/lm_objective.h) scores every target token instead.
  virtual Var loss(const Batch& batch, Rng& rng);
  // Parameters, state_dict, train()/eval().
  virtual Module& module() = 0;
  virtual const Module& module() const = 0;
  // The Mega encoder's configuration: weight init (nn/init) and the padding multiple (chunk size).
  virtual const MegaConfig& encoder_config() const = 0;
  // Fresh weights: HF's rules (nn/init.h) unless the model has rules of its own.
  virtual void init_weights(Rng& rng);
  // config.json of a saved model; task_model_from_config_json reads it back.
  virtual nlohmann::json config_json() const = 0;
};

// The LRA classifier over one sequence: token ids (ListOps, Text, Image as tokens) or pixel intensities
// through the pixel embedding (Image, Fashion-MNIST, Pathfinder).
class SequenceClassifierModel : public TaskModel {
 public:
  explicit SequenceClassifierModel(const LraClassifierOptions& options) : classifier_(options) {}
  Var forward(const Batch& batch, Rng& rng) override;
  Module& module() override { return classifier_; }
  const Module& module() const override { return classifier_; }
  const MegaConfig& encoder_config() const override { return classifier_.options().encoder; }
  nlohmann::json config_json() const override { return classifier_.config_json(); }
  const LraClassifierOptions& options() const { return classifier_.options(); }

 private:
  LraClassifier classifier_;
};

// The dual encoder over a pair of token sequences (Retrieval): one shared Mega encoder reads ids and
// pair_ids, the head reads their pooled vectors combined (nn/lra_dual_encoder.h).
class DualEncoderModel : public TaskModel {
 public:
  explicit DualEncoderModel(const LraDualEncoderOptions& options) : encoder_(options) {}
  Var forward(const Batch& batch, Rng& rng) override;
  Module& module() override { return encoder_; }
  const Module& module() const override { return encoder_; }
  const MegaConfig& encoder_config() const override { return encoder_.options().classifier.encoder; }
  nlohmann::json config_json() const override { return encoder_.config_json(); }
  const LraDualEncoderOptions& options() const { return encoder_.options(); }

 private:
  LraDualEncoder encoder_;
};

// The model for the task's input (its kind; for pixels, the normalisation) from classifier options built
// from a recipe or a config.json: the one switch over input kinds.
// pair_features: how a pair task's head combines the two documents (model.pair_features); unused otherwise.
std::unique_ptr<TaskModel> make_task_model(const TaskInput& input, const LraClassifierOptions& options,
                                           PairFeatures pair_features = PairFeatures::Concat);
// A saved model (config.json) for a task with this input; a pair task's must be a dual encoder's.
std::unique_ptr<TaskModel> task_model_from_config_json(const TaskInput& input, const nlohmann::json& config);

}  // namespace mega
