// A multi-layer perceptron: Linear -> activation -> ... -> Linear. The engine's smallest real model
// (make train's smoke run before recipes exist) and the shape of the LRA classifier head.
#pragma once
#include <vector>

#include "core/rng.h"
#include "ops/activation.h"

namespace mega {

class Mlp {
 public:
  // sizes = {in, hidden..., out}; weights ~ U(-1/sqrt(in), 1/sqrt(in)) as PyTorch's Linear, biases too.
  Mlp(const std::vector<int64_t>& sizes, Activation activation, Rng& rng);
  Var forward(const Var& x) const;  // x (..., in) -> (..., out)
  std::vector<Var> parameters() const;

 private:
  std::vector<Var> weights_, biases_;
  Activation activation_;
};

}  // namespace mega
