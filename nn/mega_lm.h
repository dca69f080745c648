// A causal Mega language model built around two seams, so that the adaptive input and adaptive softmax
// (Baevski & Auli 2019; Grave et al. 2017) plug in as one class and one case each:
//   input   ids (B, L) -> embeddings (B, L, H): by default MegaModel's own word embeddings (HF's
//           "mega.embedding_layer.word_embeddings"); another LmInput is fed to MegaModel as inputs_embeds
//   output  LmOutputHead over hidden states (N, H): loss, score, log_probs; by default the full softmax
//           "lm_head" (Linear(H, V), its weight tied to the word embeddings when tie_word_embeddings)
// With both defaults the parameters are exactly HF's MegaForCausalLM ("mega.*", "lm_head.*") with
// add_lm_hidden_dense_layer false, so a saved folder opens with MegaForCausalLM.from_pretrained; `mega
// generate` decodes every model trained here through log_probs_cached, whatever its seams.
//
// The adaptive seams (nn/adaptive.h, fairseq's AdaptiveInput / AdaptiveSoftmax, one set of bands
// for both): LmInputKind::AdaptiveInput reads ids through "adaptive_input.*" (MegaModel then keeps no
// word embeddings: its blocks stay "mega.layers.*"), LmOutputKind::AdaptiveSoftmax scores through
// "adaptive_softmax.*"; tie_adaptive_weights shares the softmax's tail and head word weights with the
// input (fairseq's tie_adaptive_weights + tie_adaptive_proj), one Var under both names.
// config.json is HF's MegaForCausalLM config plus a "mega_lm" block naming the seams (adaptive_json).
// Shapes: B batch, L length, H hidden size, N = B * L positions, V vocabulary.
#pragma once
#include <memory>
#include <vector>

#include "nn/adaptive.h"
#include "nn/mega_model.h"

namespace mega {

// The summed negative log-likelihood (nats) of the scored targets and how many there were.
struct LmScore {
  double nll_sum = 0;
  int64_t count = 0;
};

// ids (B, L) -> (B, L, H).
class LmInput {
 public:
  virtual ~LmInput() = default;
  virtual Var forward(const Tensor& ids) = 0;
  virtual Module& module() = 0;  // where its parameters live (registered under the input's name)
};

class LmOutputHead {
 public:
  virtual ~LmOutputHead() = default;
  virtual Module& module() = 0;  // where its parameters live (registered under the head's name)
  // The mean negative log-likelihood of targets I64 (N) (-100: ignored) given hidden (N, H): 0-d.
  virtual Var loss(const Var& hidden, const Tensor& targets, Rng& rng) = 0;
  // The same summed in double precision, without autograd (evaluation).
  virtual LmScore score(const Var& hidden, const Tensor& targets) = 0;
  // Log-probabilities of every symbol (N, V): rows sum to 1 after exp.
  virtual Var log_probs(const Var& hidden) = 0;
};

// The full softmax: logits = hidden W^T + b, W (V, H) ("lm_head.weight"), b (V) ("lm_head.bias").
class SoftmaxHead : public Module, public LmOutputHead {
 public:
  SoftmaxHead(int64_t hidden, int64_t vocab, const Var* tied_weight);  // tied_weight: the (V, H) embeddings, or null
  Module& module() override { return *this; }
  Var loss(const Var& hidden, const Tensor& targets, Rng& rng) override;
  LmScore score(const Var& hidden, const Tensor& targets) override;
  Var log_probs(const Var& hidden) override;
  Var logits(const Var& hidden) const;  // (N, V)
  Var weight, bias;
};

// Adaptive input embeddings, scaled by sqrt(H) as fairseq's Mega decoder scales every input embedding
// (its embed_scale; the paper's command keeps it). Ids must be sorted by frequency.
class AdaptiveInputEmbedding : public LmInput {
 public:
  explicit AdaptiveInputEmbedding(const AdaptiveOptions& options);
  Var forward(const Tensor& ids) override;
  Module& module() override { return input; }
  AdaptiveInput input;
};

// The adaptive softmax: -log p from its head and the tail of each target.
class AdaptiveSoftmaxHead : public LmOutputHead {
 public:
  explicit AdaptiveSoftmaxHead(const AdaptiveOptions& options) : softmax(options) {}
  Module& module() override { return softmax; }
  Var loss(const Var& hidden, const Tensor& targets, Rng& rng) override;
  LmScore score(const Var& hidden, const Tensor& targets) override;
  Var log_probs(const Var& hidden) override;
  AdaptiveSoftmax softmax;
};

enum class LmInputKind { WordEmbeddings, AdaptiveInput };
enum class LmOutputKind { FullSoftmax, AdaptiveSoftmax };

struct MegaLmOptions {
  MegaConfig config;  // is_decoder (causal), vocab_size, tie_word_embeddings, ...
  LmInputKind input = LmInputKind::WordEmbeddings;
  LmOutputKind output = LmOutputKind::FullSoftmax;
  // The bands of the adaptive input and softmax (fairseq's adaptive_{input,softmax}_{cutoff,factor}, one
  // value here as tying needs them equal): strictly increasing cutoffs below vocab_size.
  std::vector<int64_t> adaptive_cutoffs = {};
  double adaptive_factor = 4;
  double adaptive_softmax_dropout = 0;  // fairseq's adaptive_softmax_dropout
  bool tie_adaptive_weights = false;    // needs both adaptive kinds
};

// The AdaptiveOptions the adaptive seams of `options` are built with (vocab, H, pad id from config).
AdaptiveOptions adaptive_options(const MegaLmOptions& options);
// The "mega_lm" keys describing the seams ({} for the HF defaults) and their inverse, which fills the
// seam fields of `options` and names the bad key ("mega_lm.adaptive_cutoffs") on a bad value.
nlohmann::json adaptive_json(const MegaLmOptions& options);
void read_adaptive_json(const nlohmann::json& mega_lm, MegaLmOptions& options);

class MegaLanguageModel : public Module {
 public:
  explicit MegaLanguageModel(const MegaLmOptions& options);
  // Last hidden states (B, L, H) of ids I64 (B, L) under mask F32 (B, L) (undefined: every position).
  Var hidden_states(const Tensor& ids, const Tensor& mask, Rng& rng);
  // Mean negative log-likelihood of targets (B, L) (-100 ignored).
  Var loss(const Tensor& ids, const Tensor& mask, const Tensor& targets, Rng& rng);
  LmScore score(const Tensor& ids, const Tensor& mask, const Tensor& targets);
  Var log_probs(const Tensor& ids, const Tensor& mask);  // (B * L, V)
  // Decoding: log-probabilities (L, V) of the L new tokens ids (1, L) after cache.length earlier ones.
  Tensor log_probs_cached(const Tensor& ids, MegaCache& cache);
  // Fresh weights: HF's rules for every parameter (nn/init.h), then fairseq's for the adaptive modules.
  void init_weights(Rng& rng);

  const MegaLmOptions& options() const { return options_; }
  const MegaConfig& config() const { return options_.config; }
  // config.json: HF's MegaForCausalLM config; a model with other seams adds "mega_lm" keys.
  nlohmann::json config_json() const;
  // Tied parameter names after the first (HF's lm_head.weight, or the adaptive softmax's tied weights).
  std::set<std::string> tied_aliases() const;

 private:
  MegaInputs inputs_of(const Tensor& ids, const Tensor& mask);  // input_ids, or the LmInput's inputs_embeds
  MegaLmOptions options_;
  std::unique_ptr<MegaModel> mega_;
  std::unique_ptr<Module> mega_blocks_;  // with an LmInput: MegaModel's blocks alone, as "mega"
  std::unique_ptr<LmInput> input_;       // null: MegaModel's word embeddings
  std::unique_ptr<LmOutputHead> head_;
};

// A causal LM's MegaConfig: is_decoder, no LM dense layer, and the HF class name.
MegaConfig causal_lm_config(MegaConfig config);

}  // namespace mega
