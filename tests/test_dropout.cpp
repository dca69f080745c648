// Dropout: the given-mask form (values, 1/(1-p) scaling, gradcheck), the RNG contract of the drawn
// masks (element i kept when uniform(stream, i) >= p, one stream per call, independent of threads),
// feature dropout's sharing over L, and the identity cases.
#include <gtest/gtest.h>

#include <cmath>

#include "core/rng_block.h"
#include "core/threading.h"
#include "ops/dropout.h"
#include "tests/gradcheck_util.h"

using namespace mega;
using mega::testing::error_of;
using mega::testing::random_tensor;

TEST(DropoutWithMask, KeepsScaledSurvivorsAndZeroesTheRest) {
  Tensor x = Tensor::from(std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor keep = Tensor::from(std::vector<double>{1, 0, 1, 1, 0, 0}, {2, 3});
  Var y = dropout_with_mask(Var(x), keep, 0.25);  // survivors times 1/(1 - 0.25) = 4/3
  std::vector<double> expected = {4.0 / 3, 0, 4, 16.0 / 3, 0, 0};
  for (int64_t i = 0; i < 6; ++i) EXPECT_NEAR(y.value().at(i), expected[i], 1e-15) << i;
}

TEST(DropoutWithMask, Gradcheck) {
  Tensor keep = Tensor::from(std::vector<int64_t>{1, 0, 1, 1, 0, 1, 1, 1, 0, 0, 1, 1}, {3, 4});
  EXPECT_GRADCHECK([&](const std::vector<Var>& v) { return dropout_with_mask(v[0], keep, 0.4); },
                   (std::vector<Tensor>{random_tensor({3, 4}, 1)}));
}

TEST(DropoutWithMask, GradientIsTheMaskTimesTheScale) {
  Var x(Tensor::from(std::vector<double>{7, 8, 9}, {3}), true);
  Tensor keep = Tensor::from(std::vector<double>{0, 1, 1}, {3});
  dropout_with_mask(x, keep, 0.5).backward(Tensor::from(std::vector<double>{1, 1, 3}, {3}));
  EXPECT_EQ(x.grad().at(0), 0.0);
  EXPECT_EQ(x.grad().at(1), 2.0);
  EXPECT_EQ(x.grad().at(2), 6.0);
}

TEST(DropoutWithMask, Errors) {
  Var x(Tensor::zeros({2, 3}));
  Rng rng(0);
  EXPECT_EQ(error_of([&] { dropout_with_mask(x, Tensor::zeros({3, 2}), 0.1); }),
            "[dropout_with_mask] keep has shape (3, 2) but x has shape (2, 3)");
  EXPECT_EQ(error_of([&] { dropout_with_mask(x, Tensor::full({2, 3}, 0.5), 0.1); }),
            "[dropout_with_mask] keep must hold only 0 and 1, found 0.5 at element 0");
  EXPECT_EQ(error_of([&] { dropout(x, 1.5, true, rng); }),
            "[dropout] p must be in [0, 1], got 1.5");
}

TEST(Dropout, IdentityInEvalOrWithPZeroAndDrawsNoStream) {
  Rng rng(5);
  Var x(random_tensor({4, 5}, 2), true);
  EXPECT_TRUE(dropout(x, 0.5, false, rng).same(x));
  EXPECT_TRUE(dropout(x, 0.0, true, rng).same(x));
  EXPECT_TRUE(feature_dropout(Var(random_tensor({2, 3, 4}, 3)), 0.5, false, rng).defined());
  EXPECT_EQ(rng.stream_position(), 0u);
}

TEST(Dropout, MaskFollowsTheRngContract) {
  // Element i of the call's stream is kept when uniform(stream, i) >= p, scaled by 1/(1-p).
  const double p = 0.3;
  Rng rng(42);
  rng.set_stream_position(7);
  Tensor x = random_tensor({50, 40}, 4, 1.0, 3.0);
  Var y = dropout(Var(x), p, true, rng);
  EXPECT_EQ(rng.stream_position(), 8u);
  Rng reference(42);
  int64_t kept = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    bool keep = reference.uniform(7, static_cast<uint64_t>(i)) >= p;
    kept += keep;
    ASSERT_EQ(y.value().at(i), keep ? x.at(i) * (1 / (1 - p)) : 0.0) << "element " << i;
  }
  EXPECT_NEAR(static_cast<double>(kept) / x.numel(), 1 - p, 0.03);
}

TEST(Dropout, BlockDrawsAreTheRngsFirstWords) {
  // The masks' side-by-side draws: word 0 of Rng::bits, across the 2^32 boundary of the counter too.
  for (uint64_t seed : {uint64_t{0}, uint64_t{42}, uint64_t{0x123456789abcdef}}) {
    const Rng rng(seed);
    for (uint64_t stream : {uint64_t{0}, uint64_t{9}, uint64_t{1} << 40}) {
      for (uint64_t first : {uint64_t{0}, uint64_t{48}, (uint64_t{1} << 32) - 5}) {
        uint32_t words[kBlockLanes];
        philox_first_words(seed, stream, first, words);
        for (int l = 0; l < kBlockLanes; ++l)
          ASSERT_EQ(words[l], rng.bits(stream, first + static_cast<uint64_t>(l))[0]) << seed << " " << stream;
      }
    }
  }
}

TEST(Dropout, MaskOfAnOddSizeFollowsTheContractAtEveryElement) {
  // 7 x 13 is no multiple of the draws' block; p = 2^-1 + 2^-24 puts the threshold on a drawable value.
  const double p = 0.5 + 1.0 / 16777216.0;
  Rng rng(3);
  Tensor x = Tensor::full({7, 13}, 1.0);
  Var y = dropout(Var(x), p, true, rng);
  const Rng reference(3);
  for (int64_t i = 0; i < x.numel(); ++i)
    ASSERT_EQ(y.value().at(i) != 0, reference.uniform(0, static_cast<uint64_t>(i)) >= p) << "element " << i;
}

TEST(Dropout, SuccessiveCallsDrawDifferentMasks) {
  Rng rng(1);
  Var x(Tensor::full({1000}, 1.0, DType::F64));
  Var a = dropout(x, 0.5, true, rng), b = dropout(x, 0.5, true, rng);
  int64_t differ = 0;
  for (int64_t i = 0; i < 1000; ++i) differ += a.value().at(i) != b.value().at(i);
  EXPECT_GT(differ, 300);
}

TEST(Dropout, MaskIndependentOfThreadCount) {
  Tensor x = Tensor::full({300000}, 1.0f);
  auto masked = [&](int threads, bool features) {
    set_num_threads(threads);
    Rng rng(2024);
    Var y = features ? feature_dropout(Var(x.reshape({30, 100, 100})), 0.2, true, rng)
                     : dropout(Var(x), 0.2, true, rng);
    set_num_threads(0);
    return y.value().to_vector();
  };
  EXPECT_EQ(masked(1, false), masked(2, false));
  EXPECT_EQ(masked(1, true), masked(2, true));
}

TEST(Dropout, PIsOneDropsEverything) {
  Rng rng(3);
  Var x(random_tensor({10}, 5), true);
  Var y = dropout(x, 1.0, true, rng);
  for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(y.value().at(i), 0.0);
  y.backward(Tensor::full({10}, 1.0, DType::F64));
  for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(x.grad().at(i), 0.0);
}

TEST(Dropout, GradcheckWithARepeatableMask) {
  // A fresh Rng of one seed per call gives the same mask each time the check re-runs the function.
  EXPECT_GRADCHECK([](const std::vector<Var>& v) {
    Rng rng(11);
    return dropout(v[0], 0.3, true, rng);
  }, (std::vector<Tensor>{random_tensor({4, 6}, 6)}));
}

TEST(DropoutFeature, SharesEachFeaturesMaskOverTheSequence) {
  const int64_t B = 3, L = 7, D = 20;
  const double p = 0.4;
  Rng rng(9);
  Tensor x = random_tensor({B, L, D}, 7, 1.0, 5.0);  // shift keeps every element away from 0
  Var xv(x, true);
  Var y = feature_dropout(xv, p, true, rng);
  Rng reference(9);
  int64_t dropped = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t d = 0; d < D; ++d) {
      bool keep = reference.uniform(0, static_cast<uint64_t>(b * D + d)) >= p;
      dropped += !keep;
      for (int64_t l = 0; l < L; ++l) {
        int64_t i = (b * L + l) * D + d;
        ASSERT_EQ(y.value().at(i), keep ? x.at(i) / (1 - p) : 0.0) << "b " << b << " l " << l << " d " << d;
      }
    }
  EXPECT_GT(dropped, 0);
  EXPECT_LT(dropped, B * D);
  Tensor cotangent = random_tensor({B, L, D}, 8);
  y.backward(cotangent);
  for (int64_t i = 0; i < x.numel(); ++i)
    ASSERT_EQ(xv.grad().at(i), y.value().at(i) == 0 ? 0.0 : cotangent.at(i) / (1 - p)) << i;
}

TEST(DropoutFeature, Gradcheck) {
  EXPECT_GRADCHECK([](const std::vector<Var>& v) {
    Rng rng(12);
    return feature_dropout(v[0], 0.5, true, rng);
  }, (std::vector<Tensor>{random_tensor({2, 3, 4}, 9)}));
}

TEST(DropoutFeature, NeedsBLD) {
  Rng rng(0);
  EXPECT_EQ(error_of([&] { feature_dropout(Var(Tensor::zeros({4, 5})), 0.1, true, rng); }),
            "[feature_dropout] x must be (B, L, D), got shape (4, 5)");
}
