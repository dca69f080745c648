// The language-modelling side of the trainer: the causal LM behind the trainer's TaskModel interface
// (loss per token instead of cross-entropy on per-sequence logits), its builder from a recipe,
// fairseq eval_lm's evaluation of a whole stream, and the unigram and add-one bigram baselines scored the
// same way. The trainer branches on the task's kind (data/task.h) in one place each: the batch source,
// the evaluation and the best-checkpoint rule (valid loss).
// Shapes: B rows, L row length, V vocabulary.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "data/lm_batching.h"
#include "nn/mega_lm.h"
#include "recipes/recipe.h"
#include "recipes/task_model.h"

namespace mega {

class CausalLmModel : public TaskModel {
 public:
  CausalLmModel(const MegaLmOptions& options, TokenUnit unit) : model_(options), unit_(unit) {}
  // Log-probabilities (B * L, V) of the batch's positions (every symbol, for sampling or inspection).
  Var forward(const Batch& batch, Rng& rng) override;
  // The mean negative log-likelihood of the batch's scored targets (labels (B, L), -100 ignored).
  Var loss(const Batch& batch, Rng& rng) override;
  LmScore score(const Batch& batch);
  Module& module() override { return model_; }
  const Module& module() const override { return model_; }
  const MegaConfig& encoder_config() const override { return model_.config(); }
  void init_weights(Rng& rng) override;  // MegaLanguageModel::init_weights (fairseq's adaptive rules)
  // HF's MegaForCausalLM config plus "mega_lm": {"unit": "word"|"byte", "vocabulary": "dict.txt"} and the
  // adaptive seams (nn/mega_lm.h's adaptive_json).
  nlohmann::json config_json() const override;
  TokenUnit unit() const { return unit_; }
  MegaLanguageModel& language_model() { return model_; }

 private:
  MegaLanguageModel model_;
  TokenUnit unit_;
};

// The model a recipe describes for a vocabulary of `vocab_size` (pad, eos and bos ids as the vocabulary
// has them; 0: not known yet, a stand-in size above every cutoff, for validation). model.adaptive_input
// and a non-empty model.adaptive_softmax_cutoff choose the adaptive seams (one set of bands for both);
// a bad band names its key.
std::unique_ptr<CausalLmModel> build_language_model(const Recipe& recipe, TokenUnit unit, int64_t vocab_size);
// A saved model: config.json with its "mega_lm" section.
std::unique_ptr<CausalLmModel> language_model_from_config_json(const nlohmann::json& config);
// The unit a saved LM's config.json names.
TokenUnit lm_unit_of_config(const nlohmann::json& config);

// The segment batching of a recipe: data.segment_chunks_{min,max} chunks of model.chunk_size a row.
SegmentOptions segment_options(const Recipe& recipe, const Vocabulary& vocabulary);
// The block length of the evaluation: data.eval_length, null: model.chunk_size * data.segment_chunks_max.
int64_t eval_length(const Recipe& recipe);

struct LmMetrics {
  double loss = 0;           // nats per token
  double perplexity = 0;     // exp(loss)
  double bits_per_byte = 0;  // loss / ln 2 (a byte-level model's bits per byte)
  int64_t tokens = 0;        // tokens scored
};
LmMetrics lm_metrics(const LmScore& score);

// fairseq eval_lm (context window 0): every token of `stream` scored once, in consecutive blocks of `length`.
LmMetrics evaluate_stream(CausalLmModel& model, const std::vector<int64_t>& stream, int64_t length, int64_t batch_size,
                          const Vocabulary& vocabulary);

// The baselines, counted on train and scored on a split token by token as the model is (after begin_id):
// unigram p(w) = (c(w) + 1) / (N + V), add-one bigram p(w | v) = (c(v, w) + 1) / (c(v) + V), where counts
// come from train read after begin_id and V is the vocabulary's size.
LmMetrics unigram_baseline(const std::vector<int64_t>& train, const std::vector<int64_t>& split, int64_t vocab_size,
                           int64_t begin_id);
LmMetrics bigram_baseline(const std::vector<int64_t>& train, const std::vector<int64_t>& split, int64_t vocab_size,
                          int64_t begin_id);

}  // namespace mega
