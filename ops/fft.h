// Batched real FFTs in single precision on FFTW, for the convolutions of the EMA. Plans are made once per
// (length, batch) with FFTW_ESTIMATE (the same plan every run, so the same results) and kept until exit;
// limits: F32 only, out of place.
#pragma once
#include <complex>
#include <cstdint>
#include <memory>

namespace mega::fft {

// The smallest length >= at_least of the form 2^a 3^b 5^c 7^d with a >= 1: sizes FFTW's codelets cover
// (never a large prime factor), even so the real transform halves cleanly.
int64_t fast_length(int64_t at_least);

// Buffers from fftwf_malloc, aligned for FFTW's SIMD. Plans are made FFTW_UNALIGNED, so forward/inverse
// also accept sub-blocks of such buffers at any offset.
struct FreeFftw {
  void operator()(void* p) const;
};
template <class T> using Buffer = std::unique_ptr<T[], FreeFftw>;
Buffer<float> real_buffer(int64_t count);
Buffer<std::complex<float>> complex_buffer(int64_t count);

// `batch` signals of length n, each contiguous: real (batch, n) -> spectrum (batch, n/2 + 1). Unnormalised.
// Keeps `real`. Safe to call from many threads at once (planning is serialised, execution is not).
void forward(int64_t n, int64_t batch, const float* real, std::complex<float>* spectrum);
// spectrum (batch, n/2 + 1) -> real (batch, n), unnormalised (n times the inverse). Overwrites `spectrum`.
void inverse(int64_t n, int64_t batch, std::complex<float>* spectrum, float* real);

}  // namespace mega::fft
