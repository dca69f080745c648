// Adaptive input embeddings (Baevski & Auli 2019) and the adaptive softmax (Grave et al. 2017) as modules,
// laid out as fairseq's AdaptiveInput and AdaptiveSoftmax (its WikiText-103 language models: cutoffs
// 20000,60000, factor 4, input and output tied). Ids must be sorted by frequency (id 0 most frequent).
//
// Bands: band 0 (the head) is [0, cutoffs[0]); band b >= 1 (tail b-1) is [cutoffs[b-1], cutoffs[b] or V).
// Band b's vectors have d_b = max(1, floor(H / factor^b)) dims (d_0 = H).
//
// Parameter names (fairseq's state_dict names, under the module's own prefix):
//   AdaptiveInput
//     embeddings.b.0.weight   (band_b, d_b)   band b's embedding table (row w - start_b for id w)
//     embeddings.b.1.weight   (H, d_b)        band b's projection to H (a Linear(d_b, H) without bias)
//   AdaptiveSoftmax
//     head.word_proj.weight   (C0, H)         the head's word logits
//     head.class_proj.weight  (T, H)          one cluster logit per tail
//     tail.i.0.weight         (d_{i+1}, H)    tail i's projection; (H, d_{i+1}) once tied (the input's
//                                             embeddings.{i+1}.1.weight, used transposed)
//     tail.i.2.weight         (band_{i+1}, d_{i+1})  tail i's word logits (tied: embeddings.{i+1}.0.weight)
// The head is always the two blocks of fairseq's tied head (TiedHeadModule) rather than its untied single
// `head.weight` (C0 + T, H), so tying never renames a parameter: an untied fairseq checkpoint's
// head.weight is word_proj's rows followed by class_proj's. Tied, head.word_proj.weight is the input's
// embeddings.0.0.weight (band 0 has d_0 = H, so no extra projection); embeddings.0.1.weight stays the
// input's own, as in fairseq.
//
// Construction leaves every weight at zero; init_weights applies fairseq's initialisation.
// AdaptiveInput returns unscaled embeddings, as fairseq's: the decoder's sqrt(H) embed_scale (fairseq's
// default unless --no-scale-embedding) is the caller's to apply.
#pragma once
#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "nn/module.h"
#include "ops/adaptive_softmax.h"

namespace mega {

struct AdaptiveOptions {
  int64_t vocab_size = 0;         // V; ids are assumed sorted by frequency (id 0.. most frequent)
  int64_t dim = 0;                // model hidden size H
  std::vector<int64_t> cutoffs;   // strictly increasing, each < vocab_size, e.g. {20000, 60000}
  double factor = 4;              // band b's dim = dim / factor^b (at least 1)
  double dropout = 0;             // fairseq's adaptive_softmax_dropout: on the softmax's input and inside
                                  // each tail, between its projection and its word logits
  int64_t padding_idx = -1;       // an id of band 0 whose embedding starts at zero and gets no gradient
                                  // (fairseq's padding_idx), or -1 for none
};

// Throws an Error naming the bad field (vocab_size, dim, cutoffs, factor, dropout, padding_idx).
void check_adaptive_options(const AdaptiveOptions& options);
// cutoffs.size() + 1 bands; band b covers [bounds[b], bounds[b+1]) of {0, cutoffs..., V}.
std::vector<int64_t> adaptive_band_bounds(const AdaptiveOptions& options);
int64_t adaptive_band_dim(const AdaptiveOptions& options, int64_t band);  // d_b

class AdaptiveInput : public Module {
 public:
  explicit AdaptiveInput(const AdaptiveOptions& options);
  Var forward(const Tensor& ids /* I64 (B, L) or any shape */);  // -> (..., H)
  // fairseq's: embeddings ~ N(0, d_b^-1/2) with the padding row zero, projections xavier_uniform.
  // One rng stream per parameter, in the order of the names above.
  void init_weights(Rng& rng);

  const AdaptiveOptions& options() const { return options_; }
  int64_t num_bands() const { return static_cast<int64_t>(embeddings_.size()); }
  Var& embedding_weight(int64_t band);   // embeddings.b.0.weight
  Var& projection_weight(int64_t band);  // embeddings.b.1.weight

 private:
  AdaptiveOptions options_;
  std::vector<Var> embeddings_, projections_;  // sized once: the Module registry holds their addresses
};

class AdaptiveSoftmax : public Module {
 public:
  explicit AdaptiveSoftmax(const AdaptiveOptions& options);
  // Shares the tail embedding/projection weights with `input` (fairseq's tie_adaptive_weights +
  // tie_adaptive_proj), and the head's word logits with band 0's embedding: after this call the tied
  // parameters are the same Var in both modules. `input` must have the same vocab_size, dim, cutoffs
  // and factor. Call init_weights (if at all) after tying: it leaves tied weights to the input.
  void tie_to(AdaptiveInput& input);
  // Mean negative log-likelihood over the targets that are not ignore_index (0 when there are none).
  // hidden (N, H) or (..., H), targets I64 of hidden's leading shape. In training, dropout applies to
  // hidden and inside each tail, drawing from `rng`. Only the rows whose target falls in a tail
  // evaluate that tail.
  Var loss(const Var& hidden, const Tensor& targets, Rng& rng, int64_t ignore_index = -100);
  // Sum of NLL (for exact perplexity accounting) and the count of scored targets.
  struct Scored {
    double nll_sum = 0;
    int64_t count = 0;
  };
  Scored score(const Tensor& hidden, const Tensor& targets, int64_t ignore_index = -100);  // eval, no autograd
  // (N, H) or (..., H) -> (N, V) or (..., V) full log-probabilities (for generation/eval), no autograd,
  // no dropout. Every row evaluates every tail: use score() for perplexity.
  Tensor log_probs(const Tensor& hidden);
  // fairseq's: xavier_uniform for the weights not tied to an input; the untied head draws as the single
  // (C0 + T, H) matrix fairseq has. One rng stream per initialised parameter, in name order.
  void init_weights(Rng& rng);

  const AdaptiveOptions& options() const { return options_; }
  bool tied() const { return tied_; }
  int64_t num_tails() const { return static_cast<int64_t>(tail_projections_.size()); }
  Var& head_word_weight() { return head_words_; }        // head.word_proj.weight
  Var& head_cluster_weight() { return head_clusters_; }  // head.class_proj.weight
  Var& tail_projection_weight(int64_t tail);             // tail.i.0.weight
  Var& tail_output_weight(int64_t tail);                 // tail.i.2.weight
  AdaptiveSoftmaxWeights weights() const;                // the op's view of the parameters

 private:
  AdaptiveOptions options_;
  Var head_words_, head_clusters_;
  std::vector<Var> tail_projections_, tail_outputs_;  // sized once: registered by address
  bool tied_ = false;
};

}  // namespace mega
