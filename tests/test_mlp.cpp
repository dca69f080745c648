// End to end through the engine: an MLP fits a generated regression task to near-zero loss.
#include <gtest/gtest.h>

#include <cmath>

#include "nn/mlp.h"
#include "ops/elementwise.h"
#include "ops/reduce.h"

using namespace mega;

TEST(Mlp, FitsAGeneratedTaskToNearZeroLoss) {
  Rng rng(0);
  const int points = 128;
  Tensor x = Tensor::empty({points, 2}), y = Tensor::empty({points, 1});
  for (int i = 0; i < points; ++i) {
    float a = 2 * rng.uniform(99, i, 0) - 1, b = 2 * rng.uniform(99, i, 1) - 1;
    x.data<float>()[2 * i] = a;
    x.data<float>()[2 * i + 1] = b;
    y.data<float>()[i] = std::sin(3 * a) * b;
  }
  Mlp mlp({2, 32, 32, 1}, Activation::Tanh, rng);
  std::vector<Var> params = mlp.parameters();
  std::vector<Tensor> velocity;
  for (const Var& p : params) velocity.push_back(Tensor::zeros(p.shape()));
  double first = 0, last = 0;
  for (int step = 0; step < 1500; ++step) {
    Var loss = mean(square(mlp.forward(Var(x)) - Var(y)));
    for (const Var& p : params) p.zero_grad();
    loss.backward();
    (step == 0 ? first : last) = loss.item();
    for (size_t i = 0; i < params.size(); ++i) {
      float* w = params[i].value_mut().data<float>();
      float* v = velocity[i].data<float>();
      const float* g = params[i].grad().data<float>();
      for (int64_t j = 0; j < params[i].numel(); ++j) w[j] -= 0.05f * (v[j] = 0.9f * v[j] + g[j]);
    }
  }
  EXPECT_GT(first, 0.1);
  EXPECT_LT(last, 2e-3) << "loss went from " << first << " to " << last;
}
