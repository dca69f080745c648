// Losses against hand-computed values (cross-entropy with ignore_index and label smoothing as PyTorch
// defines them, the stable BCE form, MSE), gradchecks, stability at large logits and the all-ignored case.
#include <gtest/gtest.h>

#include <cmath>

#include "core/threading.h"
#include "ops/loss.h"
#include "tests/gradcheck_util.h"

using namespace mega;
using mega::testing::error_of;
using mega::testing::random_tensor;

namespace {

// Three rows of three classes; row 2 is ignored (-100).
Tensor example_logits() { return Tensor::from(std::vector<double>{1, 2, 3, 0, 0, 0, 5, -5, 0}, {3, 3}); }
Tensor example_targets() { return Tensor::from(std::vector<int64_t>{2, 0, -100}, {3}); }

}  // namespace

TEST(LossCrossEntropy, HandValueWithIgnoreIndex) {
  // Row 0: -log softmax(1, 2, 3)[2] = log(e + e^2 + e^3) - 3. Row 1: log 3. Mean over the 2 kept rows.
  double row0 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0)) - 3;
  double row1 = std::log(3.0);
  Var loss = cross_entropy(Var(example_logits()), example_targets());
  EXPECT_EQ(loss.dim(), 0);
  EXPECT_NEAR(loss.item(), (row0 + row1) / 2, 1e-14);
}

TEST(LossCrossEntropy, HandValueWithLabelSmoothing) {
  // PyTorch: (1 - eps) * nll + eps * mean over classes of -log p, averaged over kept rows.
  const double eps = 0.1;
  double lse0 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  double row0 = (1 - eps) * (lse0 - 3) + eps * ((lse0 - 1) + (lse0 - 2) + (lse0 - 3)) / 3;
  double row1 = (1 - eps) * std::log(3.0) + eps * std::log(3.0);
  Var loss = cross_entropy(Var(example_logits()), example_targets(), -100, eps);
  EXPECT_NEAR(loss.item(), (row0 + row1) / 2, 1e-14);
}

TEST(LossCrossEntropy, HandGradient) {
  // d loss / d logits = (softmax - onehot) / kept rows, zero on the ignored row.
  Var logits(example_logits(), true);
  cross_entropy(logits, example_targets()).backward();
  double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  EXPECT_NEAR(logits.grad().at(0), std::exp(1.0) / z / 2, 1e-15);
  EXPECT_NEAR(logits.grad().at(2), (std::exp(3.0) / z - 1) / 2, 1e-15);
  EXPECT_NEAR(logits.grad().at(3), (1.0 / 3 - 1) / 2, 1e-15);
  EXPECT_NEAR(logits.grad().at(4), 1.0 / 3 / 2, 1e-15);
  for (int64_t i = 6; i < 9; ++i) EXPECT_EQ(logits.grad().at(i), 0.0);
}

TEST(LossCrossEntropy, Gradcheck) {
  Tensor targets = Tensor::from(std::vector<int64_t>{3, -100, 0, 4, 1}, {5});
  EXPECT_GRADCHECK([&](const std::vector<Var>& v) { return cross_entropy(v[0], targets); },
                   (std::vector<Tensor>{random_tensor({5, 6}, 1, 2.0)}));
}

TEST(LossCrossEntropy, GradcheckWithLabelSmoothingAndACustomIgnoreIndex) {
  Tensor targets = Tensor::from(std::vector<int64_t>{2, 7, 0, 7}, {4});  // 7 is the ignore index here
  EXPECT_GRADCHECK([&](const std::vector<Var>& v) { return cross_entropy(v[0], targets, 7, 0.2); },
                   (std::vector<Tensor>{random_tensor({4, 3}, 2, 2.0)}));
}

TEST(LossCrossEntropy, AllIgnoredGivesZeroNotNaN) {
  Var logits(random_tensor({2, 4}, 3), true);
  Var loss = cross_entropy(logits, Tensor::from(std::vector<int64_t>{-100, -100}, {2}), -100, 0.1);
  EXPECT_EQ(loss.item(), 0.0);
  loss.backward();
  for (int64_t i = 0; i < 8; ++i) EXPECT_EQ(logits.grad().at(i), 0.0);
}

TEST(LossCrossEntropy, StableAtLargeLogits) {
  Var logits(Tensor::from(std::vector<float>{1000, 0, -1000, 0, 1000, 0}, {2, 3}), true);
  Var loss = cross_entropy(logits, Tensor::from(std::vector<int64_t>{0, 0}, {2}));
  EXPECT_NEAR(loss.item(), (0.0 + 1000.0) / 2, 1e-3);  // row 0 certain and right, row 1 off by 1000
  loss.backward();
  for (int64_t i = 0; i < 6; ++i) EXPECT_TRUE(std::isfinite(logits.grad().at(i))) << i;
  EXPECT_NEAR(logits.grad().at(3), -0.5, 1e-6);
  EXPECT_NEAR(logits.grad().at(4), 0.5, 1e-6);
}

TEST(LossCrossEntropy, Errors) {
  Var logits(Tensor::zeros({2, 3}));
  EXPECT_EQ(error_of([&] { cross_entropy(logits, Tensor::from(std::vector<int64_t>{0, 3}, {2})); }),
            "[cross_entropy] target 3 (row 1) is out of range for C = 3 classes (ignore_index is -100)");
  EXPECT_EQ(error_of([&] { cross_entropy(logits, Tensor::from(std::vector<int64_t>{0, 1, 2}, {3})); }),
            "[cross_entropy] targets have shape (3) but logits have shape (2, 3) (expected (2))");
  EXPECT_EQ(error_of([&] { cross_entropy(logits, Tensor::zeros({2})); }),
            "[cross_entropy] targets must be I64, got F32");
  EXPECT_EQ(error_of([&] { cross_entropy(Var(Tensor::zeros({6})), Tensor::zeros({6}, DType::I64)); }),
            "[cross_entropy] logits must be (N, C), got shape (6)");
}

TEST(LossBce, HandValue) {
  // x = 0, y = 1: log 2. x = 2, y = 0: log(1 + e^2). x = -1, y = 0.25: log(1 + e^-1) + 0.25.
  Tensor x = Tensor::from(std::vector<double>{0, 2, -1}, {3}), y = Tensor::from(std::vector<double>{1, 0, 0.25}, {3});
  double expected = (std::log(2.0) + std::log(1 + std::exp(2.0)) + std::log(1 + std::exp(-1.0)) + 0.25) / 3;
  EXPECT_NEAR(bce_with_logits(Var(x), y).item(), expected, 1e-14);
}

TEST(LossBce, Gradcheck) {
  Tensor targets = Tensor::from(std::vector<double>{1, 0, 0, 1, 0.5, 1, 0, 1}, {2, 4});
  EXPECT_GRADCHECK([&](const std::vector<Var>& v) { return bce_with_logits(v[0], targets); },
                   (std::vector<Tensor>{random_tensor({2, 4}, 4, 3.0)}));
}

TEST(LossBce, StableAtLargeLogitsAndF32Targets) {
  Var x(Tensor::from(std::vector<float>{100, -100, 100}, {3}), true);
  Var loss = bce_with_logits(x, Tensor::from(std::vector<float>{0, 1, 1}, {3}));
  EXPECT_NEAR(loss.item(), 200.0 / 3, 1e-4);
  loss.backward();
  EXPECT_NEAR(x.grad().at(0), 1.0 / 3, 1e-7);
  EXPECT_NEAR(x.grad().at(1), -1.0 / 3, 1e-7);
  EXPECT_NEAR(x.grad().at(2), 0.0, 1e-7);
}

TEST(LossMse, HandValueAndGradient) {
  Var p(Tensor::from(std::vector<double>{1, 2, 3}, {3}), true);
  Var loss = mse(p, Tensor::from(std::vector<double>{0, 2, 5}, {3}));
  EXPECT_NEAR(loss.item(), (1.0 + 0.0 + 4.0) / 3, 1e-15);
  loss.backward();
  EXPECT_NEAR(p.grad().at(0), 2.0 / 3, 1e-15);
  EXPECT_NEAR(p.grad().at(2), -4.0 / 3, 1e-15);
}

TEST(LossMse, Gradcheck) {
  Tensor target = random_tensor({3, 2}, 5);
  EXPECT_GRADCHECK([&](const std::vector<Var>& v) { return mse(v[0], target); },
                   (std::vector<Tensor>{random_tensor({3, 2}, 6)}));
}

TEST(LossMse, Errors) {
  EXPECT_EQ(error_of([&] { mse(Var(Tensor::zeros({3})), Tensor::zeros({3, 1})); }),
            "[mse] target has shape (3, 1) but prediction has shape (3)");
  EXPECT_EQ(error_of([&] { bce_with_logits(Var(Tensor::zeros({2})), Tensor::zeros({2}, DType::I64)); }),
            "[bce_with_logits] target must be F32 or F64, got I64");
}

TEST(LossCrossEntropy, LargeF32IndependentOfThreadCountAndCloseToF64) {
  // Big enough to run in parallel: the fixed-block sums must give the same bits for 1 and 2 threads.
  const int64_t N = 512, C = 1000;
  Tensor logits = random_tensor({N, C}, 7, 3.0);
  std::vector<int64_t> t(N);
  for (int64_t i = 0; i < N; ++i) t[i] = i % 7 == 0 ? -100 : (i * 37) % C;
  Tensor targets = Tensor::from(t, {N});
  auto run = [&](int threads, DType dtype) {
    set_num_threads(threads);
    Var x(logits.to(dtype), true);
    Var loss = cross_entropy(x, targets, -100, 0.1);
    loss.backward();
    set_num_threads(0);
    return std::pair{loss.item(), x.grad().to_vector()};
  };
  auto one = run(1, DType::F32), two = run(2, DType::F32), exact = run(1, DType::F64);
  EXPECT_EQ(one.first, two.first);
  EXPECT_EQ(one.second, two.second);
  EXPECT_NEAR(one.first, exact.first, 1e-5 * std::abs(exact.first));
}
