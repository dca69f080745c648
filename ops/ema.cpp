// The multi-dimensional damped EMA of Mega (paper Sec. 3.1): forward and hand-written backward by FFT
// (FFTW, F32) or by direct O(L K) sums, the slow reference by the recurrence, the kernel, the decoding step.
// Shapes: B batch, L length, D model dim, D' = D or 2D (bidirectional), N EMA dims, K = min(truncation, L)
// kernel length, n FFT length (>= L + K - 1), F = n/2 + 1 frequency bins, C channels per block.
//
// Layout: the FFT path reads x (B, L, D) a block of C channels at a time into C contiguous rows zero-padded
// to n, so FFTW runs C transforms per call and each block owns its kernel rows. The direct path stays in
// x's layout and vectorises across 16 adjacent channels. Work items are blocks of channels (and batches
// where no sum over the batch is needed), so no two threads write one element and sums are deterministic.
// Both directions of a bidirectional EMA share one FFT: the forward kernel k1 sits at lags 0..K-1 and the
// backward kernel k2 at lags -(K-1)..0, stored wrapped at n-s. Because n >= L + K - 1, the circular
// convolution of a length-L signal with taps at lags -(K-1)..K-1 does not alias onto outputs 0..L-1.
#include "ops/ema.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "autograd/profile.h"
#include "core/threading.h"
#include "ops/activation.h"
#include "ops/elementwise.h"
#include "ops/ema_internal.h"
#include "ops/fft.h"
#include "ops/reduce.h"
#include "ops/shape.h"
#include "ops/vector_math.h"

namespace mega {
namespace {

constexpr int64_t kBlock = 16;  // channels per FFT batch and work item: one 64-byte line of x per position

// Auto takes the direct path while directions * L * K <= kFftCost * n log2 n: the direct path does
// directions * L * K multiply-adds per channel, the FFT path a few transforms of about n log2 n each.
// Measured (B 8, D 128, N 16, bidirectional, K = L, one thread, CPU ms of forward + backward, direct / FFT):
// L 32: 1.8 / 2.4, L 48: 3.0 / 3.0, L 64: 4.8 / 4.1, L 96: 8.2 / 6.0, L 128: 12.5 / 7.8, L 256: 37 / 12.5,
// L 1024: 746 / 44. They meet at L = K = 48, where 2 L K = 7.3 n log2 n (n = 96).
constexpr double kFftCost = 7;

struct Dims {
  int64_t B, L, D, N;
  int64_t rows;  // D'
  int64_t K;
  bool bidirectional;
};

std::string shape_of(const Var& v) { return v.defined() ? shape_str(v.shape()) : "undefined"; }

// Checks delta, alpha, beta (rows, N, 1) and gamma (rows, N) in `dtype`; returns N. `rows` < 0: any.
int64_t check_coefficients(const EmaParams& params, int64_t rows, DType dtype, const std::string& needs) {
  MEGA_CHECK(params.delta.defined() && params.delta.dim() == 3 && params.delta.size(2) == 1,
             "[ema] delta must have shape (D', N, 1), got ", shape_of(params.delta));
  int64_t N = params.delta.size(1);
  if (rows < 0) rows = params.delta.size(0);
  Shape coefficient = {rows, N, 1};
  MEGA_CHECK(params.delta.shape() == coefficient, "[ema] delta has shape ", shape_of(params.delta), " but ",
             needs, " needs ", shape_str(coefficient));
  MEGA_CHECK(params.alpha.defined() && params.alpha.shape() == coefficient, "[ema] alpha has shape ",
             shape_of(params.alpha), " but ", needs, " needs ", shape_str(coefficient));
  MEGA_CHECK(params.beta.defined() && params.beta.shape() == coefficient, "[ema] beta has shape ",
             shape_of(params.beta), " but ", needs, " needs ", shape_str(coefficient));
  MEGA_CHECK(params.gamma.defined() && params.gamma.shape() == Shape({rows, N}), "[ema] gamma has shape ",
             shape_of(params.gamma), " but ", needs, " needs ", shape_str({rows, N}));
  for (const Var* v : {&params.delta, &params.alpha, &params.beta, &params.gamma})
    MEGA_CHECK(v->dtype() == dtype, "[ema] parameters are ", dtype_name(v->dtype()), " but x is ",
               dtype_name(dtype));
  return N;
}

Dims check_ema(const Var& x, const EmaParams& params, const Tensor& mask, bool bidirectional,
               int64_t truncation) {
  MEGA_CHECK(x.defined() && x.dim() == 3, "[ema] x must be (B, L, D), got ", shape_of(x));
  MEGA_CHECK(x.dtype() == DType::F32 || x.dtype() == DType::F64, "[ema] x must be F32 or F64, got ",
             dtype_name(x.dtype()));
  Dims dm;
  dm.B = x.size(0), dm.L = x.size(1), dm.D = x.size(2);
  MEGA_CHECK(dm.B > 0 && dm.L > 0 && dm.D > 0, "[ema] x has an empty dimension: ", shape_of(x));
  dm.bidirectional = bidirectional;
  dm.rows = bidirectional ? 2 * dm.D : dm.D;
  std::string needs = std::string(bidirectional ? "a bidirectional" : "a unidirectional") +
                      " EMA over D = " + std::to_string(dm.D);
  dm.N = check_coefficients(params, dm.rows, x.dtype(), needs);
  MEGA_CHECK(params.omega.defined() && params.omega.shape() == Shape({dm.D}), "[ema] omega has shape ",
             shape_of(params.omega), " but x ", shape_of(x), " needs (", dm.D, ")");
  MEGA_CHECK(params.omega.dtype() == x.dtype(), "[ema] omega is ", dtype_name(params.omega.dtype()),
             " but x is ", dtype_name(x.dtype()));
  if (mask.defined())
    MEGA_CHECK(mask.shape() == Shape({dm.B, dm.L}), "[ema] padding_mask has shape ", shape_str(mask.shape()),
               " but x ", shape_of(x), " needs (", dm.B, ", ", dm.L, ")");
  dm.K = truncation > 0 ? std::min(truncation, dm.L) : dm.L;
  return dm;
}

// 1 for a token, 0 for padding, per (B, L); empty when there is no mask.
template <class T> std::vector<T> token_weights(const Tensor& mask) {
  std::vector<T> token;
  if (!mask.defined()) return token;
  token.resize(static_cast<size_t>(mask.numel()));
  for (int64_t i = 0; i < mask.numel(); ++i) token[i] = mask.at(i) != 0 ? T(1) : T(0);
  return token;
}

// Per (d', n), in double whatever the dtype: p = sigmoid(delta), a = sigmoid(alpha), q = 1 - p a (Eq. 3),
// c = p beta gamma sqrt(1/N), the coefficient of q^t in the kernel (Eq. 4-5).
struct Coefficients {
  std::vector<double> p, a, q, c, beta, gamma;
  double scale = 1;
};

Coefficients coefficients(const EmaParams& params, int64_t rows, int64_t N) {
  Coefficients co;
  size_t count = static_cast<size_t>(rows * N);
  for (auto* v : {&co.p, &co.a, &co.q, &co.c, &co.beta, &co.gamma}) v->resize(count);
  co.scale = std::sqrt(1.0 / static_cast<double>(N));
  for (size_t i = 0; i < count; ++i) {
    co.p[i] = 1 / (1 + std::exp(-params.delta.value().at(i)));
    co.a[i] = 1 / (1 + std::exp(-params.alpha.value().at(i)));
    co.q[i] = 1 - co.p[i] * co.a[i];
    co.beta[i] = params.beta.value().at(i);
    co.gamma[i] = params.gamma.value().at(i);
    co.c[i] = co.p[i] * co.beta[i] * co.gamma[i] * co.scale;
  }
  return co;
}

// Eq. (4-5): k[d', t] = sum_n c[d', n] q[d', n]^t for t < K; powers by running products in double.
template <class T> void kernel_rows(const Coefficients& co, int64_t rows, int64_t N, int64_t K, T* k) {
  parallel_for(rows, rows * N * K < (1 << 16) ? INT64_MAX : 4, [&](int64_t lo, int64_t hi) {
    std::vector<double> power(static_cast<size_t>(N));
    for (int64_t d = lo; d < hi; ++d) {
      const double* c = &co.c[d * N];
      const double* q = &co.q[d * N];
      double* pw = power.data();
      std::fill(power.begin(), power.end(), 1.0);
      for (int64_t t = 0; t < K; ++t) {
        double acc = 0;
#pragma omp simd reduction(+ : acc)
        for (int64_t n = 0; n < N; ++n) {
          acc += c[n] * pw[n];
          pw[n] *= q[n];
        }
        k[d * K + t] = static_cast<T>(acc);
      }
    }
  });
}

// The kernel's gradient dk (D', K) chained to the parameters. With s = sqrt(1/N), for one (d', n):
//   k[t] = sum_n c q^t,  c = p beta gamma s,  q = 1 - p a,  p = sigmoid(delta),  a = sigmoid(alpha)
//   A0 = sum_{t<K} dk[t] q^t            (= dL/dc)
//   A1 = sum_{1<=t<K} t q^(t-1) dk[t]   (dL/dq = c A1)
//   dL/dbeta  = A0 p gamma s                  dL/dgamma = A0 p beta s
//   dL/dp     = A0 beta gamma s - a c A1      dL/da     = -p c A1
//   dL/ddelta = dL/dp p (1 - p)               dL/dalpha = dL/da a (1 - a)
// The sums over t run in double, so a long kernel with q near 1 keeps its precision in F32.
void kernel_backward(const Coefficients& co, int64_t rows, int64_t N, int64_t K, const double* dk,
                     Tensor& grad_delta, Tensor& grad_alpha, Tensor& grad_beta, Tensor& grad_gamma) {
  std::vector<double> a0(static_cast<size_t>(rows * N)), a1(static_cast<size_t>(rows * N));
  parallel_for(rows, rows * N * K < (1 << 16) ? INT64_MAX : 4, [&](int64_t lo, int64_t hi) {
    std::vector<double> power(static_cast<size_t>(N));
    for (int64_t d = lo; d < hi; ++d) {
      const double* q = &co.q[d * N];
      double* s0 = &a0[d * N];
      double* s1 = &a1[d * N];
      double* pw = power.data();  // q^(t-1) while adding term t
      std::fill(power.begin(), power.end(), 1.0);
      for (int64_t n = 0; n < N; ++n) s0[n] = dk[d * K], s1[n] = 0;
      for (int64_t t = 1; t < K; ++t) {
        double g = dk[d * K + t], tg = static_cast<double>(t) * g;
#pragma omp simd
        for (int64_t n = 0; n < N; ++n) {
          s1[n] += tg * pw[n];
          pw[n] *= q[n];
          s0[n] += g * pw[n];
        }
      }
    }
  });
  dispatch_floating(grad_delta.dtype(), "ema", [&]<class T>() {
    for (int64_t i = 0; i < rows * N; ++i) {
      double p = co.p[i], a = co.a[i], s = co.scale;
      double dq = co.c[i] * a1[i];
      double dp = a0[i] * co.beta[i] * co.gamma[i] * s - a * dq;
      double da = -p * dq;
      grad_beta.data<T>()[i] = static_cast<T>(a0[i] * p * co.gamma[i] * s);
      grad_gamma.data<T>()[i] = static_cast<T>(a0[i] * p * co.beta[i] * s);
      grad_delta.data<T>()[i] = static_cast<T>(dp * p * (1 - p));
      grad_alpha.data<T>()[i] = static_cast<T>(da * a * (1 - a));
    }
  });
}

// The two transposes below go through 16 x 16 tiles in L1: row c of the block is written (or read) 16
// positions, one cache line, at a time. Walking t and writing one float per row instead puts the C
// streams n floats apart, and for n a power of two they all land in the same cache sets.
constexpr int64_t kTile = 16;

// rows[c * stride + t] = x[b, t, d0 + c] * token[b, t] for t < L and 0 for L <= t < stride, c < count.
template <class T>
void gather(const T* x, const std::vector<T>& token, const Dims& dm, int64_t b, int64_t d0, int64_t count,
            int64_t stride, T* rows) {
  T tile[kTile][kTile];
  for (int64_t c0 = 0; c0 < count; c0 += kTile) {
    int64_t cn = std::min(kTile, count - c0);
    for (int64_t t0 = 0; t0 < dm.L; t0 += kTile) {
      int64_t tn = std::min(kTile, dm.L - t0);
      for (int64_t t = 0; t < tn; ++t) {
        const T* src = x + (b * dm.L + t0 + t) * dm.D + d0 + c0;
        T w = token.empty() ? T(1) : token[b * dm.L + t0 + t];
        for (int64_t c = 0; c < cn; ++c) tile[c][t] = src[c] * w;
      }
      for (int64_t c = 0; c < cn; ++c) std::copy(tile[c], tile[c] + tn, rows + (c0 + c) * stride + t0);
    }
  }
  for (int64_t c = 0; c < count; ++c) std::fill(rows + c * stride + dm.L, rows + (c + 1) * stride, T(0));
}

// out[b, t, d0 + c] = rows[c * stride + t] for t < L, c < count.
template <class T>
void scatter(const T* rows, const Dims& dm, int64_t b, int64_t d0, int64_t count, int64_t stride, T* out) {
  T tile[kTile][kTile];
  for (int64_t c0 = 0; c0 < count; c0 += kTile) {
    int64_t cn = std::min(kTile, count - c0);
    for (int64_t t0 = 0; t0 < dm.L; t0 += kTile) {
      int64_t tn = std::min(kTile, dm.L - t0);
      for (int64_t c = 0; c < cn; ++c) std::copy(rows + (c0 + c) * stride + t0, rows + (c0 + c) * stride + t0 + tn, tile[c]);
      for (int64_t t = 0; t < tn; ++t) {
        T* dst = out + (b * dm.L + t0 + t) * dm.D + d0 + c0;
        for (int64_t c = 0; c < cn; ++c) dst[c] = tile[c][t];
      }
    }
  }
}

// The grain for loops over channel blocks: serial below ~32K elements, where starting threads costs more
// than the work (gradchecks run thousands of tiny calls).
int64_t block_grain(const Dims& dm) { return dm.B * dm.L * dm.D < (1 << 15) ? INT64_MAX : 2; }

// ---- Direct path: O(L K) per channel, F32 or F64, in x's own layout. ----
// Work items are (batch, 16 channels); every inner loop runs over those contiguous channels, so it
// vectorises without gathering x into rows. The kernel is read transposed, (K, D'), for the same reason.

constexpr int64_t kLanes = 16;

int64_t lane_chunks(const Dims& dm) { return (dm.D + kLanes - 1) / kLanes; }

template <class T> std::vector<T> transposed_kernel(const T* k, const Dims& dm) {
  std::vector<T> kt(static_cast<size_t>(dm.K * dm.rows));
  for (int64_t d = 0; d < dm.rows; ++d)
    for (int64_t s = 0; s < dm.K; ++s) kt[s * dm.rows + d] = k[d * dm.K + s];
  return kt;
}

// acc[c] += w[c] * v[c], c < width. Width is std::integral_constant<int64_t, kLanes> for full chunks, so
// the loop unrolls and acc stays in registers, or int64_t for the last, partial chunk.
template <class T, class Width> inline void axpy(T* acc, const T* w, const T* v, Width width) {
#pragma omp simd
  for (int64_t c = 0; c < width; ++c) acc[c] += w[c] * v[c];
}

// Calls body(width) with a compile-time width for full chunks.
template <class F> inline void with_width(int64_t width, F&& body) {
  if (width == kLanes) body(std::integral_constant<int64_t, kLanes>{});
  else body(width);
}

// y[b, t, d] = sum_{s<K} k1[d, s] xm[b, t-s, d] + sum_{s<K} k2[d, s] xm[b, t+s, d]; padded positions of x
// (xm = 0) are skipped.
template <class T> void direct_forward(const Tensor& x, const std::vector<T>& token, const T* k, const Dims& dm,
                                       Tensor& y) {
  std::vector<T> kt = transposed_kernel(k, dm);
  int64_t chunks = lane_chunks(dm), L = dm.L, D = dm.D, K = dm.K, rows = dm.rows;
  parallel_for(dm.B * chunks, block_grain(dm), [&](int64_t lo, int64_t hi) {
    for (int64_t item = lo; item < hi; ++item) {
      int64_t b = item / chunks, d0 = (item % chunks) * kLanes;
      const T* xb = x.data<T>() + b * L * D + d0;
      const T* tok = token.empty() ? nullptr : token.data() + b * L;
      const T* k1 = kt.data() + d0;
      const T* k2 = kt.data() + D + d0;
      T* yb = y.data<T>() + b * L * D + d0;
      with_width(std::min(kLanes, D - d0), [&](auto width) {
        for (int64_t t = 0; t < L; ++t) {
          T acc[kLanes] = {};
          for (int64_t s = 0; s < std::min(t + 1, K); ++s)
            if (!tok || tok[t - s] != 0) axpy(acc, k1 + s * rows, xb + (t - s) * D, width);
          if (dm.bidirectional)
            for (int64_t s = 0; s < std::min(L - t, K); ++s)
              if (!tok || tok[t + s] != 0) axpy(acc, k2 + s * rows, xb + (t + s) * D, width);
          for (int64_t c = 0; c < width; ++c) yb[t * D + c] = acc[c];
        }
      });
    }
  });
}

// The transpose of direct_forward: gxm[b, j] = sum_s k1[s] gy[b, j+s] + k2[s] gy[b, j-s] (d loss / d xm),
// dk1[s] = sum_{b,t} gy[b, t] xm[b, t-s], dk2[s] = sum_{b,t} gy[b, t] xm[b, t+s]. Work items are chunks of
// channels only, each summing its kernel rows over the batch, so no two threads write one element.
template <class T> void direct_backward(const Tensor& gy, const Tensor& x, const std::vector<T>& token,
                                        const T* k, const Dims& dm, Tensor& gxm, double* dk) {
  std::vector<T> kt = transposed_kernel(k, dm);
  int64_t L = dm.L, D = dm.D, K = dm.K, rows = dm.rows;
  parallel_for(lane_chunks(dm), block_grain(dm), [&](int64_t lo, int64_t hi) {
    for (int64_t chunk = lo; chunk < hi; ++chunk) {
      int64_t d0 = chunk * kLanes, width = std::min(kLanes, D - d0);
      const T* k1 = kt.data() + d0;
      const T* k2 = kt.data() + D + d0;
      std::vector<double> dk1(static_cast<size_t>(K * kLanes)), dk2(dm.bidirectional ? dk1.size() : 0);
      with_width(width, [&](auto w) {
        for (int64_t b = 0; b < dm.B; ++b) {
          const T* xb = x.data<T>() + b * L * D + d0;
          const T* gb = gy.data<T>() + b * L * D + d0;
          const T* tok = token.empty() ? nullptr : token.data() + b * L;
          T* gxb = gxm.data<T>() + b * L * D + d0;
          for (int64_t j = 0; j < L; ++j) {
            T acc[kLanes] = {};
            for (int64_t s = 0; s < std::min(L - j, K); ++s) axpy(acc, k1 + s * rows, gb + (j + s) * D, w);
            if (dm.bidirectional)
              for (int64_t s = 0; s < std::min(j + 1, K); ++s) axpy(acc, k2 + s * rows, gb + (j - s) * D, w);
            for (int64_t c = 0; c < w; ++c) gxb[j * D + c] = acc[c];
          }
          for (int64_t s = 0; s < K; ++s) {
            T acc1[kLanes] = {}, acc2[kLanes] = {};
            for (int64_t t = s; t < L; ++t)
              if (!tok || tok[t - s] != 0) axpy(acc1, gb + t * D, xb + (t - s) * D, w);
            if (dm.bidirectional)
              for (int64_t t = 0; t < L - s; ++t)
                if (!tok || tok[t + s] != 0) axpy(acc2, gb + t * D, xb + (t + s) * D, w);
            for (int64_t c = 0; c < w; ++c) {
              dk1[s * kLanes + c] += acc1[c];
              if (dm.bidirectional) dk2[s * kLanes + c] += acc2[c];
            }
          }
        }
      });
      for (int64_t c = 0; c < width; ++c)
        for (int64_t s = 0; s < K; ++s) {
          dk[(d0 + c) * K + s] = dk1[s * kLanes + c];
          if (dm.bidirectional) dk[(D + d0 + c) * K + s] = dk2[s * kLanes + c];
        }
    }
  });
}

// ---- FFT path: F32, FFTW batched over a block of channels. ----

int64_t block_count(const Dims& dm) { return (dm.D + kBlock - 1) / kBlock; }

using cfloat = std::complex<float>;

// a * b and a * conj(b) written out: std::complex's operator* without -ffast-math calls a NaN-checking
// library routine per element.
inline cfloat times(cfloat a, cfloat b) {
  return {a.real() * b.real() - a.imag() * b.imag(), a.real() * b.imag() + a.imag() * b.real()};
}
inline cfloat times_conj(cfloat a, cfloat b) {
  return {a.real() * b.real() + a.imag() * b.imag(), a.imag() * b.real() - a.real() * b.imag()};
}

// The spectra (count, F) of channels d0.. of the combined kernel, divided by n so that one inverse
// transform of a product gives the convolution: k1 at lags 0..K-1, plus k2 at lags 0, -1, .., -(K-1)
// wrapped to n - s. `rows` is scratch (count, n).
void kernel_spectra(const float* k, const Dims& dm, int64_t d0, int64_t count, int64_t n, float* rows,
                    cfloat* spectra) {
  std::fill(rows, rows + count * n, 0.0f);
  for (int64_t c = 0; c < count; ++c) {
    float* row = rows + c * n;
    const float* k1 = k + (d0 + c) * dm.K;
    std::copy(k1, k1 + dm.K, row);
    if (dm.bidirectional) {
      const float* k2 = k + (dm.D + d0 + c) * dm.K;
      row[0] += k2[0];
      for (int64_t s = 1; s < dm.K; ++s) row[n - s] = k2[s];
    }
  }
  fft::forward(n, count, rows, spectra);
  float inv_n = 1.0f / static_cast<float>(n);
  for (int64_t i = 0, bins = count * (n / 2 + 1); i < bins; ++i) spectra[i] *= inv_n;
}

int64_t fft_length(const Dims& dm) { return fft::fast_length(dm.L + dm.K - 1); }

// Channels per FFTW call: as many as keep one call's arrays (real rows, spectra, kernel spectra) within
// about 200 KB of L2, so a long sequence runs transform, product and inverse on one channel while it is
// still in cache instead of streaming all 16 channels through each step; at least one.
int64_t fft_batch(int64_t n) { return std::clamp<int64_t>(16384 / n, 1, kBlock); }

void fft_forward(const Tensor& x, const std::vector<float>& token, const float* k, const Dims& dm, Tensor& y) {
  int64_t n = fft_length(dm), bins = n / 2 + 1, batch = fft_batch(n);
  parallel_for(block_count(dm), block_grain(dm), [&](int64_t lo, int64_t hi) {
    fft::Buffer<float> rows = fft::real_buffer(kBlock * n);
    fft::Buffer<cfloat> spectra = fft::complex_buffer(kBlock * bins), kernel = fft::complex_buffer(kBlock * bins);
    for (int64_t block = lo; block < hi; ++block) {
      int64_t d0 = block * kBlock, count = std::min(kBlock, dm.D - d0);
      kernel_spectra(k, dm, d0, count, n, rows.get(), kernel.get());
      for (int64_t b = 0; b < dm.B; ++b) {
        gather(x.data<float>(), token, dm, b, d0, count, n, rows.get());
        for (int64_t c0 = 0; c0 < count; c0 += batch) {
          int64_t m = std::min(batch, count - c0);
          float* r = rows.get() + c0 * n;
          cfloat* sp = spectra.get() + c0 * bins;
          const cfloat* kh = kernel.get() + c0 * bins;
          fft::forward(n, m, r, sp);
          for (int64_t i = 0; i < m * bins; ++i) sp[i] = times(sp[i], kh[i]);
          fft::inverse(n, m, sp, r);
        }
        scatter(rows.get(), dm, b, d0, count, n, y.data<float>());
      }
    }
  });
}

// Per block: G = FFT(gy), X = FFT(masked x); gxm = IFFT(G conj(Khat)) (a correlation with the kernel);
// the kernel's gradient is the correlation sum_b sum_t gy[t] x[t - s] = IFFT(sum_b G conj(X)) at lag s,
// read at s (k1) and at n - s (k2, whose lag is -s).
void fft_backward(const Tensor& gy, const Tensor& x, const std::vector<float>& token, const float* k,
                  const Dims& dm, Tensor& gxm, double* dk) {
  int64_t n = fft_length(dm), bins = n / 2 + 1, batch = fft_batch(n);
  std::vector<float> none;
  parallel_for(block_count(dm), block_grain(dm), [&](int64_t lo, int64_t hi) {
    fft::Buffer<float> rows = fft::real_buffer(kBlock * n), x_rows = fft::real_buffer(kBlock * n);
    fft::Buffer<cfloat> g = fft::complex_buffer(kBlock * bins), xs = fft::complex_buffer(kBlock * bins),
                        kernel = fft::complex_buffer(kBlock * bins), dk_sum = fft::complex_buffer(kBlock * bins);
    for (int64_t block = lo; block < hi; ++block) {
      int64_t d0 = block * kBlock, count = std::min(kBlock, dm.D - d0);
      kernel_spectra(k, dm, d0, count, n, rows.get(), kernel.get());
      std::fill(dk_sum.get(), dk_sum.get() + count * bins, cfloat(0));
      for (int64_t b = 0; b < dm.B; ++b) {
        gather(gy.data<float>(), none, dm, b, d0, count, n, rows.get());
        gather(x.data<float>(), token, dm, b, d0, count, n, x_rows.get());
        for (int64_t c0 = 0; c0 < count; c0 += batch) {
          int64_t m = std::min(batch, count - c0);
          float* r = rows.get() + c0 * n;
          cfloat* gs = g.get() + c0 * bins;
          cfloat* xsp = xs.get() + c0 * bins;
          cfloat* acc = dk_sum.get() + c0 * bins;
          const cfloat* kh = kernel.get() + c0 * bins;
          fft::forward(n, m, r, gs);
          fft::forward(n, m, x_rows.get() + c0 * n, xsp);
          for (int64_t i = 0; i < m * bins; ++i) {
            acc[i] += times_conj(gs[i], xsp[i]);
            gs[i] = times_conj(gs[i], kh[i]);
          }
          fft::inverse(n, m, gs, r);
        }
        scatter(rows.get(), dm, b, d0, count, n, gxm.data<float>());
      }
      fft::inverse(n, count, dk_sum.get(), rows.get());
      double inv_n = 1.0 / static_cast<double>(n);
      for (int64_t c = 0; c < count; ++c) {
        const float* r = rows.get() + c * n;
        int64_t d = d0 + c;
        for (int64_t s = 0; s < dm.K; ++s) dk[d * dm.K + s] = r[s] * inv_n;
        if (dm.bidirectional)
          for (int64_t s = 0; s < dm.K; ++s) dk[(dm.D + d) * dm.K + s] = r[(n - s) % n] * inv_n;
      }
    }
  });
}

}  // namespace

EmaPath ema_auto_path(int64_t length, int64_t kernel_length, int directions) {
  int64_t n = fft::fast_length(length + kernel_length - 1);
  double direct = static_cast<double>(directions) * static_cast<double>(length) * static_cast<double>(kernel_length);
  return direct <= kFftCost * static_cast<double>(n) * std::log2(static_cast<double>(n)) ? EmaPath::Direct
                                                                                         : EmaPath::Fft;
}

// Forward: z = conv(x * token, k) + omega x (the pre-activation), out = silu(z).
// Saved for backward: z (B, L, D) and the kernel k (D', K), plus references to x and the mask (inputs,
// alive anyway). Recomputed: the coefficients p, a, q, c (D' N numbers), the masked x and its spectra
// (storing them would cost twice x's memory), the kernel's spectra (D transforms against the B D of the
// backward itself).
Var ema_with_path(const Var& x, const EmaParams& params, const Tensor& padding_mask, bool bidirectional,
                  int64_t truncation, EmaPath path) {
  OpScope scope("ema");
  Dims dm = check_ema(x, params, padding_mask, bidirectional, truncation);
  DType dtype = x.dtype();
  if (path == EmaPath::Auto)
    path = dtype == DType::F64 ? EmaPath::Direct : ema_auto_path(dm.L, dm.K, bidirectional ? 2 : 1);
  MEGA_CHECK(path == EmaPath::Direct || dtype == DType::F32, "[ema] the FFT path runs in F32 only, x is ",
             dtype_name(dtype));
  Tensor kernel = Tensor::empty({dm.rows, dm.K}, dtype);
  Tensor z = Tensor::empty(x.shape(), dtype), out = Tensor::empty(x.shape(), dtype);
  Tensor xv = x.value(), omega = params.omega.value();
  dispatch_floating(dtype, "ema", [&]<class T>() {
    Coefficients co = coefficients(params, dm.rows, dm.N);
    kernel_rows(co, dm.rows, dm.N, dm.K, kernel.data<T>());
    std::vector<T> token = token_weights<T>(padding_mask);
    if constexpr (std::is_same_v<T, float>) {
      if (path == EmaPath::Fft) fft_forward(xv, token, kernel.data<float>(), dm, z);
    }
    if (path == EmaPath::Direct) direct_forward(xv, token, kernel.data<T>(), dm, z);
    const T* xs = xv.data<T>();
    const T* w = omega.data<T>();
    T* zs = z.data<T>();
    T* o = out.data<T>();
    parallel_for(dm.B * dm.L, 256, [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r)
        for (int64_t d = 0, i = r * dm.D; d < dm.D; ++d, ++i) {
          zs[i] += w[d] * xs[i];
          o[i] = zs[i] * sigmoid_of(zs[i]);
        }
    });
  });

  Tensor mask = padding_mask;
  std::vector<Var> inputs = {x, params.delta, params.alpha, params.beta, params.gamma, params.omega};
  std::vector<Tensor> coefficient_values = {params.delta.value(), params.alpha.value(), params.beta.value(),
                                            params.gamma.value()};
  return record("ema", out, inputs, [=](const Tensor& grad_out) -> std::vector<Tensor> {
    // gz = d loss / d z = grad_out silu'(z); d omega = sum_{b,t} gz x; gy = gz feeds the convolution.
    Tensor gz = Tensor::empty(z.shape(), dtype), gxm = Tensor::empty(z.shape(), dtype);
    Tensor grad_x = Tensor::empty(z.shape(), dtype), grad_omega = Tensor::empty({dm.D}, dtype);
    Tensor grad_delta = Tensor::empty(coefficient_values[0].shape(), dtype);
    Tensor grad_alpha = Tensor::empty(coefficient_values[1].shape(), dtype);
    Tensor grad_beta = Tensor::empty(coefficient_values[2].shape(), dtype);
    Tensor grad_gamma = Tensor::empty(coefficient_values[3].shape(), dtype);
    std::vector<double> dk(static_cast<size_t>(dm.rows * dm.K));
    dispatch_floating(dtype, "ema", [&]<class T>() {
      const T* g = grad_out.data<T>();
      const T* zs = z.data<T>();
      const T* xs = xv.data<T>();
      T* gzs = gz.data<T>();
      std::vector<double> omega_partial(static_cast<size_t>(dm.B * dm.D), 0.0);  // per batch: deterministic
      parallel_for(dm.B, block_grain(dm), [&](int64_t lo, int64_t hi) {
        for (int64_t b = lo; b < hi; ++b) {
          double* acc = &omega_partial[b * dm.D];
          for (int64_t r = b * dm.L; r < (b + 1) * dm.L; ++r)
            for (int64_t d = 0, i = r * dm.D; d < dm.D; ++d, ++i) {
              T s = sigmoid_of(zs[i]);
              gzs[i] = g[i] * s * (1 + zs[i] * (1 - s));
              acc[d] += static_cast<double>(gzs[i]) * static_cast<double>(xs[i]);
            }
        }
      });
      for (int64_t d = 0; d < dm.D; ++d) {
        double total = 0;
        for (int64_t b = 0; b < dm.B; ++b) total += omega_partial[b * dm.D + d];
        grad_omega.data<T>()[d] = static_cast<T>(total);
      }

      std::vector<T> token = token_weights<T>(mask);
      if constexpr (std::is_same_v<T, float>) {
        if (path == EmaPath::Fft) fft_backward(gz, xv, token, kernel.data<float>(), dm, gxm, dk.data());
      }
      if (path == EmaPath::Direct) direct_backward(gz, xv, token, kernel.data<T>(), dm, gxm, dk.data());

      // d x = token * d(masked x) + omega gz (the residual reads the unmasked x).
      const T* w = omega.data<T>();
      const T* gm = gxm.data<T>();
      T* gxs = grad_x.data<T>();
      parallel_for(dm.B * dm.L, 256, [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; ++r) {
          T tok = token.empty() ? T(1) : token[r];
          for (int64_t d = 0, i = r * dm.D; d < dm.D; ++d, ++i) gxs[i] = tok * gm[i] + w[d] * gzs[i];
        }
      });
    });
    EmaParams values{Var(coefficient_values[0]), Var(coefficient_values[1]), Var(coefficient_values[2]),
                     Var(coefficient_values[3]), Var(omega)};
    Coefficients co = coefficients(values, dm.rows, dm.N);
    kernel_backward(co, dm.rows, dm.N, dm.K, dk.data(), grad_delta, grad_alpha, grad_beta, grad_gamma);
    return {grad_x, grad_delta, grad_alpha, grad_beta, grad_gamma, grad_omega};
  });
}

Var ema(const Var& x, const EmaParams& params, const Tensor& padding_mask, bool bidirectional,
        int64_t truncation) {
  return ema_with_path(x, params, padding_mask, bidirectional, truncation, EmaPath::Auto);
}

// The recurrence, one primitive op per step: Eq. (2) h_t = q h_{t-1} + p beta x_t, y_t = sum_n gamma s h_t.
// Truncation to K taps: the first K terms of h_t are h_t - q^K h_{t-K}. The backward direction runs the
// same recurrence from the end with rows D..2D-1.
Var ema_reference(const Var& x, const EmaParams& params, const Tensor& padding_mask, bool bidirectional,
                  int64_t truncation) {
  Dims dm = check_ema(x, params, padding_mask, bidirectional, truncation);
  Var xm = x;
  if (padding_mask.defined()) {
    Tensor padding = Tensor::empty({dm.B, dm.L, 1});
    for (int64_t i = 0; i < dm.B * dm.L; ++i) padding.data<float>()[i] = padding_mask.at(i) == 0 ? 1.0f : 0.0f;
    xm = masked_fill(x, padding, 0.0);
  }
  Var p = sigmoid(params.delta), a = sigmoid(params.alpha);
  Var q = reshape(neg(p * a) + 1.0, {dm.rows, dm.N});  // Eq. (3)
  Var p_beta = reshape(p * params.beta, {dm.rows, dm.N});
  Var gamma_scaled = params.gamma * std::sqrt(1.0 / static_cast<double>(dm.N));
  auto direction = [&](int64_t row0, bool reverse) {
    Var qd = narrow(q, 0, row0, dm.D), pbd = narrow(p_beta, 0, row0, dm.D);
    Var gd = narrow(gamma_scaled, 0, row0, dm.D);
    bool truncated = dm.K < dm.L;
    Var gd_qk = truncated ? gd * pow(qd, static_cast<double>(dm.K)) : Var();
    // h_by_t[t] = h at position t; lagged[t] = the state K steps earlier in the recurrence's order (zero
    // before that), so one sum over n at the end gives every y_t.
    std::vector<Var> h(static_cast<size_t>(dm.L)), h_by_t(h.size()), lagged(h.size());
    Var zero(Tensor::zeros({dm.B, dm.D, dm.N}, x.dtype()));
    for (int64_t i = 0; i < dm.L; ++i) {
      int64_t t = reverse ? dm.L - 1 - i : i;
      Var u = pbd * reshape(select(xm, 1, t), {dm.B, dm.D, 1});  // (B, D, N)
      h[i] = i == 0 ? u : qd * h[i - 1] + u;
      h_by_t[t] = h[i];
      lagged[t] = i >= dm.K ? h[i - dm.K] : zero;
    }
    Var y = sum(stack(h_by_t, 1) * gd, -1);  // (B, L, D)
    if (truncated) y = y - sum(stack(lagged, 1) * gd_qk, -1);
    return y;
  };
  Var y = direction(0, false);
  if (bidirectional) y = y + direction(dm.D, true);
  return silu(y + x * params.omega);
}

Tensor ema_kernel(const EmaParams& params, int64_t length) {
  MEGA_CHECK(length >= 1, "[ema] kernel length must be positive, got ", length);
  MEGA_CHECK(params.delta.defined(), "[ema] delta is undefined");
  int64_t N = check_coefficients(params, -1, params.delta.dtype(), "the kernel");
  int64_t rows = params.delta.size(0);
  Tensor kernel = Tensor::empty({rows, length}, params.delta.dtype());
  dispatch_floating(kernel.dtype(), "ema", [&]<class T>() {
    kernel_rows(coefficients(params, rows, N), rows, N, length, kernel.data<T>());
  });
  return kernel;
}

Tensor ema_step(const Tensor& x_t, const EmaParams& params, Tensor& state, const Tensor& token) {
  MEGA_CHECK(x_t.defined() && x_t.dim() == 2, "[ema] ema_step needs x_t (B, D), got ",
             x_t.defined() ? shape_str(x_t.shape()) : "undefined");
  int64_t B = x_t.size(0), D = x_t.size(1);
  int64_t N = check_coefficients(params, D, x_t.dtype(), "a unidirectional EMA step over D = " + std::to_string(D));
  MEGA_CHECK(params.omega.defined() && params.omega.shape() == Shape({D}) && params.omega.dtype() == x_t.dtype(),
             "[ema] omega must be ", dtype_name(x_t.dtype()), " (", D, "), got ", shape_of(params.omega));
  MEGA_CHECK(state.defined() && state.shape() == Shape({B, D, N}) && state.dtype() == x_t.dtype(),
             "[ema] state must be ", dtype_name(x_t.dtype()), " (", B, ", ", D, ", ", N, "), got ",
             state.defined() ? shape_str(state.shape()) : "undefined");
  if (token.defined())
    MEGA_CHECK(token.shape() == Shape({B}), "[ema] token must have shape (", B, "), got ", shape_str(token.shape()));
  Coefficients co = coefficients(params, D, N);
  Tensor out = Tensor::empty({B, D}, x_t.dtype());
  dispatch_floating(x_t.dtype(), "ema", [&]<class T>() {
    const T* xs = x_t.data<T>();
    const T* w = params.omega.value().data<T>();
    T* h = state.data<T>();
    T* o = out.data<T>();
    for (int64_t b = 0; b < B; ++b) {
      bool is_token = !token.defined() || token.at(b) != 0;
      for (int64_t d = 0; d < D; ++d) {
        double u = is_token ? static_cast<double>(xs[b * D + d]) : 0.0, y = 0;
        for (int64_t n = 0; n < N; ++n) {
          int64_t i = d * N + n;
          T& hn = h[(b * D + d) * N + n];
          hn = static_cast<T>(co.q[i] * hn + co.p[i] * co.beta[i] * u);  // Eq. (2)
          y += co.gamma[i] * co.scale * hn;
        }
        T z = static_cast<T>(y + static_cast<double>(w[d]) * static_cast<double>(xs[b * D + d]));
        o[b * D + d] = z * sigmoid_of(z);
      }
    }
  });
  return out;
}

}  // namespace mega
