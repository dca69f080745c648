// Internal to ops/ and its tests: the EMA with its convolution path chosen by the caller, so tests can
// compare each path with the reference and the benchmark can time both sides of the crossover.
#pragma once
#include "ops/ema.h"

namespace mega {

enum class EmaPath {
  Auto,    // direct below the measured crossover (and always for F64), FFT above it
  Fft,     // FFTW single precision; F32 only
  Direct,  // O(L K) sums, F32 or F64
};

Var ema_with_path(const Var& x, const EmaParams& params, const Tensor& padding_mask, bool bidirectional,
                  int64_t truncation, EmaPath path);

// The path Auto takes for this length L, kernel length K and number of directions (1 or 2), for F32.
EmaPath ema_auto_path(int64_t length, int64_t kernel_length, int directions);

}  // namespace mega
