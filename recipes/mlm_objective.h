// Masked-LM pretraining (model.head: masked_lm) on a classification task's texts: HF's MegaForMaskedLM
// trained on RoBERTa's masking (data/mlm_masking.h), its labels unused. The saved folder is HF's
// MegaForMaskedLM checkpoint (config.json with architectures ["MegaForMaskedLM"], mega.* and mlm_head.*),
// which a classifier's model.from_pretrained reads (recipes/pretrained.h).
//
// <mask> is one id past the task's vocabulary (the bytes tokenizer's 258), so the model's vocab_size is
// the task's + 1 when model.vocab_size is null; a fine-tune recipe keeps that size (model.vocab_size) so
// the word embeddings load. Scores: the mean cross-entropy per masked token (loss) and the fraction of
// masked tokens predicted (accuracy); evaluation masks with fixed streams, so every evaluation of a split
// scores the same positions.
#pragma once
#include <memory>

#include "data/mlm_masking.h"
#include "nn/mega_model.h"
#include "recipes/recipe.h"
#include "recipes/task_model.h"
#include "recipes/trainer.h"

namespace mega {

class MaskedLmModel : public TaskModel {
 public:
  MaskedLmModel(const MegaConfig& config, const MaskingOptions& masking) : model_(config), masking_(masking) {}
  // Logits (B, L, V) of the batch as given (nothing masked).
  Var forward(const Batch& batch, Rng& rng) override;
  // Masks the batch with the next stream of `rng`, then the mean cross-entropy over the masked tokens.
  Var loss(const Batch& batch, Rng& rng) override;
  Module& module() override { return model_; }
  const Module& module() const override { return model_; }
  const MegaConfig& encoder_config() const override { return model_.config(); }
  nlohmann::json config_json() const override;
  const MaskingOptions& masking() const { return masking_; }

 private:
  Var masked_loss(const Batch& batch, Rng& rng, uint64_t stream, int64_t* correct, int64_t* scored);
  friend EvalResult evaluate_masked_lm(MaskedLmModel&, const std::vector<SequenceExample>&, const Recipe&,
                                       const TaskDescription&);
  MegaForMaskedLM model_;
  MaskingOptions masking_;
};

std::unique_ptr<MaskedLmModel> build_masked_lm(const Recipe& recipe, const TaskDescription& task);
// Masked-token loss and accuracy over a split (the trainer's evaluate for this model).
EvalResult evaluate_masked_lm(MaskedLmModel& model, const std::vector<SequenceExample>& examples, const Recipe& recipe,
                              const TaskDescription& task);

}  // namespace mega
