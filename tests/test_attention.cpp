// Attention: the functions (softmax, log_softmax, laplace, relu2), the relative biases and the fused
// attention op against its primitive-op reference, over every variant (function x chunking x causal x
// padding x L != S): F64 gradient checks, fused vs reference, masks by hand, dropout and errors.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "ops/attention.h"
#include "ops/attention_fn.h"
#include "ops/reduce.h"
#include "tests/gradcheck_util.h"

using namespace mega;
using mega::testing::random_tensor;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  double worst = 0;
  for (int64_t i = 0; i < a.numel(); ++i) worst = std::max(worst, std::abs(a.at(i) - b.at(i)));
  return worst;
}

double max_abs(const Tensor& a) {
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::abs(a.at(i)));
  return m;
}

bool all_finite(const Tensor& a) {
  for (int64_t i = 0; i < a.numel(); ++i)
    if (!std::isfinite(a.at(i))) return false;
  return true;
}

const char* function_name(AttentionFunction f) {
  return f == AttentionFunction::Softmax ? "softmax" : f == AttentionFunction::Laplace ? "laplace" : "relu2";
}

// The small shapes of every attention test: B 2, Z 4, I 6, chunk 4; L = S = 8 unless a variant says.
constexpr int64_t kB = 2, kZ = 4, kI = 6, kChunk = 4;

enum class Padding { None, Right, WholeChunk, Left };
const char* padding_name(Padding p) {
  return p == Padding::None         ? "none"
         : p == Padding::Right      ? "right"
         : p == Padding::WholeChunk ? "whole-chunk"
                                    : "left";
}

// key_mask (B, S), 1 = token. WholeChunk pads keys 0..3 of example 0 and 4..7 of example 1 (whole chunks
// of 4); Left pads 3 and 1 leading keys, so a causal row 0..2 of example 0 sees no key.
Tensor key_mask_for(Padding padding, int64_t s) {
  if (padding == Padding::None) return Tensor();
  Tensor mask = Tensor::full({kB, s}, 1, DType::I64);
  int64_t* m = mask.data<int64_t>();
  for (int64_t j = 0; j < s; ++j) {
    if (padding == Padding::Right) m[s + j] = j < s - 3;
    if (padding == Padding::WholeChunk) m[j] = j >= 4, m[s + j] = j < 4;
    if (padding == Padding::Left) m[j] = j >= 3, m[s + j] = j >= 1;
  }
  return mask;
}

struct Variant {
  AttentionFunction function;
  int64_t chunk;
  bool causal;
  Padding padding;
  int64_t l, s;
  std::string name() const {
    return std::string(function_name(function)) + " chunk=" + std::to_string(chunk) + (causal ? " causal" : "") +
           " padding=" + padding_name(padding) + " L=" + std::to_string(l) + " S=" + std::to_string(s);
  }
  AttentionOptions options() const {
    AttentionOptions o;
    o.function = function, o.chunk_size = chunk, o.causal = causal;
    return o;
  }
  int64_t bias_rows() const { return chunk > 0 ? chunk : l; }
  int64_t bias_cols() const { return chunk > 0 ? chunk : s; }
};

// Every variant of one function: chunked / unchunked x causal or not x four paddings at L = S = 8, and
// unchunked L != S (L = 3 and L = 1 against S = 8: a prefill and one cached decoding step).
std::vector<Variant> variants_of(AttentionFunction f) {
  std::vector<Variant> out;
  for (int64_t chunk : {int64_t{0}, kChunk})
    for (bool causal : {false, true})
      for (Padding padding : {Padding::None, Padding::Right, Padding::WholeChunk, Padding::Left})
        out.push_back({f, chunk, causal, padding, 8, 8});
  for (bool causal : {false, true}) {
    for (Padding padding : {Padding::None, Padding::Right, Padding::Left}) out.push_back({f, 0, causal, padding, 3, 8});
    out.push_back({f, 0, causal, Padding::Left, 1, 8});
  }
  return out;
}

// q, k, v, bias for a variant; laplace sees scores around its centre mu so its slope matters.
std::vector<Tensor> inputs_for(const Variant& v, uint64_t seed) {
  double scale = v.function == AttentionFunction::Softmax ? 1.0 : 1.5;
  return {random_tensor({kB, v.l, kZ}, seed, scale), random_tensor({kB, v.s, kZ}, seed + 1, scale),
          random_tensor({kB, v.s, kI}, seed + 2), random_tensor({v.bias_rows(), v.bias_cols()}, seed + 3, 0.5, 0.3)};
}

using AttentionOp = Var (*)(const Var&, const Var&, const Var&, const Var&, const Tensor&, const AttentionOptions&,
                            Tensor*);

struct Result {
  Tensor out, weights;
  std::vector<Tensor> grads;  // q, k, v, bias
};

Result run(AttentionOp op, const Variant& variant, const std::vector<Tensor>& inputs, DType dtype,
           const AttentionOptions& options) {
  std::vector<Var> vars;
  for (const Tensor& t : inputs) vars.emplace_back(t.to(dtype), true);
  Result r;
  Var out = op(vars[0], vars[1], vars[2], vars[3], key_mask_for(variant.padding, variant.s), options, &r.weights);
  r.out = out.value();
  out.backward(random_tensor(out.shape(), 99).to(dtype));
  for (const Var& v : vars) r.grads.push_back(v.grad());
  return r;
}

void expect_fused_matches_reference(AttentionFunction f, DType dtype, double tolerance) {
  for (const Variant& variant : variants_of(f)) {
    SCOPED_TRACE(variant.name());
    std::vector<Tensor> inputs = inputs_for(variant, 11);
    Result fused = run(attention, variant, inputs, dtype, variant.options());
    Result reference = run(attention_reference, variant, inputs, dtype, variant.options());
    EXPECT_LE(max_abs_diff(fused.out, reference.out), tolerance * std::max(max_abs(reference.out), 1e-2)) << "out";
    EXPECT_LE(max_abs_diff(fused.weights, reference.weights), tolerance) << "weights";
    const char* names[] = {"q", "k", "v", "bias"};
    for (int i = 0; i < 4; ++i)
      EXPECT_LE(max_abs_diff(fused.grads[i], reference.grads[i]),
                tolerance * std::max(max_abs(reference.grads[i]), 1e-2))
          << "grad " << names[i];
  }
}

void expect_gradcheck_every_variant(AttentionFunction f) {
  for (const Variant& variant : variants_of(f)) {
    SCOPED_TRACE(variant.name());
    Tensor mask = key_mask_for(variant.padding, variant.s);
    AttentionOptions options = variant.options();
    EXPECT_GRADCHECK([&](const std::vector<Var>& x) { return attention(x[0], x[1], x[2], x[3], mask, options); },
                     inputs_for(variant, 21));
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// The functions.

TEST(AttentionFunctions, SoftmaxGradcheck) {
  EXPECT_GRADCHECK([](const std::vector<Var>& x) { return softmax(x[0]); },
                   std::vector<Tensor>{random_tensor({3, 5}, 1, 2.0)});
}

TEST(AttentionFunctions, LogSoftmaxGradcheck) {
  EXPECT_GRADCHECK([](const std::vector<Var>& x) { return log_softmax(x[0]); },
                   std::vector<Tensor>{random_tensor({3, 5}, 2, 2.0)});
}

TEST(AttentionFunctions, LaplaceGradcheck) {
  EXPECT_GRADCHECK([](const std::vector<Var>& x) { return laplace(x[0]); },
                   std::vector<Tensor>{random_tensor({4, 6}, 3, 0.5, 0.7)});
}

TEST(AttentionFunctions, Relu2Gradcheck) {
  EXPECT_GRADCHECK([](const std::vector<Var>& x) { return relu2(x[0]); },
                   std::vector<Tensor>{random_tensor({4, 6}, 4)});
}

TEST(AttentionFunctions, SoftmaxRowsSumToOneAndLogSoftmaxIsItsLog) {
  Var x(random_tensor({4, 7}, 5, 3.0));
  Tensor y = softmax(x).value(), log_y = log_softmax(x).value();
  for (int64_t r = 0; r < 4; ++r) {
    double total = 0;
    for (int64_t j = 0; j < 7; ++j) {
      total += y.at(r * 7 + j);
      EXPECT_NEAR(std::log(y.at(r * 7 + j)), log_y.at(r * 7 + j), 1e-12);
    }
    EXPECT_NEAR(total, 1.0, 1e-12);
  }
}

TEST(AttentionFunctions, SoftmaxOfARowOfMinusInfinityIsZeroWithZeroGradient) {
  Tensor t = Tensor::from(std::vector<double>{-kInf, -kInf, -kInf, 0.5, -kInf, 1.5}, {2, 3});
  Var x(t, true);
  Var y = softmax(x);
  std::vector<double> expected{0, 0, 0, 1 / (1 + std::exp(1.0)), 0, 1 / (1 + std::exp(-1.0))};
  for (int j = 0; j < 6; ++j) EXPECT_NEAR(y.value().at(j), expected[j], 1e-15) << j;
  y.backward(random_tensor({2, 3}, 6));
  EXPECT_TRUE(all_finite(x.grad()));
  for (int j = 0; j < 3; ++j) EXPECT_EQ(x.grad().at(j), 0.0);
  Var z(t, true);
  Var log_y = log_softmax(z);
  log_y.backward(random_tensor({2, 3}, 7));
  for (int j = 0; j < 3; ++j) EXPECT_EQ(z.grad().at(j), 0.0);
  EXPECT_TRUE(all_finite(z.grad()));
}

TEST(AttentionFunctions, LaplaceAndRelu2MatchTheirDefinitions) {
  std::vector<double> xs{-2.0, -0.1, 0.0, 0.3, 0.707107, 1.2, 3.0};
  Tensor t = Tensor::from(xs, {7});
  Tensor lap = laplace(Var(t)).value(), sq = relu2(Var(t)).value();
  double mu = std::sqrt(0.5), sigma = std::sqrt(1 / (4 * M_PI));
  for (size_t i = 0; i < xs.size(); ++i) {
    EXPECT_NEAR(lap.at(i), 0.5 * (1 + std::erf((xs[i] - mu) / (sigma * std::sqrt(2.0)))), 2e-6) << xs[i];
    EXPECT_DOUBLE_EQ(sq.at(i), xs[i] > 0 ? xs[i] * xs[i] : 0.0);
  }
  EXPECT_DOUBLE_EQ(lap.at(4), 0.5);  // laplace(mu) = 1/2 exactly with HF's mu
}

TEST(AttentionFunctions, Float32AgreesWithFloat64) {
  Tensor x = random_tensor({5, 33}, 8, 3.0);
  for (auto f : {softmax, log_softmax, laplace, relu2}) {
    Var a(x, true), b(x.to(DType::F32), true);
    Var ya = f(a), yb = f(b);
    EXPECT_LT(max_abs_diff(ya.value(), yb.value()), 1e-5);
    Tensor g = random_tensor({5, 33}, 9);
    ya.backward(g);
    yb.backward(g.to(DType::F32));
    EXPECT_LT(max_abs_diff(a.grad(), b.grad()), 1e-4);
  }
}

// ---------------------------------------------------------------------------------------------------
// Relative position biases.

TEST(AttentionBias, SimpleReadsTheTableAtMMinusOnePlusJMinusI) {
  std::vector<double> w(9);
  for (int i = 0; i < 9; ++i) w[i] = i * 10.0;  // M = 5
  Tensor bias = simple_relative_bias(Var(Tensor::from(w, {9})), 3).value();
  ASSERT_EQ(bias.shape(), (Shape{3, 3}));
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) EXPECT_EQ(bias.at(i * 3 + j), w[4 + j - i]) << i << "," << j;
}

TEST(AttentionBias, SimpleGradcheck) {
  EXPECT_GRADCHECK([](const std::vector<Var>& x) { return simple_relative_bias(x[0], 4); },
                   std::vector<Tensor>{random_tensor({9}, 10)});
  EXPECT_GRADCHECK([](const std::vector<Var>& x) { return simple_relative_bias(x[0], 5); },
                   std::vector<Tensor>{random_tensor({9}, 11)});
}

TEST(AttentionBias, SimpleLongerThanMFailsNamingMaxPositionsAndChunkSize) {
  Var w(random_tensor({9}, 12));
  try {
    simple_relative_bias(w, 6);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string message = e.what();
    EXPECT_NE(message.find("[simple_relative_bias]"), std::string::npos) << message;
    EXPECT_NE(message.find("max_positions"), std::string::npos) << message;
    EXPECT_NE(message.find("chunk_size"), std::string::npos) << message;
  }
  EXPECT_THROW(simple_relative_bias(Var(random_tensor({8}, 13)), 2), Error);  // even length is not 2M - 1
}

TEST(AttentionBias, RotaryMatchesTheDefinition) {
  const int64_t z = 6, n = 7, half = 3;
  Tensor alpha = random_tensor({1, z}, 14), beta = random_tensor({1, z}, 15);
  Tensor bias = rotary_relative_bias(Var(alpha), Var(beta), n).value();
  ASSERT_EQ(bias.shape(), (Shape{n, n}));
  auto rot = [&](const Tensor& v, int64_t t) {
    std::vector<double> r(z);
    for (int64_t k = 0; k < half; ++k) {
      double angle = t * std::pow(10000.0, -static_cast<double>(k) / half);
      double v1 = v.at(k), v2 = v.at(half + k);
      r[k] = v1 * std::cos(angle) - v2 * std::sin(angle);
      r[half + k] = v2 * std::cos(angle) + v1 * std::sin(angle);
    }
    return r;
  };
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      std::vector<double> a = rot(alpha, i), b = rot(beta, j);
      double dot = 0;
      for (int64_t d = 0; d < z; ++d) dot += a[d] * b[d];
      // The angles are float32 as in HF: about 1e-7 relative.
      EXPECT_NEAR(bias.at(i * n + j), dot, 1e-5) << i << "," << j;
    }
}

TEST(AttentionBias, RotaryGradcheck) {
  EXPECT_GRADCHECK([](const std::vector<Var>& x) { return rotary_relative_bias(x[0], x[1], 5); },
                   (std::vector<Tensor>{random_tensor({1, 4}, 16), random_tensor({1, 4}, 17)}));
}

TEST(AttentionBias, RotaryNeedsAnEvenSharedDimension) {
  try {
    rotary_relative_bias(Var(random_tensor({1, 5}, 18)), Var(random_tensor({1, 5}, 19)), 3);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[rotary_relative_bias]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("even"), std::string::npos) << e.what();
  }
  EXPECT_THROW(rotary_relative_bias(Var(random_tensor({1, 4}, 20)), Var(random_tensor({1, 6}, 21)), 3), Error);
}

// ---------------------------------------------------------------------------------------------------
// The fused attention op.

TEST(AttentionGradcheck, SoftmaxEveryVariant) { expect_gradcheck_every_variant(AttentionFunction::Softmax); }
TEST(AttentionGradcheck, LaplaceEveryVariant) { expect_gradcheck_every_variant(AttentionFunction::Laplace); }
TEST(AttentionGradcheck, Relu2EveryVariant) { expect_gradcheck_every_variant(AttentionFunction::Relu2); }

TEST(AttentionGradcheck, WithoutBiasAndWithoutMask) {
  for (AttentionFunction f : {AttentionFunction::Softmax, AttentionFunction::Laplace, AttentionFunction::Relu2}) {
    SCOPED_TRACE(function_name(f));
    AttentionOptions options;
    options.function = f, options.chunk_size = kChunk;
    EXPECT_GRADCHECK([&](const std::vector<Var>& x) { return attention(x[0], x[1], x[2], Var(), Tensor(), options); },
                     (std::vector<Tensor>{random_tensor({kB, 8, kZ}, 22), random_tensor({kB, 8, kZ}, 23),
                                          random_tensor({kB, 8, kI}, 24)}));
  }
}

TEST(AttentionGradcheck, WithDropout) {
  for (AttentionFunction f : {AttentionFunction::Softmax, AttentionFunction::Relu2}) {
    SCOPED_TRACE(function_name(f));
    Tensor mask = key_mask_for(Padding::Right, 8);
    EXPECT_GRADCHECK(
        [&](const std::vector<Var>& x) {
          Rng rng(5);  // the same stream on every call: the same mask
          AttentionOptions options;
          options.function = f, options.chunk_size = kChunk, options.causal = true;
          options.dropout = 0.3, options.training = true, options.rng = &rng;
          return attention(x[0], x[1], x[2], x[3], mask, options);
        },
        (std::vector<Tensor>{random_tensor({kB, 8, kZ}, 25), random_tensor({kB, 8, kZ}, 26),
                             random_tensor({kB, 8, kI}, 27), random_tensor({kChunk, kChunk}, 28)}));
  }
}

TEST(AttentionFused, MatchesReferenceSoftmaxF64) {
  expect_fused_matches_reference(AttentionFunction::Softmax, DType::F64, 1e-12);
}
TEST(AttentionFused, MatchesReferenceLaplaceF64) {
  expect_fused_matches_reference(AttentionFunction::Laplace, DType::F64, 1e-12);
}
TEST(AttentionFused, MatchesReferenceRelu2F64) {
  expect_fused_matches_reference(AttentionFunction::Relu2, DType::F64, 1e-12);
}
TEST(AttentionFused, MatchesReferenceSoftmaxF32) {
  expect_fused_matches_reference(AttentionFunction::Softmax, DType::F32, 2e-6);
}
TEST(AttentionFused, MatchesReferenceLaplaceF32) {
  expect_fused_matches_reference(AttentionFunction::Laplace, DType::F32, 2e-6);
}
TEST(AttentionFused, MatchesReferenceRelu2F32) {
  expect_fused_matches_reference(AttentionFunction::Relu2, DType::F32, 2e-6);
}

TEST(AttentionFused, Float32SoftmaxKeepsItsAccuracyOverAWideRangeOfScores) {
  // The unmasked float rows use their own vectorised exp: scores spread over about +-100 (some weights
  // underflow to 0) must still match the F64 reference to float rounding.
  for (int64_t chunk : {int64_t{0}, int64_t{16}}) {
    Variant variant{AttentionFunction::Softmax, chunk, false, Padding::None, 32, 32};
    std::vector<Tensor> inputs{random_tensor({kB, 32, kZ}, 60, 7.0), random_tensor({kB, 32, kZ}, 61, 7.0),
                               random_tensor({kB, 32, kI}, 62),
                               random_tensor({variant.bias_rows(), variant.bias_cols()}, 63)};
    Result f32 = run(attention, variant, inputs, DType::F32, variant.options());
    Result f64 = run(attention_reference, variant, inputs, DType::F64, variant.options());
    EXPECT_LE(max_abs_diff(f32.weights.to(DType::F64), f64.weights), 2e-6) << "chunk " << chunk;
    EXPECT_LE(max_abs_diff(f32.out.to(DType::F64), f64.out), 1e-5 * max_abs(f64.out)) << "chunk " << chunk;
    EXPECT_LE(max_abs_diff(f32.grads[0].to(DType::F64), f64.grads[0]), 1e-4 * max_abs(f64.grads[0]));
  }
}

TEST(AttentionFused, MatchesReferenceOverManyProblemBlocks) {
  // The fused op works through blocks of about 1M scores: at chunk 256 that is 16 chunks, so 18 chunks
  // make a full block and a partial one. Padding, causal, bias and dropout all cross the block edge.
  const int64_t chunk = 256, length = 18 * chunk;
  for (AttentionFunction f : {AttentionFunction::Softmax, AttentionFunction::Laplace}) {
    SCOPED_TRACE(function_name(f));
    std::vector<Tensor> inputs{random_tensor({1, length, kZ}, 64), random_tensor({1, length, kZ}, 65),
                               random_tensor({1, length, kI}, 66), random_tensor({chunk, chunk}, 67, 0.3)};
    Tensor mask = Tensor::full({1, length}, 1, DType::I64);
    for (int64_t j = 15 * chunk + 5; j < 16 * chunk + 7; ++j) mask.data<int64_t>()[j] = 0;
    AttentionOptions options;
    options.function = f, options.chunk_size = chunk, options.causal = true;
    options.dropout = 0.2, options.training = true;
    auto run_op = [&](AttentionOp op, Rng& rng, Tensor* w) {
      options.rng = &rng;
      std::vector<Var> x;
      for (const Tensor& t : inputs) x.emplace_back(t, true);
      Var out = op(x[0], x[1], x[2], x[3], mask, options, w);
      out.backward(random_tensor(out.shape(), 68));
      std::vector<Tensor> r{out.value()};
      for (const Var& xi : x) r.push_back(xi.grad());
      return r;
    };
    Rng rng_a(9), rng_b(9);
    Tensor wf, wr;
    std::vector<Tensor> fused = run_op(attention, rng_a, &wf), reference = run_op(attention_reference, rng_b, &wr);
    EXPECT_LE(max_abs_diff(wf, wr), 1e-12);
    for (size_t i = 0; i < fused.size(); ++i)
      EXPECT_LE(max_abs_diff(fused[i], reference[i]), 1e-11 * std::max(max_abs(reference[i]), 1.0)) << i;
  }
}

TEST(AttentionFused, MatchesReferenceWithDropoutAndDropsAboutP) {
  for (AttentionFunction f : {AttentionFunction::Softmax, AttentionFunction::Laplace}) {
    SCOPED_TRACE(function_name(f));
    Variant variant{f, kChunk, false, Padding::Right, 8, 8};
    std::vector<Tensor> inputs = inputs_for(variant, 30);
    AttentionOptions options = variant.options();
    options.dropout = 0.25, options.training = true;
    Rng rng_a(77), rng_b(77);
    options.rng = &rng_a;
    Result fused = run(attention, variant, inputs, DType::F64, options);
    options.rng = &rng_b;
    Result reference = run(attention_reference, variant, inputs, DType::F64, options);
    EXPECT_EQ(rng_a.stream_position(), 1u);  // one stream per call
    EXPECT_LE(max_abs_diff(fused.out, reference.out), 1e-12);
    for (int i = 0; i < 4; ++i) EXPECT_LE(max_abs_diff(fused.grads[i], reference.grads[i]), 1e-12) << i;
    // The weights output is before dropout: the same as without dropout.
    Result plain = run(attention, variant, inputs, DType::F64, variant.options());
    EXPECT_LE(max_abs_diff(fused.weights, plain.weights), 1e-15);
    EXPECT_GT(max_abs_diff(fused.out, plain.out), 1e-3);
  }
  // The dropped fraction on a larger problem, and eval mode is the identity.
  Var q(random_tensor({4, 64, 8}, 31).to(DType::F32)), k(random_tensor({4, 64, 8}, 32).to(DType::F32));
  Var v(Tensor::full({4, 64, 64}, 1.0, DType::F32));
  AttentionOptions options;
  options.chunk_size = 64, options.dropout = 0.25, options.training = true;
  Rng rng(3);
  options.rng = &rng;
  // With v = 1 each output entry is sum_j w_j keep_j / (1 - p) = its row's kept mass.
  Tensor out = attention(q, k, v, Var(), Tensor(), options).value();
  double mean = 0;
  for (int64_t i = 0; i < out.numel(); ++i) mean += out.at(i) / out.numel();
  EXPECT_NEAR(mean, 1.0, 0.03);
  options.training = false;
  Tensor eval = attention(q, k, v, Var(), Tensor(), options).value();
  for (int64_t i = 0; i < eval.numel(); ++i) ASSERT_NEAR(eval.at(i), 1.0, 1e-5);
  EXPECT_EQ(rng.stream_position(), 1u);  // eval draws nothing
}

TEST(AttentionMasks, RowsWithNoVisibleKeyGetZeroWeightsNotNaN) {
  // Left padding with causal: rows 0..2 of example 0 see only padding, chunked or not, every function.
  for (AttentionFunction f : {AttentionFunction::Softmax, AttentionFunction::Laplace, AttentionFunction::Relu2})
    for (int64_t chunk : {int64_t{0}, kChunk})
      for (DType dtype : {DType::F32, DType::F64}) {
        Variant variant{f, chunk, true, Padding::Left, 8, 8};
        SCOPED_TRACE(variant.name());
        Result r = run(attention, variant, inputs_for(variant, 40), dtype, variant.options());
        EXPECT_TRUE(all_finite(r.out));
        EXPECT_TRUE(all_finite(r.weights));
        for (const Tensor& g : r.grads) EXPECT_TRUE(all_finite(g));
        for (int64_t i = 0; i < 3; ++i) {
          for (int64_t j = 0; j < 4; ++j) EXPECT_EQ(r.weights.at(i * 4 + j), 0.0) << i << "," << j;  // chunk 0
          for (int64_t d = 0; d < kI; ++d) EXPECT_EQ(r.out.at(i * kI + d), 0.0);
        }
      }
}

TEST(AttentionMasks, SoftmaxOverAChunkOfPaddingMasksNothing) {
  // WholeChunk: example 0's first chunk is all padding. Softmax attends over all of it (rows sum to 1);
  // laplace / relu2 multiply it out.
  for (AttentionFunction f : {AttentionFunction::Softmax, AttentionFunction::Relu2}) {
    Variant variant{f, kChunk, false, Padding::WholeChunk, 8, 8};
    Result r = run(attention, variant, inputs_for(variant, 41), DType::F64, variant.options());
    ASSERT_EQ(r.weights.shape(), (Shape{kB, 2, kChunk, kChunk}));
    for (int64_t i = 0; i < kChunk; ++i) {
      double total = 0;
      for (int64_t j = 0; j < kChunk; ++j) total += r.weights.at(i * kChunk + j);
      EXPECT_NEAR(total, f == AttentionFunction::Softmax ? 1.0 : 0.0, 1e-12) << function_name(f) << " row " << i;
    }
    // Example 1's second chunk is all padding too; its first chunk is all tokens.
    for (int64_t i = 0; i < kChunk; ++i) {
      double total = 0;
      for (int64_t j = 0; j < kChunk; ++j) total += r.weights.at(3 * 16 + i * kChunk + j);
      EXPECT_NEAR(total, f == AttentionFunction::Softmax ? 1.0 : 0.0, 1e-12);
    }
  }
}

TEST(AttentionMasks, ElementScoresAreDividedByTokensOrTheCausalCount) {
  // Z = 1, q = k = 1, no bias: every score is 1/n, relu2 weight (1/n)^2.
  AttentionOptions options;
  options.function = AttentionFunction::Relu2;
  Var q(Tensor::full({2, 8, 1}, 1.0, DType::F64)), k(Tensor::full({2, 8, 1}, 1.0, DType::F64));
  Var v(random_tensor({2, 8, 3}, 42));
  Tensor mask = key_mask_for(Padding::Right, 8);  // example 1 has 5 tokens
  Tensor w;
  attention(q, k, v, Var(), mask, options, &w);
  EXPECT_DOUBLE_EQ(w.at(0), 1.0 / 64);
  EXPECT_DOUBLE_EQ(w.at(64), 1.0 / 25);
  EXPECT_DOUBLE_EQ(w.at(64 + 7), 0.0);  // a padded key
  options.causal = true;
  attention(q, k, v, Var(), mask, options, &w);
  for (int64_t i = 0; i < 8; ++i) EXPECT_DOUBLE_EQ(w.at(64 + i * 8), 1.0 / ((i + 1) * (i + 1))) << i;
  // L = 2 against S = 8: the queries sit at key positions 6 and 7, counts 7 and 8.
  attention(Var(Tensor::full({2, 2, 1}, 1.0, DType::F64)), k, v, Var(), Tensor(), options, &w);
  ASSERT_EQ(w.shape(), (Shape{2, 1, 2, 8}));
  EXPECT_DOUBLE_EQ(w.at(0), 1.0 / 49);
  EXPECT_DOUBLE_EQ(w.at(6), 1.0 / 49);
  EXPECT_DOUBLE_EQ(w.at(7), 0.0);
  EXPECT_DOUBLE_EQ(w.at(8 + 7), 1.0 / 64);
}

TEST(AttentionMasks, SoftmaxScalesByInverseSqrtZAndAddsTheBias) {
  // Z = 4, q = (2, 0, 0, 0), k_j = (j, 0, 0, 0): scores 2j/2 = j, plus bias.
  Tensor qt = Tensor::zeros({1, 1, 4}, DType::F64), kt = Tensor::zeros({1, 3, 4}, DType::F64);
  qt.data<double>()[0] = 2;
  for (int j = 0; j < 3; ++j) kt.data<double>()[j * 4] = j;
  Tensor bt = Tensor::from(std::vector<double>{0.5, 0.0, -1.0}, {1, 3});
  Tensor w;
  attention(Var(qt), Var(kt), Var(random_tensor({1, 3, 2}, 43)), Var(bt), Tensor(), AttentionOptions{}, &w);
  double x[] = {0.5, 1.0, 1.0}, total = 0;
  for (double xi : x) total += std::exp(xi);
  for (int j = 0; j < 3; ++j) EXPECT_NEAR(w.at(j), std::exp(x[j]) / total, 1e-15);
}

TEST(AttentionMasks, ChunksNeverSeeEachOther) {
  Variant variant{AttentionFunction::Softmax, kChunk, false, Padding::None, 8, 8};
  std::vector<Tensor> inputs = inputs_for(variant, 44);
  Var q(inputs[0]), k(inputs[1]), v(inputs[2]), bias(inputs[3]);
  Tensor before = attention(q, k, v, bias, Tensor(), variant.options()).value();
  Tensor k2 = inputs[1].clone(), v2 = inputs[2].clone();
  for (int64_t j = 4; j < 8; ++j) {  // change the second chunk's keys and values of example 0
    for (int64_t d = 0; d < kZ; ++d) k2.data<double>()[j * kZ + d] += 1.0;
    for (int64_t d = 0; d < kI; ++d) v2.data<double>()[j * kI + d] += 1.0;
  }
  Tensor after = attention(q, Var(k2), Var(v2), bias, Tensor(), variant.options()).value();
  for (int64_t i = 0; i < 4 * kI; ++i) EXPECT_EQ(before.at(i), after.at(i));  // first chunk: unchanged
  EXPECT_GT(std::abs(before.at(5 * kI) - after.at(5 * kI)), 1e-6);
}

TEST(AttentionMasks, CausalDecodingStepEqualsTheLastRowOfTheFullPass) {
  for (AttentionFunction f : {AttentionFunction::Softmax, AttentionFunction::Laplace, AttentionFunction::Relu2}) {
    SCOPED_TRACE(function_name(f));
    Variant variant{f, 0, true, Padding::Left, 8, 8};
    std::vector<Tensor> inputs = inputs_for(variant, 45);
    Tensor mask = key_mask_for(Padding::Left, 8);
    Tensor full =
        attention(Var(inputs[0]), Var(inputs[1]), Var(inputs[2]), Var(inputs[3]), mask, variant.options()).value();
    // The last query alone, with the bias's last row.
    Tensor q_last = Tensor::empty({kB, 1, kZ}, DType::F64), bias_last = Tensor::empty({1, 8}, DType::F64);
    for (int64_t b = 0; b < kB; ++b)
      for (int64_t d = 0; d < kZ; ++d) q_last.data<double>()[b * kZ + d] = inputs[0].at((b * 8 + 7) * kZ + d);
    for (int64_t j = 0; j < 8; ++j) bias_last.data<double>()[j] = inputs[3].at(7 * 8 + j);
    Tensor step =
        attention(Var(q_last), Var(inputs[1]), Var(inputs[2]), Var(bias_last), mask, variant.options()).value();
    for (int64_t b = 0; b < kB; ++b)
      for (int64_t d = 0; d < kI; ++d) EXPECT_NEAR(step.at(b * kI + d), full.at((b * 8 + 7) * kI + d), 1e-14);
  }
}

TEST(AttentionShapes, WeightsAreHFAttentionsShapes) {
  Variant chunked{AttentionFunction::Softmax, kChunk, false, Padding::None, 8, 8};
  Variant whole{AttentionFunction::Softmax, 0, false, Padding::None, 3, 8};
  EXPECT_EQ(run(attention, chunked, inputs_for(chunked, 46), DType::F32, chunked.options()).weights.shape(),
            (Shape{kB, 2, kChunk, kChunk}));
  Result r = run(attention, whole, inputs_for(whole, 47), DType::F32, whole.options());
  EXPECT_EQ(r.weights.shape(), (Shape{kB, 1, 3, 8}));
  EXPECT_EQ(r.out.shape(), (Shape{kB, 3, kI}));
  EXPECT_EQ(r.weights.dtype(), DType::F32);
}

TEST(AttentionShapes, BadShapesAreErrorsNamingTheOp) {
  Var q(random_tensor({2, 8, 4}, 50)), k(random_tensor({2, 8, 4}, 51)), v(random_tensor({2, 8, 6}, 52));
  AttentionOptions chunked;
  chunked.chunk_size = 4;
  auto expect_error = [](auto&& call, const std::string& fragment) {
    try {
      call();
      ADD_FAILURE() << "expected an error mentioning " << fragment;
    } catch (const Error& e) {
      std::string message = e.what();
      EXPECT_NE(message.find("[attention]"), std::string::npos) << message;
      EXPECT_NE(message.find(fragment), std::string::npos) << message;
    }
  };
  expect_error([&] { attention(Var(random_tensor({8, 4}, 53)), k, v, Var(), Tensor(), {}); }, "q must be");
  expect_error([&] { attention(q, Var(random_tensor({2, 8, 5}, 54)), v, Var(), Tensor(), {}); }, "k has shape");
  expect_error([&] { attention(q, k, Var(random_tensor({2, 7, 6}, 55)), Var(), Tensor(), {}); }, "v has shape");
  expect_error([&] { attention(q, k, v, Var(random_tensor({8, 4}, 56)), Tensor(), {}); }, "bias has shape");
  expect_error([&] { attention(q, k, v, Var(random_tensor({8, 8}, 57)), Tensor(), chunked); }, "(4, 4)");
  expect_error([&] { attention(q, k, v, Var(), Tensor::zeros({2, 7}, DType::I64), {}); }, "key_mask");
  AttentionOptions three;
  three.chunk_size = 3;
  expect_error([&] { attention(q, k, v, Var(), Tensor(), three); }, "multiple of chunk_size");
  expect_error([&] { attention(Var(random_tensor({2, 4, 4}, 58)), k, v, Var(), Tensor(), chunked); }, "chunking");
  AttentionOptions no_rng;
  no_rng.dropout = 0.1, no_rng.training = true;
  expect_error([&] { attention(q, k, v, Var(), Tensor(), no_rng); }, "rng");
  expect_error([&] { attention(q.detach(), Var(k.value().to(DType::F32)), v, Var(), Tensor(), {}); }, "dtypes");
  EXPECT_THROW(attention_function_from_name("gelu"), Error);
  EXPECT_EQ(attention_function_from_name("laplace"), AttentionFunction::Laplace);
  EXPECT_EQ(attention_function_from_name("relu2"), AttentionFunction::Relu2);
  EXPECT_EQ(attention_function_from_name("softmax"), AttentionFunction::Softmax);
}
