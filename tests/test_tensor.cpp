// Tensor storage, views, copies, dtype conversion, and the counter-based RNG.
#include <gtest/gtest.h>

#include <cmath>

#include "core/rng.h"
#include "core/tensor.h"
#include "core/threading.h"

using namespace mega;

TEST(Tensor, AlignedZeroedAndShaped) {
  Tensor t = Tensor::zeros({3, 5, 7});
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % 64, 0u);
  EXPECT_EQ(t.numel(), 105);
  EXPECT_EQ(t.dim(), 3);
  EXPECT_EQ(t.size(-1), 7);
  for (int64_t i = 0; i < t.numel(); ++i) EXPECT_EQ(t.at(i), 0.0);
  EXPECT_THROW(t.size(3), Error);
}

TEST(Tensor, ViewsShareStorageAndCopiesDoNot) {
  Tensor t = Tensor::from(std::vector<float>{0, 1, 2, 3, 4, 5}, {3, 2});
  Tensor r = t.reshape({2, -1});
  EXPECT_EQ(r.shape(), (Shape{2, 3}));
  EXPECT_TRUE(r.shares_storage(t));
  Tensor rows = t.narrow0(1, 3);
  EXPECT_EQ(rows.shape(), (Shape{2, 2}));
  EXPECT_EQ(rows.at(0), 2.0);
  EXPECT_EQ(t[2].at(1), 5.0);
  Tensor c = t.clone();
  c.data<float>()[0] = 42;
  EXPECT_EQ(t.at(0), 0.0);
  EXPECT_THROW(t.reshape({4, 2}), Error);
  EXPECT_THROW(t.narrow0(2, 4), Error);
}

TEST(Tensor, DtypeConversionsRoundTrip) {
  Tensor f = Tensor::from(std::vector<float>{1.5f, -2.25f, 65504.0f, 1e-7f}, {4});
  EXPECT_EQ(f.to(DType::F64).at(1), -2.25);
  EXPECT_EQ(f.to(DType::BF16).to(DType::F32).at(0), 1.5);
  EXPECT_EQ(f.to(DType::F16).to(DType::F32).at(2), 65504.0);
  EXPECT_NEAR(f.to(DType::F16).to(DType::F32).at(3), 1e-7, 3e-8);  // subnormal: f16 step is 6e-8
  EXPECT_EQ(f.to(DType::I64).at(1), -2.0);
  EXPECT_EQ(f.to(DType::Bool).at(1), 1.0);
  // Round to nearest even: 1 + 2^-8 lies halfway between two bf16 values and rounds down to 1.
  EXPECT_EQ(bf16_to_float(float_to_bf16(1.0f + std::ldexp(1.0f, -8))), 1.0f);
}

TEST(Rng, CounterBasedAndIndependentOfOrder) {
  Rng a(7), b(7), c(8);
  EXPECT_EQ(a.uniform(3, 100), b.uniform(3, 100));
  EXPECT_NE(a.uniform(3, 100), c.uniform(3, 100));
  EXPECT_NE(a.uniform(3, 100), a.uniform(4, 100));
  // Known-answer test for Philox-4x32-10 (Random123 kat_vectors: zero counter and key).
  auto zero = philox4x32({0, 0, 0, 0}, {0, 0});
  EXPECT_EQ(zero[0], 0x6627e8d5u);
  EXPECT_EQ(zero[1], 0xe169c58du);
  EXPECT_EQ(zero[2], 0xbc57ac4cu);
  EXPECT_EQ(zero[3], 0x9b00dbd8u);
  double mean = 0;
  for (int i = 0; i < 10000; ++i) mean += a.uniform(0, i);
  EXPECT_NEAR(mean / 10000, 0.5, 0.02);
}

TEST(Threading, ParallelForCoversEveryIndexOnce) {
  std::vector<int> hits(100000, 0);
  parallel_for(static_cast<int64_t>(hits.size()), 1000, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) hits[i] += 1;
  });
  for (int h : hits) ASSERT_EQ(h, 1);
}
