// Matrix products on oneDNN (F32), with a plain reference kernel for F64 (gradient checks).
// Shapes: a (M, K) or (B, M, K); b (K, N) or (B, K, N); a 2-D operand broadcasts over the batch.
// trans_a / trans_b read an operand as its transpose through strides, never by copying.
#pragma once
#include "autograd/variable.h"

namespace mega {

Var matmul(const Var& a, const Var& b, bool trans_a = false, bool trans_b = false);
// x (..., in), weight (out, in) as in PyTorch, bias (out) or undefined -> (..., out).
Var linear(const Var& x, const Var& weight, const Var& bias = Var());

// The raw kernel (no autograd): c = op(a) @ op(b) (+ c if accumulate), for callers inside other ops.
void matmul_into(const Tensor& a, const Tensor& b, Tensor& c, bool trans_a, bool trans_b,
                 bool accumulate = false);

}  // namespace mega
