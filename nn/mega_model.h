// Mega models with HF's class names and state_dict layout: MegaModel (embeddings, blocks, pooler) and
// the heads MegaForMaskedLM, MegaForCausalLM, MegaForSequenceClassification, MegaForMultipleChoice,
// MegaForTokenClassification, MegaForQuestionAnswering; HF checkpoint folders (config.json +
// model.safetensors) in and out; cached decoding for causal LMs.
// Shapes: B batch, C choices, L length, S source length, H hidden size, V vocabulary.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "nn/mega_layers.h"

namespace mega {

struct MegaInputs {
  Tensor input_ids;               // I64 (B, L); (B, C, L) for multiple choice
  Var inputs_embeds;              // (B, L, H) (or (B, C, L, H)) instead of input_ids
  Tensor attention_mask;          // (B, L) 1 = token, 0 = padding; undefined = all tokens
  Tensor token_type_ids;          // I64 like input_ids; undefined = type 0 everywhere
  Var encoder_hidden_states;      // (B, S, H), decoders with cross-attention
  Tensor encoder_attention_mask;  // (B, S)
  Tensor labels;                  // per head (see README of the fixtures); undefined = no loss
  Tensor start_positions, end_positions;  // question answering, I64 (B)
  bool output_hidden_states = false;
  bool output_attentions = false;
};

struct MegaOutputs {
  Var last_hidden_state;  // (B, L, H)
  Var pooler_output;      // (B, H), models with a pooler
  Var logits;             // per head
  Var start_logits, end_logits;  // question answering (B, L)
  Var loss;               // 0-d, when labels were given
  std::vector<Tensor> hidden_states;     // embedding output, then each block's output
  std::vector<Tensor> attentions;        // per block: (B, L/c, c, c) chunked, else (B, 1, L, L)
  std::vector<Tensor> cross_attentions;  // per block: (B, L, S)
};

// Decoding state: one cache per block, and the number of tokens fed so far.
struct MegaCache {
  std::vector<MegaLayerCache> layers;
  int64_t length = 0;
};

class MegaEmbeddings : public Module {
 public:
  explicit MegaEmbeddings(const MegaConfig& config);
  // word embedding (or inputs_embeds) plus the token-type embedding when configured.
  Var forward(const Tensor& input_ids, const Var& inputs_embeds, const Tensor& token_type_ids);
  Embedding word_embeddings;

 private:
  std::unique_ptr<Embedding> token_type_embeddings;
};

// "pooler": tanh(dense(h[:, 0])).
class MegaPooler : public Module {
 public:
  explicit MegaPooler(int64_t hidden);
  Var forward(const Var& hidden_states);  // (B, L, H) -> (B, H)
  Linear dense;
};

class MegaModel : public Module {
 public:
  MegaModel(const MegaConfig& config, bool add_pooling_layer = true);
  MegaOutputs forward(const MegaInputs& inputs, Rng& rng);
  // Decoding: the L new tokens (B, L) with their mask (or undefined) after cache.length earlier ones;
  // returns the last hidden state (B, L, H). Equal to the full causal forward's rows. No autograd.
  Var forward_cached(const MegaInputs& inputs, MegaCache& cache, Rng& rng);
  const MegaConfig& config() const { return config_; }

  MegaEmbeddings embedding_layer;
  std::vector<std::unique_ptr<MegaBlock>> layers;
  std::unique_ptr<MegaPooler> pooler;

 private:
  MegaConfig config_;
};

// Common interface of MegaModel's wrappers: the head named by config "architectures".
class MegaPreTrainedModel : public Module {
 public:
  explicit MegaPreTrainedModel(const MegaConfig& config) : config_(config) {}
  virtual MegaOutputs forward(const MegaInputs& inputs, Rng& rng) = 0;
  virtual MegaModel& mega() = 0;
  const MegaConfig& config() const { return config_; }
  // The parameter names that alias another (tied weights): they may be absent from a checkpoint.
  virtual std::set<std::string> tied_aliases() const { return {}; }

 protected:
  MegaConfig config_;
};

// MegaModel as an architecture of its own (no "mega." prefix; outputs last_hidden_state, pooler_output).
class MegaBaseModel : public MegaPreTrainedModel {
 public:
  explicit MegaBaseModel(const MegaConfig& config);
  MegaOutputs forward(const MegaInputs& inputs, Rng& rng) override;
  MegaModel& mega() override { return *model_; }

 private:
  std::unique_ptr<MegaModel> model_;
};

// Masked and causal LM: optional dense + tanh, then a Linear(H, V) head tied to the word embeddings.
class MegaForLanguageModeling : public MegaPreTrainedModel {
 public:
  MegaForLanguageModeling(const MegaConfig& config, bool causal);
  MegaOutputs forward(const MegaInputs& inputs, Rng& rng) override;
  // Causal LM decoding: logits (B, L, V) of the L new tokens.
  Var forward_cached(const MegaInputs& inputs, MegaCache& cache, Rng& rng);
  MegaModel& mega() override { return *mega_; }
  std::set<std::string> tied_aliases() const override;

 private:
  Var head(const Var& sequence_output);
  bool causal_;
  std::string head_name_;  // "lm_head" or "mlm_head"
  std::unique_ptr<MegaModel> mega_;
  std::unique_ptr<Linear> dense_;
  std::unique_ptr<Linear> lm_head_;
};

class MegaForMaskedLM : public MegaForLanguageModeling {
 public:
  explicit MegaForMaskedLM(const MegaConfig& config) : MegaForLanguageModeling(config, false) {}
};

class MegaForCausalLM : public MegaForLanguageModeling {
 public:
  explicit MegaForCausalLM(const MegaConfig& config) : MegaForLanguageModeling(config, true) {}
};

class MegaForSequenceClassification : public MegaPreTrainedModel {
 public:
  explicit MegaForSequenceClassification(const MegaConfig& config);
  MegaOutputs forward(const MegaInputs& inputs, Rng& rng) override;
  MegaModel& mega() override { return *mega_; }

 private:
  struct ClassificationHead : Module {
    ClassificationHead(int64_t hidden, int64_t labels);
    Linear dense, out_proj;
  };
  double classifier_dropout_;
  std::unique_ptr<MegaModel> mega_;
  std::unique_ptr<ClassificationHead> classifier_;
};

class MegaForMultipleChoice : public MegaPreTrainedModel {
 public:
  explicit MegaForMultipleChoice(const MegaConfig& config);
  MegaOutputs forward(const MegaInputs& inputs, Rng& rng) override;
  MegaModel& mega() override { return *mega_; }

 private:
  std::unique_ptr<MegaModel> mega_;
  std::unique_ptr<Linear> classifier_;
};

class MegaForTokenClassification : public MegaPreTrainedModel {
 public:
  explicit MegaForTokenClassification(const MegaConfig& config);
  MegaOutputs forward(const MegaInputs& inputs, Rng& rng) override;
  MegaModel& mega() override { return *mega_; }

 private:
  std::unique_ptr<MegaModel> mega_;
  std::unique_ptr<Linear> classifier_;
};

class MegaForQuestionAnswering : public MegaPreTrainedModel {
 public:
  explicit MegaForQuestionAnswering(const MegaConfig& config);
  MegaOutputs forward(const MegaInputs& inputs, Rng& rng) override;
  MegaModel& mega() override { return *mega_; }

 private:
  std::unique_ptr<MegaModel> mega_;
  std::unique_ptr<Linear> qa_outputs_;
};

// The HF class names this file implements: MegaModel, MegaForMaskedLM, MegaForCausalLM, ...
std::unique_ptr<MegaPreTrainedModel> make_mega(const MegaConfig& config, const std::string& architecture);
// The architecture a config names (its first "architectures" entry); an error when there is none.
std::string architecture_of(const MegaConfig& config);

// A checkpoint folder in HF's layout: config.json and model.safetensors.
struct MegaCheckpoint {
  MegaConfig config;
  std::unique_ptr<MegaPreTrainedModel> model;
};
MegaCheckpoint load_pretrained(const std::string& folder);
// Writes config.json and model.safetensors (tied weights under both names, as HF's fixtures store
// them), each through a temporary file and a rename.
void save_pretrained(const MegaPreTrainedModel& model, const MegaConfig& config, const std::string& folder);

}  // namespace mega
