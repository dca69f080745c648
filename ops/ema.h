// The multi-dimensional damped EMA of Mega (paper Sec. 3.1, Eq. 2-5), HF's MegaMultiDimensionDampedEma.
// Shapes: B batch, L length, D model dim, D' = D (unidirectional) or 2D (bidirectional), N EMA dims.
//   delta (damping_factor), alpha (decay_factor), beta (ema_expansion_matrix): (D', N, 1)
//   gamma (kernel_projection_matrix): (D', N); omega (residual_weight): (D)
// p = sigmoid(delta), q = 1 - p * sigmoid(alpha)                                   (Eq. 3)
// kernel k[d, t] = sum_n p beta q^t gamma sqrt(1/N), t < K = min(truncation, L)    (Eq. 4-5)
// Unidirectional:  y[t] = sum_{0 <= t-j < K} k[t-j] x[j]
// Bidirectional:   rows 0..D-1 run forward, rows D..2D-1 backward over the same x, summed (the current
//                  token counts in both directions).
// x is zeroed at padding first; the output is silu(y + omega * x) with the unmasked x.
#pragma once
#include "autograd/variable.h"

namespace mega {

struct EmaParams {
  Var delta, alpha, beta, gamma, omega;
};

// x (B, L, D); padding_mask (B, L) I64 or F32, nonzero = token, or undefined; truncation <= 0 means none.
// Convolves by FFT (FFTW, F32) past a measured crossover in L and K, directly below it; F64 (gradient
// checks) always takes the direct path. Backward is analytic (ops/ema.cpp derives it).
Var ema(const Var& x, const EmaParams& params, const Tensor& padding_mask, bool bidirectional,
        int64_t truncation = 0);
// The same function by the plain recurrence h_t = q h_{t-1} + p beta x_t (and its mirror), built from
// primitive ops so its gradient comes from autograd: the slow reference every fast path is tested against.
Var ema_reference(const Var& x, const EmaParams& params, const Tensor& padding_mask, bool bidirectional,
                  int64_t truncation = 0);
// The kernel k (D', K) for K = length, no autograd.
Tensor ema_kernel(const EmaParams& params, int64_t length);

// One decoding step of a unidirectional EMA without truncation, no autograd: x_t (B, D); state (B, D, N)
// holds h_{t-1} and is updated to h_t; returns silu(y_t + omega x_t) (B, D). token (B) nonzero = token,
// or undefined; a padding step feeds zero into the state.
Tensor ema_step(const Tensor& x_t, const EmaParams& params, Tensor& state, const Tensor& token = Tensor());

}  // namespace mega
