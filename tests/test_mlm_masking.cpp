// RoBERTa masking: proportions within binomial tolerance, padding and specials never chosen, and the
// same draws for the same seed and stream.
#include <gtest/gtest.h>

#include <cmath>

#include "data/mlm_masking.h"
#include "tests/gradcheck_util.h"

using namespace mega;

namespace {

constexpr int64_t kVocab = 1000, kMask = 4, kPad = 1, kBos = 0;

// 64 rows of 512 ids in [5, kVocab), the last 12 of each row padding, <s> first.
std::pair<Tensor, Tensor> batch() {
  const int64_t B = 64, L = 512;
  Tensor ids = Tensor::empty({B, L}, DType::I64), mask = Tensor::empty({B, L}, DType::F32);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < L; ++t) {
      const bool pad = t >= L - 12;
      ids.data<int64_t>()[b * L + t] = pad ? kPad : t == 0 ? kBos : 5 + (b * 7919 + t * 104729) % (kVocab - 5);
      mask.data<float>()[b * L + t] = pad ? 0.0f : 1.0f;
    }
  }
  return {ids, mask};
}

MaskingOptions options() { return MaskingOptions{.mask_id = kMask, .vocab_size = kVocab, .never_mask = {kPad, kBos}}; }

}  // namespace

TEST(MlmMasking, ProportionsAreRobertas) {
  auto [ids, mask] = batch();
  MaskedTokens m = mask_tokens(ids, mask, options(), Rng(7), 3);
  int64_t eligible = 0, chosen = 0, masked = 0, kept = 0, replaced = 0;
  for (int64_t i = 0; i < ids.numel(); ++i) {
    const int64_t id = ids.data<int64_t>()[i], in = m.inputs.data<int64_t>()[i], label = m.labels.data<int64_t>()[i];
    const bool can = mask.data<float>()[i] != 0 && id != kBos;
    eligible += can;
    if (!can) {
      EXPECT_EQ(label, -100) << i;
      EXPECT_EQ(in, id) << i;
      continue;
    }
    if (label == -100) {
      EXPECT_EQ(in, id) << i;  // not chosen: unchanged
      continue;
    }
    EXPECT_EQ(label, id);
    ++chosen;
    if (in == kMask) ++masked;
    else if (in == id) ++kept;
    else ++replaced;
  }
  // Binomial standard deviations: 0.15 of ~32k eligible is ~4900 +- 64; the 80/10/10 split of ~4900.
  auto near = [](double count, double n, double p) { return std::abs(count - n * p) < 4 * std::sqrt(n * p * (1 - p)); };
  EXPECT_TRUE(near(chosen, eligible, 0.15)) << chosen << " of " << eligible;
  EXPECT_TRUE(near(masked, chosen, 0.8)) << masked << " of " << chosen;
  // A random draw equals the original id 1 time in kVocab, so "kept" is ~10% plus a trace.
  EXPECT_TRUE(near(kept, chosen, 0.1 + 0.1 / kVocab)) << kept << " of " << chosen;
  EXPECT_TRUE(near(replaced, chosen, 0.1 * (1 - 1.0 / kVocab))) << replaced << " of " << chosen;
}

TEST(MlmMasking, DeterministicInSeedAndStream) {
  auto [ids, mask] = batch();
  MaskedTokens a = mask_tokens(ids, mask, options(), Rng(7), 3), b = mask_tokens(ids, mask, options(), Rng(7), 3);
  MaskedTokens c = mask_tokens(ids, mask, options(), Rng(7), 4), d = mask_tokens(ids, mask, options(), Rng(8), 3);
  auto same = [](const Tensor& x, const Tensor& y) {
    for (int64_t i = 0; i < x.numel(); ++i)
      if (x.data<int64_t>()[i] != y.data<int64_t>()[i]) return false;
    return true;
  };
  EXPECT_TRUE(same(a.inputs, b.inputs) && same(a.labels, b.labels));
  EXPECT_FALSE(same(a.labels, c.labels));
  EXPECT_FALSE(same(a.labels, d.labels));
}

TEST(MlmMasking, BadOptionsAreErrors) {
  auto [ids, mask] = batch();
  MaskingOptions bad = options();
  bad.mask_id = -1;
  EXPECT_EQ(mega::testing::error_of([&] { mask_tokens(ids, mask, bad, Rng(0), 0); }),
            "[mask_tokens] mask_id -1 must be >= 0 and vocab_size 1000 > 0");
}
