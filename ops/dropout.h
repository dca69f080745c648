// Dropout from the counter-based RNG: the mask depends on (seed, stream, element), not on threads.
// Shapes: x any for dropout; x (B, L, D) for feature_dropout, which drops whole features of an example
// for every position (HF's FeatureDropout / dropout2d over the sequence).
#pragma once
#include "autograd/variable.h"
#include "core/rng.h"

namespace mega {

// Identity when !training or p == 0. Survivors are scaled by 1/(1-p). Draws one stream from rng.
Var dropout(const Var& x, double p, bool training, Rng& rng);
Var feature_dropout(const Var& x, double p, bool training, Rng& rng);
// The same with a given keep-mask (1 keep, 0 drop, shaped like x): for tests and gradient checks.
Var dropout_with_mask(const Var& x, const Tensor& keep, double p);

}  // namespace mega
