// Multi-layer perceptron.
#include "nn/mlp.h"

#include <cmath>

#include "ops/matmul.h"

namespace mega {

static Tensor uniform(const Shape& shape, double bound, Rng& rng) {
  Tensor t = Tensor::empty(shape);
  uint64_t stream = rng.next_stream();
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i)
    p[i] = static_cast<float>((2.0 * rng.uniform(stream, static_cast<uint64_t>(i)) - 1.0) * bound);
  return t;
}

Mlp::Mlp(const std::vector<int64_t>& sizes, Activation activation, Rng& rng) : activation_(activation) {
  MEGA_CHECK(sizes.size() >= 2, "[Mlp] needs at least an input and an output size");
  for (size_t i = 0; i + 1 < sizes.size(); ++i) {
    double bound = 1.0 / std::sqrt(static_cast<double>(sizes[i]));
    weights_.push_back(Var::parameter(uniform({sizes[i + 1], sizes[i]}, bound, rng)));
    biases_.push_back(Var::parameter(uniform({sizes[i + 1]}, bound, rng)));
  }
}

Var Mlp::forward(const Var& x) const {
  Var h = x;
  for (size_t i = 0; i < weights_.size(); ++i) {
    h = linear(h, weights_[i], biases_[i]);
    if (i + 1 < weights_.size()) h = activate(activation_, h);
  }
  return h;
}

std::vector<Var> Mlp::parameters() const {
  std::vector<Var> all;
  for (size_t i = 0; i < weights_.size(); ++i) {
    all.push_back(weights_[i]);
    all.push_back(biases_[i]);
  }
  return all;
}

}  // namespace mega
