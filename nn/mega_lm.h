// A causal Mega language model built around two seams, so that the adaptive input and adaptive softmax
// (Baevski & Auli 2019; Grave et al. 2017) plug in as one class and one case each:
//   input   ids (B, L) -> embeddings (B, L, H): by default MegaModel's own word embeddings (HF's
//           "mega.embedding_layer.word_embeddings"); another LmInput is fed to MegaModel as inputs_embeds
//   output  LmOutputHead over hidden states (N, H): loss, score, log_probs; by default the full softmax
//           "lm_head" (Linear(H, V), its weight tied to the word embeddings when tie_word_embeddings)
// With both defaults the parameters are exactly HF's MegaForCausalLM ("mega.*", "lm_head.*") with
// add_lm_hidden_dense_layer false, so a saved folder opens with MegaForCausalLM.from_pretrained and with
// `mega generate` (nn/mega_model.h's MegaForCausalLM, cached decoding).
//
// Where the adaptive ops of nn/adaptive.h go (AdaptiveOptions{vocab_size, dim, cutoffs, factor, dropout}):
//   - LmOutputKind::AdaptiveSoftmax and a class AdaptiveSoftmaxHead : LmOutputHead holding an
//     AdaptiveSoftmax, forwarding loss/score/log_probs to it, registered as "adaptive_softmax"; one case
//     in make_output_head (nn/mega_lm.cpp);
//   - LmInputKind::AdaptiveInput and a class AdaptiveInputEmbedding : LmInput holding an AdaptiveInput,
//     registered as "adaptive_input"; one case in make_input; MegaModel is then built with vocab_size 1
//     (its word embedding unused) or the caller drops that row;
//   - tie_adaptive_weights: after both exist, softmax.tie_to(input) in MegaLanguageModel's constructor.
// Shapes: B batch, L length, H hidden size, N = B * L positions, V vocabulary.
#pragma once
#include <memory>
#include <vector>

#include "nn/mega_model.h"

namespace mega {

// The summed negative log-likelihood (nats) of the scored targets and how many there were.
struct LmScore {
  double nll_sum = 0;
  int64_t count = 0;
};

// ids (B, L) -> (B, L, H).
class LmInput : public Module {
 public:
  virtual Var forward(const Tensor& ids, Rng& rng) = 0;
};

class LmOutputHead : public Module {
 public:
  // The mean negative log-likelihood of targets I64 (N) (-100: ignored) given hidden (N, H): 0-d.
  virtual Var loss(const Var& hidden, const Tensor& targets, Rng& rng) = 0;
  // The same summed in double precision, without autograd (evaluation).
  virtual LmScore score(const Var& hidden, const Tensor& targets) = 0;
  // Log-probabilities of every symbol (N, V): rows sum to 1 after exp.
  virtual Var log_probs(const Var& hidden) = 0;
};

// The full softmax: logits = hidden W^T + b, W (V, H) ("lm_head.weight"), b (V) ("lm_head.bias").
class SoftmaxHead : public LmOutputHead {
 public:
  SoftmaxHead(int64_t hidden, int64_t vocab, const Var* tied_weight);  // tied_weight: the (V, H) embeddings, or null
  Var loss(const Var& hidden, const Tensor& targets, Rng& rng) override;
  LmScore score(const Var& hidden, const Tensor& targets) override;
  Var log_probs(const Var& hidden) override;
  Var logits(const Var& hidden) const;  // (N, V)
  Var weight, bias;
};

enum class LmInputKind { WordEmbeddings };
enum class LmOutputKind { FullSoftmax };

struct MegaLmOptions {
  MegaConfig config;  // is_decoder (causal), vocab_size, tie_word_embeddings, ...
  LmInputKind input = LmInputKind::WordEmbeddings;
  LmOutputKind output = LmOutputKind::FullSoftmax;
};

class MegaLanguageModel : public Module {
 public:
  explicit MegaLanguageModel(const MegaLmOptions& options);
  // Last hidden states (B, L, H) of ids I64 (B, L) under mask F32 (B, L) (undefined: every position).
  Var hidden_states(const Tensor& ids, const Tensor& mask, Rng& rng);
  // Mean negative log-likelihood of targets (B, L) (-100 ignored).
  Var loss(const Tensor& ids, const Tensor& mask, const Tensor& targets, Rng& rng);
  LmScore score(const Tensor& ids, const Tensor& mask, const Tensor& targets);
  Var log_probs(const Tensor& ids, const Tensor& mask);  // (B * L, V)

  const MegaLmOptions& options() const { return options_; }
  const MegaConfig& config() const { return options_.config; }
  // config.json: HF's MegaForCausalLM config; a model with other seams adds "mega_lm" keys.
  nlohmann::json config_json() const;
  std::set<std::string> tied_aliases() const;

 private:
  MegaLmOptions options_;
  std::unique_ptr<MegaModel> mega_;
  std::unique_ptr<LmInput> input_;  // null: MegaModel's word embeddings
  std::unique_ptr<LmOutputHead> head_;
};

// A causal LM's MegaConfig: is_decoder, no LM dense layer, and the HF class name.
MegaConfig causal_lm_config(MegaConfig config);

}  // namespace mega
