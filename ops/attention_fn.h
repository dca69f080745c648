// The attention functions of Mega (Sec. 3.2 and App. of the paper, HF's attention_activation).
// Shapes: x any, normalised along the last axis for softmax and log_softmax.
#pragma once
#include <cmath>

#include "autograd/variable.h"

namespace mega {

Var softmax(const Var& x);      // along the last axis; a row that is entirely -inf gives zeros, not NaN
Var log_softmax(const Var& x);  // along the last axis; a row entirely -inf gives -inf and no gradient
Var laplace(const Var& x);      // 0.5 (1 + erf((x - mu) / (sigma sqrt 2))), mu = sqrt(1/2), sigma = sqrt(1/(4 pi))
Var relu2(const Var& x);        // relu(x)^2

// Scalar forms and derivatives, shared with the fused attention kernel (ops/attention.cpp).
// mu and sigma are HF's (and fairseq's) literals 0.707107 and 0.282095, i.e. sqrt(1/2) and
// sqrt(1/(4 pi)) rounded to six digits: the fixtures were produced with these.
namespace attention_scalar {
inline constexpr double laplace_mu = 0.707107;
inline constexpr double laplace_sigma = 0.282095;
template <class T> T laplace(T x) {
  return T(0.5) * (1 + std::erf((x - T(laplace_mu)) / T(laplace_sigma * M_SQRT2)));
}
// d/dx = exp(-z^2) / (sigma sqrt(2 pi)), z = (x - mu) / (sigma sqrt 2): the normal density.
template <class T> T laplace_derivative(T x) {
  T z = (x - T(laplace_mu)) / T(laplace_sigma * M_SQRT2);
  return std::exp(-z * z) / T(laplace_sigma * std::sqrt(2 * M_PI));
}
template <class T> T relu2(T x) { return x > 0 ? x * x : T(0); }
template <class T> T relu2_derivative(T x) { return x > 0 ? 2 * x : T(0); }
}  // namespace attention_scalar

}  // namespace mega
