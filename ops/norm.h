// Normalisations of Mega. Shapes: x (..., D) normalised over the last axis, except batch_norm whose x is
// (B, L, D) with statistics over B and L per feature D.
#pragma once
#include "autograd/variable.h"

namespace mega {

// scalar * x / sqrt(mean(x^2) + eps); scalar (1) or undefined (no gain).
Var scale_norm(const Var& x, const Var& scalar, double eps = 1e-5);
// (x - mean) / sqrt(var + eps) * weight + bias; weight, bias (D) or undefined (no affine).
Var layer_norm(const Var& x, const Var& weight, const Var& bias, double eps = 1e-5);
// x / sqrt(mean(x^2) + eps) * weight; weight (D) or undefined.
Var rms_norm(const Var& x, const Var& weight, double eps = 1e-5);

struct BatchNormState {
  Tensor running_mean;  // (D) F32
  Tensor running_var;   // (D) F32
  Tensor num_batches_tracked;  // 0-d I64
};
// Train: normalises with the batch's biased variance and updates `state` with momentum (unbiased
// variance in running_var). Eval: normalises with the running statistics. weight, bias (D) or undefined.
Var batch_norm(const Var& x, const Var& weight, const Var& bias, BatchNormState& state, bool training,
               double momentum = 0.1, double eps = 1e-5);

}  // namespace mega
