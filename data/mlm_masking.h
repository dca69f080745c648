// Masked-LM inputs as RoBERTa draws them (HF's DataCollatorForLanguageModeling with mlm_probability 0.15):
// each real token (mask 1, not one of `never_mask`) is chosen with `probability`; a chosen token becomes
// <mask> with probability mask_fraction, a token drawn uniformly from [0, vocab_size) with
// random_fraction, and stays itself otherwise (80% / 10% / 10%). Only chosen positions are scored:
// labels hold the original id there and ignore_index (-100) everywhere else.
// Every draw is Philox at (stream, element index), so a batch's masking is a pure function of the seed,
// the stream and the ids: the same on every run and every thread count, and resumable.
#pragma once
#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"

namespace mega {

struct MaskingOptions {
  int64_t mask_id = 0;
  int64_t vocab_size = 0;            // random replacements are drawn from [0, vocab_size)
  std::vector<int64_t> never_mask{}; // ids never chosen (padding, <s>, </s>)
  double probability = 0.15;
  double mask_fraction = 0.8;
  double random_fraction = 0.1;
  int64_t ignore_index = -100;
};

struct MaskedTokens {
  Tensor inputs;  // (B, L) I64: the ids with the chosen positions replaced
  Tensor labels;  // (B, L) I64: the original id where chosen, ignore_index elsewhere
};

// ids (B, L) I64; mask (B, L) F32, 1 for a token and 0 for padding (data/batching.h's Batch).
MaskedTokens mask_tokens(const Tensor& ids, const Tensor& mask, const MaskingOptions& options, const Rng& rng,
                         uint64_t stream);

}  // namespace mega
