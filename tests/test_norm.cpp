// The norms: F64 gradchecks of every variant, each fused op against a slow reference built from
// primitives (values and gradients), batch-norm running statistics against a hand computation, and the
// front ends' error messages.
#include <gtest/gtest.h>

#include <cmath>

#include "core/threading.h"
#include "ops/elementwise.h"
#include "ops/norm.h"
#include "ops/sync_batch_norm.h"
#include "ops/reduce.h"
#include "ops/shape.h"
#include "tests/gradcheck_util.h"

using namespace mega;
using mega::testing::error_of;
using mega::testing::random_tensor;

namespace {

constexpr double kEps = 1e-5;

// ---- Slow references from primitives -------------------------------------------------------------

Var reference_scale_norm(const Var& x, const Var& scalar) {
  Var y = x * rsqrt(mean(square(x), -1, true) + kEps);
  return scalar.defined() ? y * scalar : y;
}

Var reference_rms_norm(const Var& x, const Var& weight) {
  Var y = x * rsqrt(mean(square(x), -1, true) + kEps);
  return weight.defined() ? y * weight : y;
}

Var reference_layer_norm(const Var& x, const Var& weight, const Var& bias) {
  Var centred = x - mean(x, -1, true);
  Var y = centred * rsqrt(mean(square(centred), -1, true) + kEps);
  if (weight.defined()) y = y * weight;
  if (bias.defined()) y = y + bias;
  return y;
}

// Train mode: statistics over the rows of (N, D).
Var reference_batch_norm_train(const Var& x, const Var& weight, const Var& bias) {
  Shape shape = x.shape();
  Var rows = reshape(x, {-1, x.size(-1)});
  Var centred = rows - mean(rows, 0, true);
  Var y = centred * rsqrt(mean(square(centred), 0, true) + kEps);
  if (weight.defined()) y = y * weight;
  if (bias.defined()) y = y + bias;
  return reshape(y, shape);
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  double worst = 0;
  for (int64_t i = 0; i < a.numel(); ++i) worst = std::max(worst, std::abs(a.at(i) - b.at(i)));
  return worst;
}

// Runs `fused` and `reference` on the same inputs (F64 leaves), backpropagates one cotangent through
// each, and expects equal outputs and equal gradients for every input.
void expect_matches_reference(const std::function<Var(const std::vector<Var>&)>& fused,
                              const std::function<Var(const std::vector<Var>&)>& reference,
                              const std::vector<Tensor>& inputs) {
  auto leaves = [&] {
    std::vector<Var> v;
    for (const Tensor& t : inputs) v.emplace_back(t.clone(), true);
    return v;
  };
  std::vector<Var> a = leaves(), b = leaves();
  Var ya = fused(a), yb = reference(b);
  EXPECT_LT(max_abs_diff(ya.value(), yb.value()), 1e-12) << "forward";
  Tensor cotangent = random_tensor(ya.shape(), 99);
  ya.backward(cotangent);
  yb.backward(cotangent);
  for (size_t i = 0; i < inputs.size(); ++i)
    EXPECT_LT(max_abs_diff(a[i].grad(), b[i].grad()), 1e-10) << "gradient of input " << i;
}

BatchNormState fresh_state(int64_t D, double mean0 = 0, double var0 = 1) {
  return {Tensor::full({D}, mean0), Tensor::full({D}, var0), Tensor::zeros({}, DType::I64)};
}

}  // namespace

// ---- scale_norm ----------------------------------------------------------------------------------

TEST(NormScale, GradcheckWithScalar) {
  EXPECT_GRADCHECK([](const std::vector<Var>& v) { return scale_norm(v[0], v[1]); },
                   (std::vector<Tensor>{random_tensor({2, 3, 5}, 1), random_tensor({1}, 2, 0.5, 1.0)}));
}

TEST(NormScale, GradcheckWithoutScalar) {
  EXPECT_GRADCHECK([](const std::vector<Var>& v) { return scale_norm(v[0], Var()); },
                   (std::vector<Tensor>{random_tensor({4, 6}, 3)}));
}

TEST(NormScale, MatchesReference) {
  expect_matches_reference([](const std::vector<Var>& v) { return scale_norm(v[0], v[1]); },
                           [](const std::vector<Var>& v) { return reference_scale_norm(v[0], v[1]); },
                           {random_tensor({3, 4, 8}, 4), random_tensor({1}, 5, 0.5, 1.0)});
}

TEST(NormScale, HandValue) {
  // x = (3, 4): mean x^2 = 12.5, so y = 2 * x / sqrt(12.5 + eps).
  Var y = scale_norm(Var(Tensor::from(std::vector<double>{3, 4}, {1, 2})), Var(Tensor::from(std::vector<double>{2}, {1})));
  EXPECT_NEAR(y.value().at(0), 6 / std::sqrt(12.5 + kEps), 1e-14);
  EXPECT_NEAR(y.value().at(1), 8 / std::sqrt(12.5 + kEps), 1e-14);
}

// ---- rms_norm ------------------------------------------------------------------------------------

TEST(NormRms, GradcheckWithWeight) {
  EXPECT_GRADCHECK([](const std::vector<Var>& v) { return rms_norm(v[0], v[1]); },
                   (std::vector<Tensor>{random_tensor({3, 7}, 6), random_tensor({7}, 7, 0.5, 1.0)}));
}

TEST(NormRms, GradcheckWithoutWeight) {
  EXPECT_GRADCHECK([](const std::vector<Var>& v) { return rms_norm(v[0], Var()); },
                   (std::vector<Tensor>{random_tensor({2, 2, 5}, 8)}));
}

TEST(NormRms, MatchesReference) {
  expect_matches_reference([](const std::vector<Var>& v) { return rms_norm(v[0], v[1]); },
                           [](const std::vector<Var>& v) { return reference_rms_norm(v[0], v[1]); },
                           {random_tensor({5, 16}, 9, 2.0), random_tensor({16}, 10, 0.5, 1.0)});
}

TEST(NormRms, NormalisesUnlikeHf440) {
  // HF 4.40 returns x * weight; a normalising rms_norm gives rows of unit root mean square.
  Var y = rms_norm(Var(random_tensor({4, 32}, 11, 5.0)), Var(Tensor::full({32}, 1.0, DType::F64)));
  for (int64_t r = 0; r < 4; ++r) {
    double ms = 0;
    for (int64_t j = 0; j < 32; ++j) ms += y.value().at(r * 32 + j) * y.value().at(r * 32 + j);
    EXPECT_NEAR(ms / 32, 1.0, 1e-5);
  }
}

// ---- layer_norm ----------------------------------------------------------------------------------

TEST(NormLayer, GradcheckAffine) {
  EXPECT_GRADCHECK([](const std::vector<Var>& v) { return layer_norm(v[0], v[1], v[2]); },
                   (std::vector<Tensor>{random_tensor({2, 3, 6}, 12), random_tensor({6}, 13, 0.5, 1.0),
                                        random_tensor({6}, 14)}));
}

TEST(NormLayer, GradcheckNoAffine) {
  EXPECT_GRADCHECK([](const std::vector<Var>& v) { return layer_norm(v[0], Var(), Var()); },
                   (std::vector<Tensor>{random_tensor({4, 5}, 15, 3.0, 1.0)}));
}

TEST(NormLayer, MatchesReference) {
  expect_matches_reference([](const std::vector<Var>& v) { return layer_norm(v[0], v[1], v[2]); },
                           [](const std::vector<Var>& v) { return reference_layer_norm(v[0], v[1], v[2]); },
                           {random_tensor({3, 5, 12}, 16, 2.0, 0.5), random_tensor({12}, 17, 0.5, 1.0),
                            random_tensor({12}, 18)});
}

TEST(NormLayer, F32MatchesF64ForEveryNorm) {
  // The F32 kernels (the model's path) against the F64 ones, forward and input gradient.
  Tensor x = random_tensor({4, 16, 80}, 19, 3.0, 1.0), w = random_tensor({80}, 20), b = random_tensor({80}, 21);
  Tensor s = Tensor::from(std::vector<double>{1.5}, {1}), cotangent = random_tensor({4, 16, 80}, 22);
  std::vector<std::pair<const char*, std::function<Var(const Var&, const Var&, const Var&, const Var&)>>> norms = {
      {"layer_norm", [](const Var& xv, const Var& wv, const Var& bv, const Var&) { return layer_norm(xv, wv, bv); }},
      {"scale_norm", [](const Var& xv, const Var&, const Var&, const Var& sv) { return scale_norm(xv, sv); }},
      {"rms_norm", [](const Var& xv, const Var& wv, const Var&, const Var&) { return rms_norm(xv, wv); }},
      {"batch_norm", [](const Var& xv, const Var& wv, const Var& bv, const Var&) {
         BatchNormState state = fresh_state(80);
         return batch_norm(xv, wv, bv, state, true);
       }}};
  for (auto& [name, norm] : norms) {
    auto run = [&](DType dtype) {
      Var xv(x.to(dtype), true);
      Var y = norm(xv, Var(w.to(dtype)), Var(b.to(dtype)), Var(s.to(dtype)));
      y.backward(cotangent.to(dtype));
      return std::pair{y.value().to(DType::F64), xv.grad().to(DType::F64)};
    };
    auto [y32, g32] = run(DType::F32);
    auto [y64, g64] = run(DType::F64);
    EXPECT_LT(max_abs_diff(y32, y64), 1e-5) << name;
    EXPECT_LT(max_abs_diff(g32, g64), 1e-5) << name;
  }
}

TEST(NormLayer, ErrorsNameTheOpAndShapes) {
  Var x(Tensor::zeros({2, 8}));
  EXPECT_EQ(error_of([&] { layer_norm(x, Var(Tensor::zeros({7})), Var()); }),
            "[layer_norm] weight has shape (7) but the last dimension of x is 8");
  EXPECT_EQ(error_of([&] { layer_norm(x, Var(), Var(Tensor::zeros({8}, DType::F64))); }),
            "[layer_norm] bias is F64 but x is F32");
  EXPECT_EQ(error_of([&] { rms_norm(x, Var(Tensor::zeros({2, 8}))); }),
            "[rms_norm] weight has shape (2, 8) but the last dimension of x is 8");
  EXPECT_EQ(error_of([&] { scale_norm(x, Var(Tensor::zeros({2}))); }),
            "[scale_norm] scalar must have shape (1), got (2)");
  EXPECT_EQ(error_of([&] { layer_norm(Var(Tensor::zeros({2, 8}, DType::I64)), Var(), Var()); }),
            "[layer_norm] x must be F32 or F64, got I64");
}

// ---- batch_norm ----------------------------------------------------------------------------------

TEST(NormBatch, GradcheckTrainThroughTheBatchStatistics) {
  BatchNormState state = fresh_state(4);
  EXPECT_GRADCHECK([&](const std::vector<Var>& v) { return batch_norm(v[0], v[1], v[2], state, true); },
                   (std::vector<Tensor>{random_tensor({2, 3, 4}, 22, 2.0, 1.0), random_tensor({4}, 23, 0.5, 1.0),
                                        random_tensor({4}, 24)}));
}

TEST(NormBatch, GradcheckTrainNoAffine) {
  BatchNormState state = fresh_state(3);
  EXPECT_GRADCHECK([&](const std::vector<Var>& v) { return batch_norm(v[0], Var(), Var(), state, true); },
                   (std::vector<Tensor>{random_tensor({3, 2, 3}, 25)}));
}

TEST(NormBatch, GradcheckEval) {
  BatchNormState state{Tensor::from(std::vector<float>{0.5f, -1.0f, 2.0f}, {3}),
                       Tensor::from(std::vector<float>{2.0f, 0.5f, 1.5f}, {3}), Tensor::zeros({}, DType::I64)};
  EXPECT_GRADCHECK([&](const std::vector<Var>& v) { return batch_norm(v[0], v[1], v[2], state, false); },
                   (std::vector<Tensor>{random_tensor({2, 4, 3}, 26), random_tensor({3}, 27, 0.5, 1.0),
                                        random_tensor({3}, 28)}));
}

// ---- sync_batch_norm ------------------------------------------------------------------------------

// The hook of a rank whose partner holds the same batch: every sum doubles.
struct TwinRankHook {
  TwinRankHook() {
    set_sync_batch_norm_sum([](std::vector<double>& values) {
      for (double& v : values) v *= 2;
    });
  }
  ~TwinRankHook() { set_sync_batch_norm_sum(nullptr); }
};

TEST(NormSyncBatch, OneRankGradcheckThroughTheSyncedStatistics) {
  set_sync_batch_norm_sum([](std::vector<double>&) {});  // a world of one rank: the sums stay
  BatchNormState state = fresh_state(4);
  EXPECT_GRADCHECK([&](const std::vector<Var>& v) { return sync_batch_norm(v[0], v[1], v[2], state, true); },
                   (std::vector<Tensor>{random_tensor({2, 3, 4}, 22, 2.0, 1.0), random_tensor({4}, 23, 0.5, 1.0),
                                        random_tensor({4}, 24)}));
  set_sync_batch_norm_sum(nullptr);
}

TEST(NormSyncBatch, TwoRanksNormaliseAsBatchNormOfTheWholeBatch) {
  Tensor x = random_tensor({2, 3, 4}, 40, 2.0, 1.0), g = random_tensor({2, 3, 4}, 41);
  Tensor w = random_tensor({4}, 42, 0.5, 1.0), b = random_tensor({4}, 43);
  // The whole batch: this rank's rows and its twin's.
  Var whole_x(concat({Var(x), Var(x)}, 0).value(), true);
  BatchNormState whole_state = fresh_state(4);
  Var whole_y = batch_norm(whole_x, Var(w), Var(b), whole_state, true);
  sum(whole_y * Var(concat({Var(g), Var(g)}, 0).value())).backward();

  TwinRankHook twin;
  Var rank_x(x, true), rank_w(w, true), rank_b(b, true);
  BatchNormState rank_state = fresh_state(4);
  Var rank_y = sync_batch_norm(rank_x, rank_w, rank_b, rank_state, true);
  sum(rank_y * Var(g)).backward();
  const Tensor whole = whole_y.value(), whole_dx = whole_x.grad();
  for (int64_t i = 0; i < x.numel(); ++i) {
    EXPECT_NEAR(rank_y.value().data<double>()[i], whole.data<double>()[i], 1e-9);
    EXPECT_NEAR(rank_x.grad().data<double>()[i], whole_dx.data<double>()[i], 1e-9);
  }
  // The weight gradient is this rank's half; the gradient allreduce adds the twin's.
  EXPECT_NEAR(2 * rank_w.grad().data<double>()[1], 0.0 + [&] {
    Var wv(w, true);
    BatchNormState s = fresh_state(4);
    sum(batch_norm(Var(concat({Var(x), Var(x)}, 0).value()), wv, Var(b), s, true) *
        Var(concat({Var(g), Var(g)}, 0).value())).backward();
    return wv.grad().data<double>()[1];
  }(), 1e-9);
  EXPECT_NEAR(rank_state.running_var.data<float>()[2], whole_state.running_var.data<float>()[2], 1e-6);
}

TEST(NormBatch, TrainMatchesReference) {
  BatchNormState state = fresh_state(5);
  expect_matches_reference(
      [&](const std::vector<Var>& v) { return batch_norm(v[0], v[1], v[2], state, true); },
      [](const std::vector<Var>& v) { return reference_batch_norm_train(v[0], v[1], v[2]); },
      {random_tensor({3, 70, 5}, 29, 2.0, 1.0), random_tensor({5}, 30, 0.5, 1.0), random_tensor({5}, 31)});
}

TEST(NormBatch, TrainUpdatesRunningStatisticsLikePyTorch) {
  // x (B 2, L 2, D 2). Feature 0 holds 1, 2, 3, 6: mean 3, squared deviations 4 + 1 + 0 + 9 = 14, so
  // biased variance 14/4 = 3.5 and unbiased 14/3. Feature 1 holds 0, 0, 0, 4: mean 1, squared
  // deviations 1 + 1 + 1 + 9 = 12, biased 3, unbiased 4.
  Tensor x = Tensor::from(std::vector<double>{1, 0, 2, 0, 3, 0, 6, 4}, {2, 2, 2});
  BatchNormState state{Tensor::from(std::vector<float>{0.5f, -1.0f}, {2}),
                       Tensor::from(std::vector<float>{2.0f, 1.0f}, {2}), Tensor::zeros({}, DType::I64)};
  Var y = batch_norm(Var(x), Var(), Var(), state, true);
  // running = 0.9 running + 0.1 batch
  EXPECT_NEAR(state.running_mean.at(0), 0.9 * 0.5 + 0.1 * 3, 1e-6);
  EXPECT_NEAR(state.running_mean.at(1), 0.9 * -1.0 + 0.1 * 1, 1e-6);
  EXPECT_NEAR(state.running_var.at(0), 0.9 * 2.0 + 0.1 * 14.0 / 3.0, 1e-6);
  EXPECT_NEAR(state.running_var.at(1), 0.9 * 1.0 + 0.1 * 4.0, 1e-6);
  EXPECT_EQ(state.num_batches_tracked.item(), 1);
  EXPECT_EQ(state.running_mean.dtype(), DType::F32);
  // The output uses the biased batch variance.
  EXPECT_NEAR(y.value().at(0), (1 - 3) / std::sqrt(3.5 + kEps), 1e-12);
  EXPECT_NEAR(y.value().at(7), (4 - 1) / std::sqrt(3.0 + kEps), 1e-12);
  batch_norm(Var(x), Var(), Var(), state, true);
  EXPECT_EQ(state.num_batches_tracked.item(), 2);
  EXPECT_NEAR(state.running_mean.at(0), 0.9 * (0.9 * 0.5 + 0.1 * 3) + 0.1 * 3, 1e-6);
}

TEST(NormBatch, EvalUsesRunningStatisticsAndLeavesThemAlone) {
  Tensor x = Tensor::from(std::vector<double>{1, 0, 2, 0, 3, 0, 6, 4}, {2, 2, 2});
  BatchNormState state{Tensor::from(std::vector<float>{0.5f, -1.0f}, {2}),
                       Tensor::from(std::vector<float>{2.0f, 1.0f}, {2}), Tensor::zeros({}, DType::I64)};
  Var w(Tensor::from(std::vector<double>{2, 3}, {2})), b(Tensor::from(std::vector<double>{0.25, -1}, {2}));
  Var y = batch_norm(Var(x), w, b, state, false);
  EXPECT_NEAR(y.value().at(0), (1 - 0.5) / std::sqrt(2 + kEps) * 2 + 0.25, 1e-7);
  EXPECT_NEAR(y.value().at(7), (4 + 1) / std::sqrt(1 + kEps) * 3 - 1, 1e-6);
  EXPECT_EQ(state.running_mean.at(0), 0.5);
  EXPECT_EQ(state.running_var.at(1), 1.0);
  EXPECT_EQ(state.num_batches_tracked.item(), 0);
}

TEST(NormBatch, ResultIndependentOfThreadCount) {
  Tensor x = random_tensor({8, 512, 16}, 32).to(DType::F32), cotangent = random_tensor({8, 512, 16}, 33).to(DType::F32);
  auto run = [&](int threads) {
    set_num_threads(threads);
    BatchNormState state = fresh_state(16);
    Var xv(x, true), w(Tensor::full({16}, 1.5f), true);
    Var y = batch_norm(xv, w, Var(), state, true);
    y.backward(cotangent);
    set_num_threads(0);
    return std::vector<Tensor>{y.value(), xv.grad(), w.grad(), state.running_var};
  };
  std::vector<Tensor> one = run(1), two = run(2);
  for (size_t i = 0; i < one.size(); ++i) EXPECT_EQ(max_abs_diff(one[i], two[i]), 0.0) << "tensor " << i;
}

TEST(NormBatch, Errors) {
  BatchNormState state = fresh_state(4);
  EXPECT_EQ(error_of([&] { batch_norm(Var(Tensor::zeros({2, 3, 5})), Var(), Var(), state, true); }),
            "[batch_norm] state.running_mean has shape (4) but the last dimension of x is 5");
  EXPECT_EQ(error_of([&] { batch_norm(Var(Tensor::zeros({1, 1, 4})), Var(), Var(), state, true); }),
            "[batch_norm] training needs more than one value per feature, got x of shape (1, 1, 4)");
}
