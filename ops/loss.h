// Losses, each a mean (0-d). Shapes: logits (N, C), targets I64 (N) for cross_entropy; logits and targets
// of the same shape (targets F32) for bce_with_logits and mse.
#pragma once
#include "autograd/variable.h"

namespace mega {

// Mean over targets != ignore_index; label_smoothing as in PyTorch. All ignored gives 0 (not NaN).
Var cross_entropy(const Var& logits, const Tensor& targets, int64_t ignore_index = -100,
                  double label_smoothing = 0.0);
Var bce_with_logits(const Var& logits, const Tensor& targets);
Var mse(const Var& prediction, const Tensor& target);

}  // namespace mega
