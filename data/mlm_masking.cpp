// RoBERTa-style masking (data/mlm_masking.h).
#include "data/mlm_masking.h"

#include <algorithm>

#include "core/error.h"

namespace mega {

namespace {
double unit(uint32_t word) { return static_cast<double>(word >> 8) / 16777216.0; }  // [0, 1), as Rng::uniform
}  // namespace

MaskedTokens mask_tokens(const Tensor& ids, const Tensor& mask, const MaskingOptions& options, const Rng& rng,
                         uint64_t stream) {
  MEGA_CHECK(ids.defined() && ids.dtype() == DType::I64, "[mask_tokens] ids must be I64");
  MEGA_CHECK(mask.defined() && mask.dtype() == DType::F32 && mask.shape() == ids.shape(),
             "[mask_tokens] mask must be F32 of the ids' shape ", shape_str(ids.shape()));
  // <mask> may sit inside the vocabulary (HF tokenizers) or one past it (recipes/mlm_objective.cpp).
  MEGA_CHECK(options.vocab_size > 0 && options.mask_id >= 0, "[mask_tokens] mask_id ", options.mask_id,
             " must be >= 0 and vocab_size ", options.vocab_size, " > 0");
  MEGA_CHECK(options.probability >= 0 && options.probability <= 1 && options.mask_fraction >= 0 &&
                 options.random_fraction >= 0 && options.mask_fraction + options.random_fraction <= 1,
             "[mask_tokens] probability must lie in [0, 1] and mask_fraction + random_fraction in [0, 1]");
  MaskedTokens out{ids.clone(), Tensor::empty(ids.shape(), DType::I64)};
  const int64_t* source = ids.data<int64_t>();
  const float* real = mask.data<float>();
  int64_t* inputs = out.inputs.data<int64_t>();
  int64_t* labels = out.labels.data<int64_t>();
  const auto& never = options.never_mask;
  for (int64_t i = 0, n = ids.numel(); i < n; ++i) {
    labels[i] = options.ignore_index;
    if (real[i] == 0 || std::find(never.begin(), never.end(), source[i]) != never.end()) continue;
    // Word 0 chooses the position, word 1 what it becomes, words 2-3 the random token.
    const auto words = rng.bits(stream, static_cast<uint64_t>(i));
    if (unit(words[0]) >= options.probability) continue;
    labels[i] = source[i];
    const double kind = unit(words[1]);
    if (kind < options.mask_fraction) {
      inputs[i] = options.mask_id;
    } else if (kind < options.mask_fraction + options.random_fraction) {
      const uint64_t draw = (static_cast<uint64_t>(words[2]) << 32) | words[3];
      inputs[i] = static_cast<int64_t>(draw % static_cast<uint64_t>(options.vocab_size));
    }
  }
  return out;
}

}  // namespace mega
