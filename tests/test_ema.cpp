// The EMA op: gradchecks of the analytic backward in F64, every fast path (FFT, direct; uni- and
// bidirectional; truncation; padding) against the recurrence reference for outputs and all gradients,
// the decoding step against the full op, the kernel, the FFT length, and the shape errors.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "core/threading.h"
#include "ops/ema.h"
#include "ops/ema_internal.h"
#include "ops/fft.h"
#include "tests/gradcheck_util.h"

using namespace mega;
using mega::testing::random_tensor;

namespace {

// Parameter values, in F64: delta and alpha spread q over (0, 1), including values near 1 (long memory).
std::vector<Tensor> random_params(int64_t rows, int64_t D, int64_t N, uint64_t seed) {
  return {random_tensor({rows, N, 1}, seed, 1.5), random_tensor({rows, N, 1}, seed + 1, 1.5),
          random_tensor({rows, N, 1}, seed + 2), random_tensor({rows, N}, seed + 3),
          random_tensor({D}, seed + 4)};
}

EmaParams as_params(const std::vector<Var>& v, size_t first = 1) {
  return {v[first], v[first + 1], v[first + 2], v[first + 3], v[first + 4]};
}

// (B, L) I64: right padding in row 0 from L - 3 on, one padded token in the middle of row 1.
Tensor padding_mask(int64_t B, int64_t L) {
  Tensor mask = Tensor::full({B, L}, 1, DType::I64);
  for (int64_t t = L - 3; t < L; ++t) mask.data<int64_t>()[t] = 0;
  if (B > 1) mask.data<int64_t>()[L + L / 2] = 0;
  return mask;
}

void gradcheck_ema(bool bidirectional, int64_t truncation, bool masked) {
  int64_t B = 2, L = 7, D = 3, N = 4;
  std::vector<Tensor> inputs = {random_tensor({B, L, D}, 11)};
  for (Tensor& p : random_params(bidirectional ? 2 * D : D, D, N, 20)) inputs.push_back(p);
  Tensor mask = masked ? padding_mask(B, L) : Tensor();
  EXPECT_GRADCHECK(
      [&](const std::vector<Var>& v) { return ema(v[0], as_params(v), mask, bidirectional, truncation); },
      inputs);
}

}  // namespace

// F64 takes the direct path, so these check the analytic backward: the convolution's transpose, the chain
// from the kernel to delta, alpha, beta, gamma, and omega's residual.
TEST(EmaGradcheck, Unidirectional) { gradcheck_ema(false, 0, false); }
TEST(EmaGradcheck, Bidirectional) { gradcheck_ema(true, 0, false); }
TEST(EmaGradcheck, Truncation) {
  gradcheck_ema(false, 3, false);
  gradcheck_ema(true, 3, false);
}
TEST(EmaGradcheck, PaddingMask) {
  gradcheck_ema(false, 0, true);
  gradcheck_ema(true, 4, true);
}

namespace {

struct PathCase {
  const char* name;
  EmaPath path;
  DType dtype;
  bool bidirectional;
  int64_t truncation;
  bool masked;
  int64_t L;
};
void PrintTo(const PathCase& c, std::ostream* os) { *os << c.name; }

// max |got - want| <= tol * max(max |want|, 1e-2), reported at the worst element.
void expect_close(const Tensor& got, const Tensor& want, double tol, const std::string& what) {
  ASSERT_TRUE(got.defined()) << what << " is undefined";
  ASSERT_EQ(got.shape(), want.shape()) << what;
  double scale = 1e-2, worst = 0;
  int64_t at = 0;
  for (int64_t i = 0; i < want.numel(); ++i) scale = std::max(scale, std::abs(want.at(i)));
  for (int64_t i = 0; i < want.numel(); ++i) {
    double e = std::abs(got.at(i) - want.at(i));
    if (e > worst) worst = e, at = i;
  }
  EXPECT_LE(worst, tol * scale) << what << ": worst element " << at << " got " << got.at(at) << " want "
                                << want.at(at) << " (scale " << scale << ")";
}

class EmaVsReference : public ::testing::TestWithParam<PathCase> {};

}  // namespace

// The fast op in the case's dtype against the recurrence in F64: the output and all six gradients.
TEST_P(EmaVsReference, OutputsAndGradients) {
  const PathCase& c = GetParam();
  int64_t B = 2, D = 10, N = 4;  // D = 10: one full block of 8 channels and a partial one
  int64_t rows = c.bidirectional ? 2 * D : D;
  std::vector<Tensor> values = {random_tensor({B, c.L, D}, 31)};
  for (Tensor& p : random_params(rows, D, N, 40)) values.push_back(p);
  Tensor mask = c.masked ? padding_mask(B, c.L) : Tensor();
  Tensor cotangent = random_tensor({B, c.L, D}, 50);

  std::vector<Var> fast, slow;
  for (const Tensor& v : values) {
    fast.push_back(Var::parameter(v.to(c.dtype)));
    slow.push_back(Var::parameter(v));
  }
  Var out = ema_with_path(fast[0], as_params(fast), mask, c.bidirectional, c.truncation, c.path);
  Var want = ema_reference(slow[0], as_params(slow), mask, c.bidirectional, c.truncation);
  out.backward(cotangent.to(c.dtype));
  want.backward(cotangent);

  // F32: rounding of sums over L terms and of the FFT; F64 direct: only summation order differs.
  double tol = c.dtype == DType::F32 ? 2e-5 : 1e-11;
  expect_close(out.value(), want.value(), tol, "output");
  const char* names[] = {"x", "delta", "alpha", "beta", "gamma", "omega"};
  for (size_t i = 0; i < fast.size(); ++i)
    expect_close(fast[i].grad(), slow[i].grad(), tol * 10, std::string("grad ") + names[i]);
}

INSTANTIATE_TEST_SUITE_P(
    EmaPaths, EmaVsReference,
    ::testing::Values(PathCase{"fft_uni", EmaPath::Fft, DType::F32, false, 0, false, 37},
                      PathCase{"fft_bi", EmaPath::Fft, DType::F32, true, 0, false, 37},
                      PathCase{"fft_uni_trunc_masked", EmaPath::Fft, DType::F32, false, 9, true, 37},
                      PathCase{"fft_bi_trunc_masked", EmaPath::Fft, DType::F32, true, 9, true, 37},
                      PathCase{"fft_bi_masked_long", EmaPath::Fft, DType::F32, true, 0, true, 150},
                      PathCase{"direct_f32_uni_masked", EmaPath::Direct, DType::F32, false, 0, true, 37},
                      PathCase{"direct_f32_bi_trunc", EmaPath::Direct, DType::F32, true, 9, false, 37},
                      PathCase{"direct_f64_uni_trunc", EmaPath::Direct, DType::F64, false, 9, false, 37},
                      PathCase{"direct_f64_bi_masked", EmaPath::Direct, DType::F64, true, 0, true, 37},
                      PathCase{"direct_f64_bi_trunc_masked_long", EmaPath::Direct, DType::F64, true, 40, true,
                               150}),
    [](const ::testing::TestParamInfo<PathCase>& info) { return std::string(info.param.name); });

TEST(EmaStep, SteppingThroughASequenceEqualsTheFullUnidirectionalEma) {
  int64_t B = 2, L = 9, D = 3, N = 4;
  Tensor x = random_tensor({B, L, D}, 61);
  std::vector<Tensor> p = random_params(D, D, N, 70);
  EmaParams params{Var(p[0]), Var(p[1]), Var(p[2]), Var(p[3]), Var(p[4])};
  Tensor mask = padding_mask(B, L);
  Tensor full = ema(Var(x), params, mask, false).value();

  Tensor state = Tensor::zeros({B, D, N}, DType::F64);
  for (int64_t t = 0; t < L; ++t) {
    Tensor x_t = Tensor::empty({B, D}, DType::F64), token = Tensor::empty({B}, DType::I64);
    for (int64_t b = 0; b < B; ++b) {
      token.data<int64_t>()[b] = mask.data<int64_t>()[b * L + t];
      for (int64_t d = 0; d < D; ++d) x_t.data<double>()[b * D + d] = x.data<double>()[(b * L + t) * D + d];
    }
    Tensor y_t = ema_step(x_t, params, state, token);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t d = 0; d < D; ++d)
        EXPECT_NEAR(y_t.at(b * D + d), full.at((b * L + t) * D + d), 1e-12) << "t " << t << " b " << b << " d " << d;
  }
}

TEST(EmaKernel, IsTheSumOfDampedPowers) {
  int64_t rows = 4, N = 3, K = 50;
  std::vector<Tensor> p = random_params(rows, rows, N, 80);
  EmaParams params{Var(p[0]), Var(p[1]), Var(p[2]), Var(p[3]), Var(p[4])};
  Tensor k = ema_kernel(params, K);
  ASSERT_EQ(k.shape(), Shape({rows, K}));
  for (int64_t d = 0; d < rows; ++d)
    for (int64_t t = 0; t < K; ++t) {
      double want = 0;
      for (int64_t n = 0; n < N; ++n) {
        int64_t i = d * N + n;
        double pp = 1 / (1 + std::exp(-p[0].at(i))), a = 1 / (1 + std::exp(-p[1].at(i)));
        want += pp * p[2].at(i) * std::pow(1 - pp * a, static_cast<double>(t)) * p[3].at(i) * std::sqrt(1.0 / N);
      }
      EXPECT_NEAR(k.at(d * K + t), want, 1e-12);
    }
}

TEST(EmaFft, LengthIsSmoothAndMinimal) {
  auto smooth = [](int64_t n) {
    if (n % 2) return false;
    for (int64_t f : {2, 3, 5, 7})
      while (n % f == 0) n /= f;
    return n == 1;
  };
  for (int64_t m = 1; m <= 3000; ++m) {
    int64_t n = fft::fast_length(m);
    ASSERT_GE(n, m);
    ASSERT_TRUE(smooth(n)) << n;
    for (int64_t k = m; k < n; ++k) ASSERT_FALSE(smooth(k)) << "fast_length(" << m << ") = " << n << " skips " << k;
  }
  EXPECT_EQ(fft::fast_length(2 * 16384 - 1), 32768);
}

TEST(EmaAutoPath, DirectForShortOrTruncatedKernelsFftForLongOnes) {
  EXPECT_EQ(ema_auto_path(16, 16, 2), EmaPath::Direct);
  EXPECT_EQ(ema_auto_path(32, 32, 2), EmaPath::Direct);
  EXPECT_EQ(ema_auto_path(64, 64, 2), EmaPath::Fft);
  EXPECT_EQ(ema_auto_path(4096, 4096, 2), EmaPath::Fft);
  EXPECT_EQ(ema_auto_path(16384, 4, 2), EmaPath::Direct);
}

TEST(EmaErrors, NameTheOpAndTheShapes) {
  int64_t B = 2, L = 5, D = 3, N = 4;
  std::vector<Tensor> p = random_params(D, D, N, 90);
  EmaParams uni{Var(p[0]), Var(p[1]), Var(p[2]), Var(p[3]), Var(p[4])};
  Var x(random_tensor({B, L, D}, 91));
  auto expect_error = [](const std::function<void()>& body, const std::string& needle) {
    try {
      body();
      ADD_FAILURE() << "no error; expected one containing '" << needle << "'";
    } catch (const Error& e) {
      std::string message = e.what();
      EXPECT_EQ(message.rfind("[ema]", 0), 0u) << message;
      EXPECT_NE(message.find(needle), std::string::npos) << message;
    }
  };
  expect_error([&] { ema(Var(random_tensor({B, L}, 1)), uni, Tensor(), false); }, "(B, L, D)");
  expect_error([&] { ema(x, uni, Tensor(), true); }, "bidirectional");  // rows D, needs 2D
  expect_error([&] { ema(x, uni, Tensor::zeros({B, L + 1}, DType::I64), false); }, "padding_mask");
  EmaParams bad_gamma = uni;
  bad_gamma.gamma = Var(random_tensor({D, N + 1}, 2));
  expect_error([&] { ema(x, bad_gamma, Tensor(), false); }, "gamma");
  EmaParams bad_omega = uni;
  bad_omega.omega = Var(random_tensor({D + 1}, 3));
  expect_error([&] { ema(x, bad_omega, Tensor(), false); }, "omega");
  expect_error([&] { ema_with_path(x, uni, Tensor(), false, 0, EmaPath::Fft); }, "F32");
  Tensor state = Tensor::zeros({B, D, N + 1}, DType::F64);
  expect_error([&] { ema_step(x.value()[0], uni, state); }, "state");
}

// Large enough (B L D >= 32K) for the threaded loops: FFT and direct agree there, and each path gives the
// same bits on one thread and on several (blocks own their outputs; batch sums run in a fixed order).
TEST(EmaThreads, ParallelPathsAgreeAndAreDeterministic) {
  int64_t B = 2, L = 512, D = 32, N = 4;
  std::vector<Tensor> values = {random_tensor({B, L, D}, 101).to(DType::F32)};
  for (Tensor& p : random_params(2 * D, D, N, 110)) values.push_back(p.to(DType::F32));
  Tensor mask = padding_mask(B, L), cotangent = random_tensor({B, L, D}, 120).to(DType::F32);
  auto run = [&](EmaPath path, int threads) {
    set_num_threads(threads);
    std::vector<Var> v;
    for (const Tensor& t : values) v.push_back(Var::parameter(t));
    Var out = ema_with_path(v[0], as_params(v), mask, true, 200, path);
    out.backward(cotangent);
    set_num_threads(0);
    std::vector<Tensor> results = {out.value()};
    for (const Var& var : v) results.push_back(var.grad());
    return results;
  };
  std::vector<Tensor> fft = run(EmaPath::Fft, 2), direct = run(EmaPath::Direct, 2);
  std::vector<Tensor> fft_serial = run(EmaPath::Fft, 1), direct_serial = run(EmaPath::Direct, 1);
  const char* names[] = {"output", "grad x", "grad delta", "grad alpha", "grad beta", "grad gamma", "grad omega"};
  for (size_t i = 0; i < fft.size(); ++i) {
    expect_close(fft[i], direct[i], 1e-4, std::string("fft vs direct ") + names[i]);
    EXPECT_EQ(fft[i].to_vector(), fft_serial[i].to_vector()) << "fft, 1 vs 2 threads: " << names[i];
    EXPECT_EQ(direct[i].to_vector(), direct_serial[i].to_vector()) << "direct, 1 vs 2 threads: " << names[i];
  }
}

// The paper's ListOps shape (D 80, L 2000, truncation 1024) on two threads: a standalone run crashed inside
// FFTW before plans were made FFTW_UNALIGNED (sub-blocks of a spectrum at offsets c0 * bins are not 16-byte
// aligned). Whether a plan used aligned loads depended on what FFTW_MEASURE timed fastest (plans are
// FFTW_ESTIMATE now), so this could not be made to fail every time; it stays as a smoke test of that shape
// and of thread-count determinism.
TEST(EmaThreads, TruncatedListOpsShapeRunsOnTwoThreads) {
  int64_t B = 2, L = 2000, D = 80, N = 16;
  std::vector<Tensor> values = {random_tensor({B, L, D}, 201).to(DType::F32)};
  for (Tensor& p : random_params(2 * D, D, N, 210)) values.push_back(p.to(DType::F32));
  auto run = [&](int threads) {
    set_num_threads(threads);
    std::vector<Var> v;
    for (const Tensor& t : values) v.push_back(Var::parameter(t));
    Var out = ema_with_path(v[0], as_params(v), Tensor(), true, 1024, EmaPath::Fft);
    out.backward(Tensor::full(out.shape(), 1.0f));
    set_num_threads(0);
    return std::vector<Tensor>{out.value(), v[0].grad(), v[4].grad()};
  };
  std::vector<Tensor> two = run(2), one = run(1);
  for (size_t i = 0; i < two.size(); ++i) EXPECT_EQ(two[i].to_vector(), one[i].to_vector()) << i;
}
