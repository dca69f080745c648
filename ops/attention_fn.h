// The attention functions of Mega (Sec. 3.2 and App. of the paper, HF's attention_activation).
// Shapes: x any, normalised along the last axis for softmax and log_softmax.
#pragma once
#include "autograd/variable.h"

namespace mega {

Var softmax(const Var& x);      // along the last axis; a row that is entirely -inf gives zeros, not NaN
Var log_softmax(const Var& x);  // along the last axis
Var laplace(const Var& x);      // 0.5 (1 + erf((x - mu) / (sigma sqrt 2))), mu = sqrt(1/2), sigma = sqrt(1/(4 pi))
Var relu2(const Var& x);        // relu(x)^2

}  // namespace mega
