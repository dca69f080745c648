// Optimizers against hand-computed steps (F64 so the numbers are exact to ~1e-15), parameter groups,
// gradient clipping and state save/load. The reference numbers come from the formulas in
// optim/optimizer.cpp evaluated by hand (a few lines of Python arithmetic), with gradients
// g1 = (0.5, -0.25), g2 = (0.1, 0.3), g3 = (-0.2, 0.4) applied to p0 = (1, -2).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/safetensors.h"
#include "tests/gradcheck_util.h"
#include "ops/elementwise.h"
#include "ops/reduce.h"
#include "optim/optimizer.h"

using namespace mega;

namespace {

const std::vector<std::vector<double>> kGrads = {{0.5, -0.25}, {0.1, 0.3}, {-0.2, 0.4}};

Var fresh_param() { return Var::parameter(Tensor::from(std::vector<double>{1.0, -2.0}, {2})); }

// Runs the three steps and checks the parameter after each against `expected`.
void expect_steps(OptimizerOptions options, double lr, double weight_decay,
                  const std::vector<std::vector<double>>& expected) {
  Var p = fresh_param();
  Optimizer opt({ParamGroup{{p}, {"p"}, 1.0, weight_decay}}, options);
  for (size_t t = 0; t < expected.size(); ++t) {
    p.set_grad(Tensor::from(kGrads[t], {2}));
    opt.step(lr);
    for (int i = 0; i < 2; ++i)
      EXPECT_NEAR(p.value().at(i), expected[t][i], 1e-12) << "step " << t + 1 << " element " << i;
  }
}

}  // namespace

TEST(Optim, SgdWithWeightDecay) {
  OptimizerOptions o;
  o.kind = OptimizerKind::Sgd;
  expect_steps(o, 0.1, 0.1, {{0.94, -1.955}, {0.9206, -1.96545}, {0.931394, -1.9857955}});
}

TEST(Optim, SgdMomentum) {
  OptimizerOptions o;
  o.kind = OptimizerKind::Sgd;
  o.momentum = 0.9;
  expect_steps(o, 0.1, 0.0, {{0.95, -1.975}, {0.895, -1.9825}, {0.8655, -2.02925}});
}

TEST(Optim, SgdMomentumDampeningAndWeightDecay) {
  OptimizerOptions o;
  o.kind = OptimizerKind::Sgd;
  o.momentum = 0.9;
  o.dampening = 0.5;  // not applied on the first step: the buffer starts as the gradient itself
  expect_steps(o, 0.1, 0.01, {{0.949, -1.973}, {0.8976255, -1.9627135}, {0.86093963725, -1.97247429325}});
}

TEST(Optim, SgdNesterov) {
  OptimizerOptions o;
  o.kind = OptimizerKind::Sgd;
  o.momentum = 0.9;
  o.nesterov = true;
  expect_steps(o, 0.1, 0.0, {{0.905, -1.9525}, {0.8455, -1.98925}, {0.83895, -2.071325}});
}

TEST(Optim, AdamWithL2WeightDecay) {
  OptimizerOptions o;
  o.kind = OptimizerKind::Adam;
  expect_steps(o, 0.01, 0.1,
               {{0.9900000001666667, -1.9900000002222222},
                {0.981296786265348, -1.9850926344209703},
                {0.9756723162326255, -1.9841766162762053}});
}

TEST(Optim, AdamWDecoupledWeightDecay) {
  OptimizerOptions o;
  o.kind = OptimizerKind::AdamW;
  expect_steps(o, 0.01, 0.1,
               {{0.9890000002, -1.9880000004},
                {0.9799805906382653, -1.9874414476543747},
                {0.9755570725927106, -1.990798174785115}});
}

TEST(Optim, AdamFirstStepMovesEveryElementByLr) {
  // Bias correction makes step 1 exactly lr * g / (|g| + eps'): a sign step, whatever g's scale.
  OptimizerOptions o;
  o.kind = OptimizerKind::Adam;
  o.eps = 0;
  Var p = Var::parameter(Tensor::from(std::vector<float>{0, 0, 0}, {3}));
  Optimizer opt({ParamGroup{{p}, {}, 1.0, 0.0}}, o);
  p.set_grad(Tensor::from(std::vector<float>{1e-4f, -3.0f, 250.0f}, {3}));
  opt.step(0.5);
  EXPECT_NEAR(p.value().at(0), -0.5, 1e-6);
  EXPECT_NEAR(p.value().at(1), 0.5, 1e-6);
  EXPECT_NEAR(p.value().at(2), -0.5, 1e-6);
}

TEST(Optim, ParamGroupsExcludeBiasesAndNormsFromDecay) {
  Var weight = Var::parameter(Tensor::from(std::vector<double>{2.0}, {1}));
  Var bias = Var::parameter(Tensor::from(std::vector<double>{2.0}, {1}));
  Var norm = Var::parameter(Tensor::from(std::vector<double>{2.0}, {1}));
  auto groups = decay_groups({{"layer.weight", weight}, {"layer.bias", bias}, {"norm.weight", norm}}, 0.5,
                             {"bias", "norm"});
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].names, (std::vector<std::string>{"layer.weight"}));
  EXPECT_EQ(groups[1].names, (std::vector<std::string>{"layer.bias", "norm.weight"}));
  EXPECT_EQ(groups[1].weight_decay, 0.0);
  groups[1].lr_scale = 2.0;
  OptimizerOptions o;
  o.kind = OptimizerKind::AdamW;
  Optimizer opt(groups, o);
  for (const Var& p : {weight, bias, norm}) p.set_grad(Tensor::from(std::vector<double>{0.0}, {1}));
  opt.step(0.1);  // a zero gradient: only decoupled decay moves a parameter
  EXPECT_NEAR(weight.value().at(0), 2.0 * (1 - 0.1 * 0.5), 1e-15);
  EXPECT_EQ(bias.value().at(0), 2.0);
  EXPECT_EQ(norm.value().at(0), 2.0);
  // The lr_scale reaches the update: with g = 1, Adam's first step is lr_scale * lr.
  for (const Var& p : {weight, bias, norm}) p.set_grad(Tensor::from(std::vector<double>{1.0}, {1}));
  Optimizer scaled(groups, o);
  scaled.step(0.1);
  EXPECT_NEAR(bias.value().at(0), 2.0 - 0.2, 1e-7);
}

TEST(Optim, ParameterWithoutGradientIsSkipped) {
  Var a = fresh_param(), b = fresh_param();
  OptimizerOptions o;
  o.kind = OptimizerKind::Adam;
  Optimizer opt({ParamGroup{{a, b}, {"a", "b"}, 1.0, 0.1}}, o);
  a.set_grad(Tensor::from(kGrads[0], {2}));
  opt.step(0.01);
  EXPECT_EQ(b.value().at(0), 1.0);
  auto state = opt.state_dict();
  EXPECT_EQ(state.at("a.step").item(), 1);
  EXPECT_EQ(state.at("b.step").item(), 0);
  EXPECT_FALSE(state.count("b.exp_avg"));
}

TEST(Optim, ClipGradNormScalesToMaxNormAndReturnsTheNorm) {
  Var a = Var::parameter(Tensor::from(std::vector<double>{3, 4}, {2}));
  Var b = Var::parameter(Tensor::from(std::vector<double>{12}, {1}));
  Var none = Var::parameter(Tensor::from(std::vector<double>{1}, {1}));  // no grad: ignored
  a.set_grad(Tensor::from(std::vector<double>{3, 4}, {2}));
  b.set_grad(Tensor::from(std::vector<double>{12}, {1}));
  EXPECT_DOUBLE_EQ(clip_grad_norm({a, b, none}, 100.0), 13.0);  // below the limit: untouched
  EXPECT_EQ(a.grad().at(0), 3.0);
  EXPECT_DOUBLE_EQ(clip_grad_norm({a, b, none}, 6.5), 13.0);
  const double coef = 6.5 / (13.0 + 1e-6);
  EXPECT_NEAR(a.grad().at(0), 3 * coef, 1e-15);
  EXPECT_NEAR(a.grad().at(1), 4 * coef, 1e-15);
  EXPECT_NEAR(b.grad().at(0), 12 * coef, 1e-15);
  EXPECT_NEAR(grad_norm({a, b}), 6.5, 1e-6);
}

TEST(Optim, ClipGradNormScalesASharedGradientTensorOnce) {
  // backward can hand one tensor to two parameters (add's backward does); each must be scaled once.
  Var a = Var::parameter(Tensor::from(std::vector<double>{0}, {1}));
  Var b = Var::parameter(Tensor::from(std::vector<double>{0}, {1}));
  Tensor shared = Tensor::from(std::vector<double>{10}, {1});
  a.set_grad(shared);
  b.set_grad(shared);
  clip_grad_norm({a, b}, 1.0);
  EXPECT_NEAR(a.grad().at(0), 10 / (std::sqrt(200.0) + 1e-6), 1e-12);
  EXPECT_NEAR(b.grad().at(0), 10 / (std::sqrt(200.0) + 1e-6), 1e-12);
  EXPECT_EQ(shared.at(0), 10.0);
}

TEST(Optim, StateSaveLoadContinuesIdentically) {
  for (OptimizerKind kind : {OptimizerKind::Sgd, OptimizerKind::Adam, OptimizerKind::AdamW}) {
    OptimizerOptions o;
    o.kind = kind;
    o.momentum = kind == OptimizerKind::Sgd ? 0.9 : 0.0;
    Var p = fresh_param();
    Optimizer first({ParamGroup{{p}, {"w"}, 1.0, 0.01}}, o);
    for (int t = 0; t < 2; ++t) {
      p.set_grad(Tensor::from(kGrads[t], {2}));
      first.step(0.05);
    }
    // A new run: the parameter restored from the checkpoint, the state loaded into a new optimizer.
    Var q = Var::parameter(p.value().clone());
    Optimizer second({ParamGroup{{q}, {"w"}, 1.0, 0.01}}, o);
    second.load_state_dict(first.state_dict());
    p.set_grad(Tensor::from(kGrads[2], {2}));
    q.set_grad(Tensor::from(kGrads[2], {2}));
    first.step(0.05);
    second.step(0.05);
    for (int i = 0; i < 2; ++i) EXPECT_EQ(p.value().at(i), q.value().at(i)) << optimizer_kind_name(kind);
  }
}

TEST(Optim, LoadStateDictNamesTheBadKey) {
  OptimizerOptions o;
  o.kind = OptimizerKind::Adam;
  Var p = fresh_param();
  Optimizer opt({ParamGroup{{p}, {"w"}, 1.0, 0.0}}, o);
  p.set_grad(Tensor::from(kGrads[0], {2}));
  opt.step(0.1);
  auto good = opt.state_dict();
  auto expect_error = [&](std::map<std::string, Tensor> state, const std::string& needle) {
    try {
      opt.load_state_dict(state);
      ADD_FAILURE() << "no error, expected one naming " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  auto missing = good;
  missing.erase("w.exp_avg_sq");
  expect_error(missing, "'w.exp_avg_sq'");
  auto wrong_shape = good;
  wrong_shape["w.exp_avg"] = Tensor::zeros({3}, DType::F64);
  expect_error(wrong_shape, "'w.exp_avg' has shape (3)");
  auto extra = good;
  extra["v.step"] = good.at("w.step");
  expect_error(extra, "'v.step' belongs to no parameter");
}

TEST(Optim, GradientAccumulationAddsAcrossBackwardCalls) {
  // Two backward() calls then one step equal one step on the summed gradient; zero_grad clears it.
  Var p = fresh_param();
  Var x(Tensor::from(std::vector<double>{3.0, 5.0}, {2}));
  OptimizerOptions o;
  o.kind = OptimizerKind::Sgd;
  Optimizer opt({ParamGroup{{p}, {"p"}, 1.0, 0.0}}, o);
  for (int micro = 0; micro < 2; ++micro) sum(p * x).backward();
  EXPECT_EQ(p.grad().at(1), 10.0);
  opt.step(0.1);
  EXPECT_NEAR(p.value().at(0), 1.0 - 0.1 * 6.0, 1e-15);
  EXPECT_NEAR(p.value().at(1), -2.0 - 0.1 * 10.0, 1e-15);
  opt.zero_grad();
  EXPECT_FALSE(p.grad().defined());
}

TEST(Optim, StateSurvivesASafetensorsFile) {
  // The trainer writes state_dict() to optimizer.safetensors; a 0-d I64 step and F32 moments round-trip.
  OptimizerOptions o;
  o.kind = OptimizerKind::AdamW;
  Var p = Var::parameter(Tensor::from(std::vector<float>{1.0f, -2.0f}, {2}));
  Optimizer first({ParamGroup{{p}, {"layer.weight"}, 1.0, 0.01}}, o);
  p.set_grad(Tensor::from(std::vector<float>{0.5f, -0.25f}, {2}));
  first.step(0.01);
  std::string path = (std::filesystem::temp_directory_path() / "mega_test_optimizer.safetensors").string();
  save_safetensors(path, first.state_dict());
  Var q = Var::parameter(p.value().clone());
  Optimizer second({ParamGroup{{q}, {"layer.weight"}, 1.0, 0.01}}, o);
  second.load_state_dict(load_safetensors(path).tensors);
  p.set_grad(Tensor::from(std::vector<float>{0.1f, 0.3f}, {2}));
  q.set_grad(Tensor::from(std::vector<float>{0.1f, 0.3f}, {2}));
  first.step(0.01);
  second.step(0.01);
  EXPECT_EQ(p.value().to_vector(), q.value().to_vector());
  EXPECT_EQ(second.state_dict().at("layer.weight.step").item(), 2);
}

// ---- Fine-tuning rules: freeze and lr_scale by glob ----

namespace {

struct Named {
  std::vector<std::pair<std::string, Var>> named;
  std::vector<Tensor> before;
};

Named encoder_and_head() {
  Named n;
  for (const char* name : {"mega.layers.0.weight", "mega.layers.0.bias", "mega.layers.1.weight", "classifier.weight"}) {
    n.named.emplace_back(name, fresh_param());
    n.before.push_back(n.named.back().second.value().clone());
  }
  return n;
}

// Three AdamW steps (weight decay 0.1, so even a zero gradient would move a decayed weight).
void three_steps(const Named& n, const GroupRules& rules) {
  Optimizer opt(rule_groups(n.named, rules), OptimizerOptions{});
  for (const auto& grad : kGrads) {
    for (const auto& [name, var] : n.named) var.set_grad(Tensor::from(grad, {2}));
    opt.step(0.01);
  }
}

bool bit_equal(const Tensor& a, const Tensor& b) {
  return std::memcmp(a.data<double>(), b.data<double>(), sizeof(double) * static_cast<size_t>(a.numel())) == 0;
}

}  // namespace

TEST(OptimRules, FrozenParametersStayBitEqualWhileTheOthersMove) {
  Named n = encoder_and_head();
  three_steps(n, GroupRules{.weight_decay = 0.1, .freeze = {"mega.layers.0.*"}});
  EXPECT_TRUE(bit_equal(n.named[0].second.value(), n.before[0]));
  EXPECT_TRUE(bit_equal(n.named[1].second.value(), n.before[1]));
  EXPECT_FALSE(bit_equal(n.named[2].second.value(), n.before[2]));
  EXPECT_FALSE(bit_equal(n.named[3].second.value(), n.before[3]));
}

TEST(OptimRules, LrScaleZeroUpdatesLikeFrozen) {
  Named frozen = encoder_and_head(), scaled = encoder_and_head();
  three_steps(frozen, GroupRules{.weight_decay = 0.1, .freeze = {"mega.*"}});
  three_steps(scaled, GroupRules{.weight_decay = 0.1, .lr_scale = {{"mega.*", 0.0}}});
  for (size_t i = 0; i < frozen.named.size(); ++i)
    EXPECT_TRUE(bit_equal(frozen.named[i].second.value(), scaled.named[i].second.value())) << frozen.named[i].first;
  EXPECT_TRUE(bit_equal(scaled.named[0].second.value(), scaled.before[0]));
}

TEST(OptimRules, GroupsSplitByDecayAndScaleWithTheFirstMatchingPatternDeciding) {
  Named n = encoder_and_head();
  std::vector<ParamGroup> groups =
      rule_groups(n.named, GroupRules{.weight_decay = 0.1,
                                      .no_decay = {"bias"},
                                      .lr_scale = {{"mega.layers.1.*", 0.5}, {"mega.*", 0.1}}});
  ASSERT_EQ(groups.size(), 4u);  // decayed x {0.1, 0.5, 1}, undecayed x {0.1}
  EXPECT_EQ(groups[0].names, (std::vector<std::string>{"mega.layers.0.weight"}));
  EXPECT_EQ(groups[0].lr_scale, 0.1);
  EXPECT_EQ(groups[1].names, (std::vector<std::string>{"mega.layers.1.weight"}));
  EXPECT_EQ(groups[1].lr_scale, 0.5);
  EXPECT_EQ(groups[2].names, (std::vector<std::string>{"classifier.weight"}));
  EXPECT_EQ(groups[2].lr_scale, 1.0);
  EXPECT_EQ(groups[3].names, (std::vector<std::string>{"mega.layers.0.bias"}));
  EXPECT_EQ(groups[3].weight_decay, 0.0);
  EXPECT_EQ(groups[3].lr_scale, 0.1);
}

TEST(OptimRules, APatternThatMatchesNothingIsAnErrorNamingIt) {
  Named n = encoder_and_head();
  EXPECT_EQ(mega::testing::error_of([&] { rule_groups(n.named, GroupRules{.freeze = {"encoder.*"}}); }),
            "[optim.freeze] pattern 'encoder.*' (a glob: * and ? match any characters, dots included) matches "
            "no parameter name");
  EXPECT_EQ(mega::testing::error_of([&] { rule_groups(n.named, GroupRules{.lr_scale = {{"mega.layer.*", 0.1}}}); }),
            "[optim.lr_scale] pattern 'mega.layer.*' (a glob: * and ? match any characters, dots included) "
            "matches no parameter name");
}
