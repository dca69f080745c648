// Embedding: row lookup for ids of any shape, the scatter-add backward with repeated ids, gradcheck, and
// the errors for bad ids and tables.
#include <gtest/gtest.h>

#include "ops/embedding.h"
#include "tests/gradcheck_util.h"

using namespace mega;
using mega::testing::error_of;
using mega::testing::random_tensor;

TEST(Embedding, LooksUpRowsForIdsOfAnyShape) {
  Tensor weight = random_tensor({5, 3}, 1);
  Tensor ids = Tensor::from(std::vector<int64_t>{4, 0, 4, 2, 1, 1}, {2, 3});
  Var out = embedding(ids, Var(weight));
  EXPECT_EQ(out.shape(), (Shape{2, 3, 3}));
  for (int64_t i = 0; i < 6; ++i)
    for (int64_t j = 0; j < 3; ++j) EXPECT_EQ(out.value().at(i * 3 + j), weight.at(ids.at(i) * 3 + j));
}

TEST(Embedding, RepeatedIdsAccumulateTheirGradients) {
  Var weight(Tensor::zeros({4, 2}, DType::F64), true);
  Tensor ids = Tensor::from(std::vector<int64_t>{2, 0, 2, 2}, {4});
  Tensor cotangent = Tensor::from(std::vector<double>{1, 10, 2, 20, 3, 30, 4, 40}, {4, 2});
  embedding(ids, weight).backward(cotangent);
  // Row 2 gets positions 0, 2 and 3; row 0 position 1; rows 1 and 3 nothing.
  std::vector<double> expected = {2, 20, 0, 0, 1 + 3 + 4, 10 + 30 + 40, 0, 0};
  for (int64_t i = 0; i < 8; ++i) EXPECT_EQ(weight.grad().at(i), expected[i]) << i;
}

TEST(Embedding, PaddingRowGetsNoGradient) {
  Var weight(Tensor::zeros({4, 2}, DType::F64), true);
  Tensor ids = Tensor::from(std::vector<int64_t>{1, 0, 1, 3}, {4});
  Var out = embedding(ids, weight, /*padding_idx=*/1);
  EXPECT_EQ(out.value().at(0), weight.value().at(2));  // the lookup itself is unchanged
  out.backward(Tensor::full({4, 2}, 1.0, DType::F64));
  std::vector<double> expected = {1, 1, 0, 0, 0, 0, 1, 1};
  for (int64_t i = 0; i < 8; ++i) EXPECT_EQ(weight.grad().at(i), expected[i]) << i;
}

TEST(Embedding, Gradcheck) {
  Tensor ids = Tensor::from(std::vector<int64_t>{1, 3, 1, 0, 3, 3}, {3, 2});
  EXPECT_GRADCHECK([&](const std::vector<Var>& v) { return embedding(ids, v[0]); },
                   (std::vector<Tensor>{random_tensor({5, 4}, 2)}));
}

TEST(Embedding, F32) {
  Var weight(random_tensor({6, 4}, 3).to(DType::F32), true);
  Var out = embedding(Tensor::from(std::vector<int64_t>{5, 5}, {2}), weight);
  EXPECT_EQ(out.dtype(), DType::F32);
  out.backward(Tensor::full({2, 4}, 1.0f));
  EXPECT_EQ(weight.grad().at(5 * 4 + 1), 2.0);
  EXPECT_EQ(weight.grad().at(0), 0.0);
}

TEST(Embedding, Errors) {
  Var weight(Tensor::zeros({5, 3}));
  EXPECT_EQ(error_of([&] { embedding(Tensor::from(std::vector<int64_t>{0, 7}, {2}), weight); }),
            "[embedding] id 7 (element 1 of ids (2)) is out of range for a table of V = 5 rows");
  EXPECT_EQ(error_of([&] { embedding(Tensor::from(std::vector<int64_t>{-1}, {1}), weight); }),
            "[embedding] id -1 (element 0 of ids (1)) is out of range for a table of V = 5 rows");
  EXPECT_EQ(error_of([&] { embedding(Tensor::zeros({2}), weight); }), "[embedding] ids must be I64, got F32");
  EXPECT_EQ(error_of([&] { embedding(Tensor::zeros({2}, DType::I64), Var(Tensor::zeros({5}))); }),
            "[embedding] weight must be (V, D), got shape (5)");
}
