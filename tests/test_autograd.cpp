// The autograd engine: accumulation, freeing, no_grad, loud failures, and a gradcheck that can fail.
#include <gtest/gtest.h>

#include <cmath>

#include "ops/activation.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/reduce.h"
#include "tests/gradcheck_util.h"

using namespace mega;
using mega::testing::random_tensor;

TEST(Autograd, GradientOfAValueUsedTwiceAccumulates) {
  Var x(Tensor::from(std::vector<double>{3.0}, {1}), true);
  Var y = sum(x * x + x);  // dy/dx = 2x + 1 = 7
  y.backward();
  EXPECT_DOUBLE_EQ(x.grad().at(0), 7.0);
}

TEST(Autograd, LeafGradientsAccumulateAcrossBackwardCalls) {
  Var x(Tensor::from(std::vector<double>{2.0}, {1}), true);
  sum(x * 3.0).backward();
  sum(x * 3.0).backward();
  EXPECT_DOUBLE_EQ(x.grad().at(0), 6.0);
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, SecondBackwardOverAFreedGraphFailsLoudly) {
  Var x(Tensor::from(std::vector<double>{2.0}, {1}), true);
  Var y = sum(exp(x));
  y.backward();
  EXPECT_THROW(y.backward(), Error);
}

TEST(Autograd, OpWithoutBackwardFailsLoudly) {
  Var x(Tensor::from(std::vector<double>{1.0}, {1}), true);
  Var y = record("not_differentiable", x.value().clone(), {x}, nullptr);
  EXPECT_THROW(sum(y).backward(), Error);
}

TEST(Autograd, NoGradRecordsNothingAndDetachCuts) {
  Var x(Tensor::from(std::vector<double>{1.0}, {1}), true);
  {
    NoGradGuard guard;
    EXPECT_FALSE((x * 2.0).requires_grad());
  }
  EXPECT_TRUE((x * 2.0).requires_grad());
  EXPECT_FALSE(x.detach().requires_grad());
}

TEST(Autograd, DeepChainDoesNotOverflowTheStack) {
  Var x(Tensor::from(std::vector<double>{1.0}, {1}), true);
  Var y = x;
  for (int i = 0; i < 100000; ++i) y = y * 1.0;
  sum(y).backward();
  EXPECT_DOUBLE_EQ(x.grad().at(0), 1.0);
  Var z = x;  // dropped without a backward: destruction must not recurse either
  for (int i = 0; i < 100000; ++i) z = z * 1.0;
}

TEST(Gradcheck, PassesOnACorrectBackward) {
  EXPECT_GRADCHECK([](const std::vector<Var>& v) { return tanh(matmul(v[0], v[1])); },
                   (std::vector<Tensor>{random_tensor({3, 4}, 1), random_tensor({4, 2}, 2)}));
}

TEST(Gradcheck, FailsOnADeliberatelyWrongBackward) {
  // sin with the derivative of cos: the check must catch it and say where.
  auto wrong_sin = [](const std::vector<Var>& v) {
    Tensor x = v[0].value();
    Tensor out = Tensor::empty(x.shape(), x.dtype());
    for (int64_t i = 0; i < x.numel(); ++i) out.data<double>()[i] = std::sin(x.data<double>()[i]);
    return record("wrong_sin", out, {v[0]}, [x](const Tensor& g) -> std::vector<Tensor> {
      Tensor gx = Tensor::empty(x.shape(), x.dtype());
      for (int64_t i = 0; i < x.numel(); ++i)
        gx.data<double>()[i] = -std::sin(x.data<double>()[i]) * g.data<double>()[i];
      return {gx};
    });
  };
  GradcheckReport report = gradcheck(wrong_sin, {random_tensor({5}, 3)});
  EXPECT_FALSE(report.ok);
  EXPECT_NE(report.message.find("input 0"), std::string::npos) << report.message;
}

TEST(Gradcheck, FailsWhenAGradientIsMissing) {
  // An op that claims to depend on two inputs but returns a zero for the second.
  auto half_backward = [](const std::vector<Var>& v) {
    Var y = v[0] * v[1];
    Tensor out = y.value().clone();
    Tensor b = v[1].value();
    return record("half", out, {v[0], v[1]}, [b](const Tensor& g) -> std::vector<Tensor> {
      Tensor ga = Tensor::empty(g.shape(), g.dtype());
      for (int64_t i = 0; i < g.numel(); ++i) ga.data<double>()[i] = g.data<double>()[i] * b.data<double>()[i];
      return {ga, Tensor::zeros(b.shape(), b.dtype())};
    });
  };
  EXPECT_FALSE(gradcheck(half_backward, {random_tensor({4}, 4), random_tensor({4}, 5)}).ok);
}
