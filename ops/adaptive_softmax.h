// Adaptive softmax (Grave et al. 2017, "Efficient softmax approximation for GPUs") and adaptive input
// embeddings (Baevski & Auli 2019, "Adaptive Input Representations"), as fairseq's AdaptiveSoftmax and
// AdaptiveInput compute them. The vocabulary (ids sorted by frequency) is cut into bands: the head
// [0, C0) and tails i = 0..T-1 covering [start_i, start_i + band_i); rarer bands get narrower vectors.
//
// Shapes: N rows, H hidden, V vocabulary, C0 head words, T tails, band_i words and d_i dims of tail i;
// C = C0 + T head outputs (the words of the head, then one cluster logit per tail).
// Band layout comes from the weights themselves: C0 = head_words rows, band_i = tail i's output rows.
#pragma once
#include <vector>

#include "autograd/variable.h"
#include "core/rng.h"

namespace mega {

// Tail i: hidden (H) -> d_i (projection) -> band_i logits (output), the two-layer factorisation of
// Grave et al. Sec. 4.1.
struct AdaptiveSoftmaxTail {
  Var projection;                      // (d_i, H), or (H, d_i) when projection_transposed
  bool projection_transposed = false;  // the tied AdaptiveInput projection, used as its transpose
  Var output;                          // (band_i, d_i)
};

struct AdaptiveSoftmaxWeights {
  Var head_words;     // (C0, H): the head's word logits
  Var head_clusters;  // (T, H): one logit per tail cluster
  std::vector<AdaptiveSoftmaxTail> tails;  // T >= 1
};

// Mean over the rows whose target is not ignore_index of -log p(target | hidden), where
//   p(w) = softmax(head)_w                                   for w in the head,
//   p(w) = softmax(head)_{C0+i} * softmax(tail_i)_{w-start_i} for w in tail i    (Grave et al. Eq. 5).
// Only the rows whose target is in tail i evaluate tail i (fairseq's adapt_target). `tail_dropout`
// (training only) drops entries of each tail's projection before its output layer (fairseq's
// adaptive_softmax_dropout inside the tail), one rng stream per tail. No scored row gives 0.
// hidden (N, H), targets I64 (N) -> 0-d.
Var adaptive_softmax_loss(const Var& hidden, const AdaptiveSoftmaxWeights& weights, const Tensor& targets,
                          int64_t ignore_index, double tail_dropout, bool training, Rng& rng);

// The same loss from primitives (linear, log_softmax, concat, cross_entropy over the full (N, V)
// log-probabilities), without dropout: the slow reference the fused op is tested against.
Var adaptive_softmax_loss_reference(const Var& hidden, const AdaptiveSoftmaxWeights& weights,
                                    const Tensor& targets, int64_t ignore_index);

// Evaluation, no autograd, no dropout. The sum of -log p(target) over scored rows and their count.
struct AdaptiveNll {
  double sum = 0;
  int64_t count = 0;
};
AdaptiveNll adaptive_softmax_nll(const Tensor& hidden, const AdaptiveSoftmaxWeights& weights, const Tensor& targets,
                                 int64_t ignore_index);
// Every word's log-probability: hidden (N, H) -> (N, V), each row's exp summing to 1.
Tensor adaptive_softmax_log_probs(const Tensor& hidden, const AdaptiveSoftmaxWeights& weights);

// Adaptive input: id w in band b reads row w - start_b of embeddings[b] (band_b, d_b) and maps it to H
// with projections[b] (H, d_b) (Baevski & Auli Sec. 3), so band b's rows hold V's ids consecutively.
// The row `padding_idx` of band 0 (when >= 0) gets no gradient, as fairseq's padding embedding.
// ids I64 (...) -> (..., H).
Var adaptive_input(const Tensor& ids, const std::vector<Var>& embeddings, const std::vector<Var>& projections,
                   int64_t padding_idx = -1);
// The same from primitives (embedding, linear, a band mask per band): the slow reference.
Var adaptive_input_reference(const Tensor& ids, const std::vector<Var>& embeddings,
                             const std::vector<Var>& projections, int64_t padding_idx = -1);

}  // namespace mega
