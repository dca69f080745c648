// Adaptive softmax and adaptive input: the fused ops against their references from primitives,
// gradchecks of the ops and of the modules (every parameter, ignored rows, rows in every band, dropout,
// tied weights), normalised log-probabilities, score against log_probs and loss, tying, fairseq's names
// and initialisation, and the errors for bad options and inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "nn/adaptive.h"
#include "optim/optimizer.h"
#include "tests/gradcheck_util.h"

using namespace mega;
using mega::testing::error_of;
using mega::testing::random_tensor;

namespace {

// V 13 in three bands: head [0, 4), tail 0 [4, 8) of d 4, tail 1 [8, 13) of d 2.
AdaptiveOptions small_options(double dropout = 0) {
  AdaptiveOptions o;
  o.vocab_size = 13;
  o.dim = 8;
  o.cutoffs = {4, 8};
  o.factor = 2;
  o.dropout = dropout;
  return o;
}

// Two ignored rows, and rows targeting the head, tail 0 and tail 1 (both ends of each band).
Tensor small_targets() {
  return Tensor::from(std::vector<int64_t>{0, 3, -100, 5, 7, 12, 9, -100, 2, 8, 4}, {11});
}

// Head, clusters and tails (untied layout, or the tied layout with transposed projections) from seeds.
std::vector<Tensor> softmax_weight_tensors(bool transposed, double scale = 0.7) {
  return {random_tensor({4, 8}, 11, scale),  random_tensor({2, 8}, 12, scale),
          random_tensor(transposed ? Shape{8, 4} : Shape{4, 8}, 13, scale), random_tensor({4, 4}, 14, scale),
          random_tensor(transposed ? Shape{8, 2} : Shape{2, 8}, 15, scale), random_tensor({5, 2}, 16, scale)};
}

AdaptiveSoftmaxWeights weights_of(const std::vector<Var>& v, size_t first, bool transposed) {
  return {v[first], v[first + 1], {{v[first + 2], transposed, v[first + 3]}, {v[first + 4], transposed, v[first + 5]}}};
}

std::vector<Var> as_vars(const std::vector<Tensor>& tensors, bool requires_grad) {
  std::vector<Var> vars;
  for (const Tensor& t : tensors) vars.emplace_back(t, requires_grad);
  return vars;
}

void expect_close(const Tensor& a, const Tensor& b, double tol, const std::string& what) {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  for (int64_t i = 0; i < a.numel(); ++i) EXPECT_NEAR(a.at(i), b.at(i), tol) << what << " element " << i;
}

}  // namespace

TEST(AdaptiveSoftmaxOp, LossAndGradientsMatchTheReference) {
  for (bool transposed : {false, true}) {
    std::vector<Tensor> tensors{random_tensor({11, 8}, 10)};
    for (const Tensor& w : softmax_weight_tensors(transposed)) tensors.push_back(w);
    std::vector<Var> fused = as_vars(tensors, true), reference = as_vars(tensors, true);
    Rng rng(1);
    Var loss = adaptive_softmax_loss(fused[0], weights_of(fused, 1, transposed), small_targets(), -100, 0, false, rng);
    Var expected = adaptive_softmax_loss_reference(reference[0], weights_of(reference, 1, transposed), small_targets(), -100);
    EXPECT_NEAR(loss.item(), expected.item(), 1e-12);
    loss.backward();
    expected.backward();
    for (size_t i = 0; i < fused.size(); ++i)
      expect_close(fused[i].grad(), reference[i].grad(), 1e-12, "input " + std::to_string(i));
    // Ignored rows get no gradient.
    for (int64_t j = 0; j < 8; ++j) EXPECT_EQ(fused[0].grad().at(2 * 8 + j), 0.0);
  }
}

TEST(AdaptiveSoftmaxOp, GradcheckEveryInputWithDropout) {
  for (bool transposed : {false, true}) {
    std::vector<Tensor> inputs{random_tensor({11, 8}, 20)};
    for (const Tensor& w : softmax_weight_tensors(transposed)) inputs.push_back(w);
    EXPECT_GRADCHECK(
        [&](const std::vector<Var>& v) {
          Rng rng(7);  // the same tail masks at every evaluation
          return adaptive_softmax_loss(v[0], weights_of(v, 1, transposed), small_targets(), -100, 0.3, true, rng);
        },
        inputs);
  }
}

TEST(AdaptiveSoftmaxOp, AllIgnoredGivesZeroAndZeroGradients) {
  std::vector<Var> v = as_vars({random_tensor({3, 8}, 1)}, true);
  for (Var w : as_vars(softmax_weight_tensors(false), true)) v.push_back(w);
  Rng rng(1);
  Var loss = adaptive_softmax_loss(v[0], weights_of(v, 1, false), Tensor::full({3}, -1, DType::I64), -1, 0, false, rng);
  EXPECT_EQ(loss.item(), 0.0);
  loss.backward();
  for (const Var& x : v)
    for (int64_t i = 0; i < x.numel(); ++i) EXPECT_EQ(x.grad().at(i), 0.0);
}

TEST(AdaptiveSoftmaxOp, OnlyTheTailsOfTheTargetsSeeRows) {
  // Every target in the head: the tails are never evaluated, so they get exactly zero gradient.
  std::vector<Var> v = as_vars({random_tensor({4, 8}, 1)}, true);
  for (Var w : as_vars(softmax_weight_tensors(false), true)) v.push_back(w);
  Rng rng(1);
  Var loss = adaptive_softmax_loss(v[0], weights_of(v, 1, false), Tensor::from(std::vector<int64_t>{0, 1, 2, 3}, {4}),
                                   -100, 0, false, rng);
  loss.backward();
  for (size_t i = 3; i < v.size(); ++i)
    for (int64_t j = 0; j < v[i].numel(); ++j) EXPECT_EQ(v[i].grad().at(j), 0.0) << "tail input " << i;
  EXPECT_NE(v[2].grad().at(0), 0.0);  // the cluster logits still get the head's softmax gradient
}

TEST(AdaptiveSoftmaxOp, F32MatchesF64) {
  std::vector<Tensor> tensors{random_tensor({11, 8}, 10)};
  for (const Tensor& w : softmax_weight_tensors(false)) tensors.push_back(w);
  std::vector<Tensor> single;
  for (const Tensor& t : tensors) single.push_back(t.to(DType::F32));
  std::vector<Var> v64 = as_vars(tensors, true), v32 = as_vars(single, true);
  Rng rng(1);
  Var l64 = adaptive_softmax_loss(v64[0], weights_of(v64, 1, false), small_targets(), -100, 0, false, rng);
  Var l32 = adaptive_softmax_loss(v32[0], weights_of(v32, 1, false), small_targets(), -100, 0, false, rng);
  EXPECT_EQ(l32.dtype(), DType::F32);
  EXPECT_NEAR(l32.item(), l64.item(), 1e-5);
  l64.backward();
  l32.backward();
  for (size_t i = 0; i < v64.size(); ++i) expect_close(v32[i].grad(), v64[i].grad(), 1e-5, "input " + std::to_string(i));
}

TEST(AdaptiveInputOp, MatchesTheReferenceAndGradchecks) {
  Tensor ids = Tensor::from(std::vector<int64_t>{0, 4, 12, 1, 1, 7, 8, 3, 9, 5, 1, 0}, {3, 4});
  std::vector<Tensor> inputs{random_tensor({4, 8}, 1), random_tensor({4, 4}, 2), random_tensor({5, 2}, 3),
                             random_tensor({8, 8}, 4), random_tensor({8, 4}, 5), random_tensor({8, 2}, 6)};
  auto split = [](const std::vector<Var>& v) {
    return std::pair{std::vector<Var>{v[0], v[1], v[2]}, std::vector<Var>{v[3], v[4], v[5]}};
  };
  std::vector<Var> fused = as_vars(inputs, true), reference = as_vars(inputs, true);
  auto [fe, fp] = split(fused);
  auto [re, rp] = split(reference);
  Var out = adaptive_input(ids, fe, fp, /*padding_idx=*/1);
  Var expected = adaptive_input_reference(ids, re, rp, 1);
  EXPECT_EQ(out.shape(), (Shape{3, 4, 8}));
  expect_close(out.value(), expected.value(), 1e-12, "output");
  Tensor cotangent = random_tensor({3, 4, 8}, 9);
  out.backward(cotangent);
  expected.backward(cotangent);
  for (size_t i = 0; i < fused.size(); ++i)
    expect_close(fused[i].grad(), reference[i].grad(), 1e-12, "input " + std::to_string(i));
  for (int64_t j = 0; j < 8; ++j) EXPECT_EQ(fused[0].grad().at(1 * 8 + j), 0.0) << "padding row";

  // Without padding: the padding row's withheld gradient is by design not the true derivative.
  EXPECT_GRADCHECK(
      [&](const std::vector<Var>& v) {
        auto [e, p] = split(v);
        return adaptive_input(ids, e, p);
      },
      inputs);
}

TEST(AdaptiveInputModule, GradcheckEveryParameter) {
  AdaptiveInput input(small_options());
  Tensor ids = Tensor::from(std::vector<int64_t>{0, 4, 12, 2, 1, 7, 8, 3, 9, 5}, {2, 5});
  std::vector<Tensor> inputs;
  for (const auto& [name, p] : input.named_parameters()) inputs.push_back(random_tensor(p.shape(), inputs.size() + 30));
  EXPECT_GRADCHECK(
      [&](const std::vector<Var>& v) {
        for (int64_t b = 0; b < 3; ++b) {
          input.embedding_weight(b) = v[2 * b];
          input.projection_weight(b) = v[2 * b + 1];
        }
        return input.forward(ids);
      },
      inputs);
}

TEST(AdaptiveSoftmaxModule, GradcheckHiddenAndEveryParameter) {
  AdaptiveSoftmax softmax(small_options(/*dropout=*/0.25));
  softmax.train();
  std::vector<Tensor> inputs{random_tensor({11, 8}, 40)};
  for (const auto& [name, p] : softmax.named_parameters()) inputs.push_back(random_tensor(p.shape(), inputs.size() + 40, 0.7));
  ASSERT_EQ(inputs.size(), 7u);
  EXPECT_GRADCHECK(
      [&](const std::vector<Var>& v) {
        softmax.head_word_weight() = v[1];
        softmax.head_cluster_weight() = v[2];
        for (int64_t i = 0; i < 2; ++i) {
          softmax.tail_projection_weight(i) = v[3 + 2 * i];
          softmax.tail_output_weight(i) = v[4 + 2 * i];
        }
        Rng rng(3);  // the same input and tail dropout masks at every evaluation
        return softmax.loss(v[0], small_targets(), rng);
      },
      inputs);
}

TEST(AdaptiveSoftmaxModule, GradcheckTiedThroughTheInput) {
  // Input and softmax share the embeddings and tail projections: each shared weight's gradient is the
  // sum of both uses. Hidden is the input's output, so ids and targets shift by one as in a language model.
  AdaptiveOptions o = small_options(0.2);
  AdaptiveInput input(o);
  AdaptiveSoftmax softmax(o);
  softmax.train();
  Tensor ids = Tensor::from(std::vector<int64_t>{0, 4, 12, 2, 1, 7, 8, 3, 9, 5, 11}, {11});
  std::vector<Tensor> inputs;
  for (const auto& [name, p] : input.named_parameters()) inputs.push_back(random_tensor(p.shape(), inputs.size() + 50, 0.7));
  inputs.push_back(random_tensor({2, 8}, 60, 0.7));  // head.class_proj.weight, the softmax's own
  EXPECT_GRADCHECK(
      [&](const std::vector<Var>& v) {
        for (int64_t b = 0; b < 3; ++b) {
          input.embedding_weight(b) = v[2 * b];
          input.projection_weight(b) = v[2 * b + 1];
        }
        softmax.tie_to(input);
        softmax.head_cluster_weight() = v[6];
        Rng rng(5);
        return softmax.loss(input.forward(ids), small_targets(), rng);
      },
      inputs);
}

TEST(AdaptiveSoftmaxModule, LogProbsAreNormalisedAndScoreMatchesThemAndTheLoss) {
  for (bool tie : {false, true}) {
    AdaptiveOptions o = small_options(0.1);
    AdaptiveInput input(o);
    AdaptiveSoftmax softmax(o);
    if (tie) softmax.tie_to(input);
    Rng init(9);
    input.init_weights(init);
    softmax.init_weights(init);
    softmax.eval();
    Tensor hidden = random_tensor({11, 8}, 70, 2.0).to(DType::F32);
    Tensor log_probs = softmax.log_probs(hidden);
    ASSERT_EQ(log_probs.shape(), (Shape{11, 13}));
    double expected = 0;
    const Tensor targets = small_targets();
    for (int64_t r = 0; r < 11; ++r) {
      double total = 0;
      for (int64_t c = 0; c < 13; ++c) total += std::exp(log_probs.at(r * 13 + c));
      EXPECT_NEAR(total, 1.0, 1e-5) << "row " << r;
      if (targets.at(r) != -100) expected -= log_probs.at(r * 13 + static_cast<int64_t>(targets.at(r)));
    }
    AdaptiveSoftmax::Scored scored = softmax.score(hidden, targets);
    EXPECT_EQ(scored.count, 9);
    EXPECT_NEAR(scored.nll_sum, expected, 1e-4);
    Rng rng(1);
    Var loss = softmax.loss(Var(hidden), targets, rng);
    EXPECT_NEAR(loss.item() * static_cast<double>(scored.count), scored.nll_sum, 1e-4);
    // (B, L, H) hidden with (B, L) targets reads the same rows.
    AdaptiveSoftmax::Scored batched = softmax.score(hidden.narrow0(0, 10).reshape({2, 5, 8}),
                                                    targets.narrow0(0, 10).reshape({2, 5}));
    EXPECT_EQ(batched.count, 8);
    EXPECT_EQ(softmax.log_probs(hidden.narrow0(0, 10).reshape({2, 5, 8})).shape(), (Shape{2, 5, 13}));
  }
}

TEST(AdaptiveSoftmaxModule, DropoutOnlyInTrainingAndReproducible) {
  AdaptiveSoftmax softmax(small_options(0.5));
  Rng init(2);
  softmax.init_weights(init);
  Tensor hidden = random_tensor({11, 8}, 80).to(DType::F32);
  auto loss_with_seed = [&](uint64_t seed) {
    Rng rng(seed);
    return softmax.loss(Var(hidden), small_targets(), rng).item();
  };
  softmax.train();
  EXPECT_EQ(loss_with_seed(4), loss_with_seed(4));
  EXPECT_NE(loss_with_seed(4), loss_with_seed(5));
  const double training = loss_with_seed(4);
  softmax.eval();
  AdaptiveSoftmax::Scored scored = softmax.score(hidden, small_targets());
  EXPECT_NEAR(loss_with_seed(4), scored.nll_sum / static_cast<double>(scored.count), 1e-5);
  EXPECT_NE(training, loss_with_seed(4));
}

TEST(AdaptiveSoftmaxModule, TyingSharesTheVarsAndAStepChangesBoth) {
  AdaptiveOptions o = small_options();
  AdaptiveInput input(o);
  AdaptiveSoftmax softmax(o);
  softmax.tie_to(input);
  EXPECT_TRUE(softmax.tied());
  Rng init(3);
  input.init_weights(init);
  softmax.init_weights(init);
  auto parameter = [](const Module& m, const std::string& name) {
    for (const auto& [n, p] : m.named_parameters())
      if (n == name) return p;
    ADD_FAILURE() << "no parameter " << name;
    return Var();
  };
  const std::vector<std::pair<std::string, std::string>> shared{
      {"head.word_proj.weight", "embeddings.0.0.weight"}, {"tail.0.0.weight", "embeddings.1.1.weight"},
      {"tail.0.2.weight", "embeddings.1.0.weight"},      {"tail.1.0.weight", "embeddings.2.1.weight"},
      {"tail.1.2.weight", "embeddings.2.0.weight"}};
  for (const auto& [ours, theirs] : shared) EXPECT_TRUE(parameter(softmax, ours).same(parameter(input, theirs))) << ours;
  EXPECT_FALSE(parameter(softmax, "head.class_proj.weight").same(parameter(input, "embeddings.0.1.weight")));
  EXPECT_EQ(parameter(softmax, "tail.0.0.weight").shape(), (Shape{8, 4}));  // the input's (H, d) projection

  // One optimizer over both modules' distinct parameters; a step moves the shared tensors in both.
  std::vector<Var> params = input.parameters();
  for (const Var& p : softmax.parameters())
    if (std::none_of(params.begin(), params.end(), [&](const Var& q) { return q.same(p); })) params.push_back(p);
  EXPECT_EQ(params.size(), 7u);  // 6 of the input, and the softmax's cluster logits
  std::map<std::string, Tensor> before_input, before_softmax;
  for (const auto& [n, t] : input.state_dict()) before_input[n] = t.clone();
  for (const auto& [n, t] : softmax.state_dict()) before_softmax[n] = t.clone();
  Tensor ids = Tensor::from(std::vector<int64_t>{0, 4, 12, 2, 1, 7, 8, 3, 9, 5, 11}, {11});
  Rng rng(1);
  softmax.loss(input.forward(ids), small_targets(), rng).backward();
  Optimizer sgd({ParamGroup{params, {}, 1.0, 0.0}}, OptimizerOptions{OptimizerKind::Sgd});
  sgd.step(0.5);
  auto changed = [](const Tensor& a, const Tensor& b) {
    for (int64_t i = 0; i < a.numel(); ++i)
      if (a.at(i) != b.at(i)) return true;
    return false;
  };
  for (const auto& [ours, theirs] : shared) {
    EXPECT_TRUE(changed(softmax.state_dict()[ours], before_softmax[ours])) << ours;
    EXPECT_TRUE(changed(input.state_dict()[theirs], before_input[theirs])) << theirs;
    expect_close(softmax.state_dict()[ours], input.state_dict()[theirs], 0, ours);
  }
}

TEST(AdaptiveModules, FairseqNamesShapesAndInitialisation) {
  AdaptiveOptions o;
  o.vocab_size = 100;
  o.dim = 16;
  o.cutoffs = {20, 60};
  o.factor = 4;
  o.padding_idx = 1;
  AdaptiveInput input(o);
  AdaptiveSoftmax softmax(o);
  std::vector<std::pair<std::string, Shape>> input_names{
      {"embeddings.0.0.weight", {20, 16}}, {"embeddings.0.1.weight", {16, 16}}, {"embeddings.1.0.weight", {40, 4}},
      {"embeddings.1.1.weight", {16, 4}},  {"embeddings.2.0.weight", {40, 1}},  {"embeddings.2.1.weight", {16, 1}}};
  std::vector<std::pair<std::string, Shape>> softmax_names{
      {"head.word_proj.weight", {20, 16}}, {"head.class_proj.weight", {2, 16}}, {"tail.0.0.weight", {4, 16}},
      {"tail.0.2.weight", {40, 4}},        {"tail.1.0.weight", {1, 16}},        {"tail.1.2.weight", {40, 1}}};
  auto names_and_shapes = [](const Module& m) {
    std::vector<std::pair<std::string, Shape>> all;
    for (const auto& [n, p] : m.named_parameters()) all.emplace_back(n, p.shape());
    return all;
  };
  EXPECT_EQ(names_and_shapes(input), input_names);
  EXPECT_EQ(names_and_shapes(softmax), softmax_names);

  Rng rng(11);
  input.init_weights(rng);
  softmax.init_weights(rng);
  // Embeddings ~ N(0, d^-1/2), the padding row zero; every other weight xavier_uniform (the untied head
  // as one (22, 16) matrix).
  const Tensor band0 = input.embedding_weight(0).value();
  double sum_sq = 0;
  for (int64_t i = 0; i < band0.numel(); ++i) {
    if (i / 16 == 1) EXPECT_EQ(band0.at(i), 0.0);
    else sum_sq += band0.at(i) * band0.at(i);
  }
  EXPECT_NEAR(std::sqrt(sum_sq / (19 * 16)), 0.25, 0.03);
  auto max_abs = [](const Var& v) {
    double m = 0;
    for (int64_t i = 0; i < v.numel(); ++i) m = std::max(m, std::abs(v.value().at(i)));
    return m;
  };
  const double head_bound = std::sqrt(6.0 / (16 + 22));
  EXPECT_LE(max_abs(softmax.head_word_weight()), head_bound);
  EXPECT_GT(max_abs(softmax.head_word_weight()), 0.8 * head_bound);
  EXPECT_LE(max_abs(softmax.tail_output_weight(0)), std::sqrt(6.0 / (4 + 40)));
  EXPECT_LE(max_abs(input.projection_weight(1)), std::sqrt(6.0 / (4 + 16)));
  EXPECT_GT(max_abs(input.projection_weight(1)), 0.0);

  // Tied, init_weights leaves the shared weights to the input and draws only the cluster logits.
  AdaptiveSoftmax tied(o);
  tied.tie_to(input);
  Tensor words = input.embedding_weight(0).value().clone();
  Rng again(12);
  tied.init_weights(again);
  expect_close(input.embedding_weight(0).value(), words, 0, "tied head words");
  EXPECT_LE(max_abs(tied.head_cluster_weight()), std::sqrt(6.0 / (16 + 2)));
  EXPECT_GT(max_abs(tied.head_cluster_weight()), 0.0);
}

TEST(AdaptiveModules, BadOptionsNameTheField) {
  auto error_for = [](auto change) {
    AdaptiveOptions o = small_options();
    change(o);
    return error_of([&] { check_adaptive_options(o); });
  };
  EXPECT_EQ(error_of([] { check_adaptive_options(small_options()); }), "(no error)");
  EXPECT_EQ(error_for([](AdaptiveOptions& o) { o.vocab_size = 0; }), "[adaptive] vocab_size must be at least 2, got 0");
  EXPECT_EQ(error_for([](AdaptiveOptions& o) { o.dim = 0; }), "[adaptive] dim must be positive, got 0");
  EXPECT_EQ(error_for([](AdaptiveOptions& o) { o.cutoffs = {}; }),
            "[adaptive] cutoffs is empty: an adaptive softmax needs at least one cutoff (e.g. {20000, 60000}); use a "
            "plain softmax otherwise");
  EXPECT_EQ(error_for([](AdaptiveOptions& o) { o.cutoffs = {8, 4}; }),
            "[adaptive] cutoffs must be positive and strictly increasing: cutoffs[1] = 4 after 8");
  EXPECT_EQ(error_for([](AdaptiveOptions& o) { o.cutoffs = {0, 4}; }),
            "[adaptive] cutoffs must be positive and strictly increasing: cutoffs[0] = 0");
  EXPECT_EQ(error_for([](AdaptiveOptions& o) { o.cutoffs = {4, 13}; }),
            "[adaptive] cutoffs[1] = 13 must be below vocab_size = 13 (the last band ends at vocab_size)");
  EXPECT_EQ(error_for([](AdaptiveOptions& o) { o.factor = 0.5; }),
            "[adaptive] factor must be a finite number >= 1, got 0.5");
  EXPECT_EQ(error_for([](AdaptiveOptions& o) { o.dropout = 1; }), "[adaptive] dropout must be in [0, 1), got 1");
  EXPECT_EQ(error_for([](AdaptiveOptions& o) { o.padding_idx = 4; }),
            "[adaptive] padding_idx must be -1 (none) or an id of band 0, [0, 4), got 4");
  // The constructors check too.
  AdaptiveOptions bad = small_options();
  bad.cutoffs = {4, 4};
  EXPECT_EQ(error_of([&] { AdaptiveSoftmax softmax(bad); }),
            "[adaptive] cutoffs must be positive and strictly increasing: cutoffs[1] = 4 after 4");
  EXPECT_EQ(error_of([&] { AdaptiveInput input(bad); }),
            "[adaptive] cutoffs must be positive and strictly increasing: cutoffs[1] = 4 after 4");

  AdaptiveSoftmax softmax(small_options());
  AdaptiveOptions other = small_options();
  other.cutoffs = {4, 9};
  AdaptiveInput input(other);
  EXPECT_EQ(error_of([&] { softmax.tie_to(input); }),
            "[adaptive] tie_to: the input's cutoffs (4,9) differs from the softmax's (4,8)");
}

TEST(AdaptiveModules, BadInputsAreClearErrors) {
  AdaptiveSoftmax softmax(small_options());
  Rng rng(1);
  Var hidden(Tensor::zeros({3, 8}));
  EXPECT_EQ(error_of([&] { softmax.loss(hidden, Tensor::from(std::vector<int64_t>{0, 13, 1}, {3}), rng); }),
            "[adaptive_softmax_loss] target 13 (row 1) is out of range for a vocabulary of V = 13 (ignore_index is -100)");
  EXPECT_EQ(error_of([&] { softmax.loss(hidden, Tensor::from(std::vector<int64_t>{0, 1}, {2}), rng); }),
            "[adaptive_softmax] targets have shape (2) but hidden has shape (3, 8): one target per row of hidden");
  EXPECT_EQ(error_of([&] { softmax.loss(Var(Tensor::zeros({3, 7})), Tensor::zeros({3}, DType::I64), rng); }),
            "[adaptive_softmax] hidden must be (..., H) with H = 8, got (3, 7)");
  EXPECT_EQ(error_of([&] { softmax.loss(hidden, Tensor::zeros({3}), rng); }),
            "[adaptive_softmax_loss] targets must be I64, got F32");
  EXPECT_EQ(error_of([&] { softmax.loss(Var(Tensor::zeros({3, 8}, DType::F64)), Tensor::zeros({3}, DType::I64), rng); }),
            "[adaptive_softmax_loss] head_words is F32 but hidden is F64");
  AdaptiveInput input(small_options());
  EXPECT_EQ(error_of([&] { input.forward(Tensor::from(std::vector<int64_t>{3, -1}, {2})); }),
            "[adaptive_input] id -1 (element 1 of ids (2)) is out of range for a vocabulary of V = 13");
  EXPECT_EQ(error_of([&] { softmax.tail_output_weight(2); }), "[adaptive] tail 2 does not exist (there are 2)");
}
