// The gradcheck table of the primitive op families (elementwise, activation, reduce, shape, matmul):
// one entry per op and variant, tolerances kept with the entry. Plus forward values and shape errors.
#include <gtest/gtest.h>

#include <cmath>

#include "ops/activation.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/reduce.h"
#include "ops/shape.h"
#include "tests/gradcheck_util.h"

using namespace mega;
using mega::testing::random_tensor;

namespace {

struct GradcheckCase {
  std::string name;
  GradcheckFn f;
  std::vector<Tensor> inputs;
  GradcheckOptions options = {};
};

Tensor positive(const Shape& shape, uint64_t seed) { return random_tensor(shape, seed, 0.3, 1.5); }

// Values kept away from relu's kink so central differences are exact.
Tensor away_from_zero(const Shape& shape, uint64_t seed) {
  Tensor t = random_tensor(shape, seed);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<double>()[i] += t.data<double>()[i] >= 0 ? 0.1 : -0.1;
  return t;
}

std::vector<GradcheckCase> cases() {
  using V = const std::vector<Var>&;
  Tensor mask = Tensor::from(std::vector<int64_t>{1, 0, 1, 1}, {1, 4});
  return {
      {"add_same_shape", [](V v) { return add(v[0], v[1]); }, {random_tensor({3, 4}, 1), random_tensor({3, 4}, 2)}},
      {"add_broadcast_row", [](V v) { return add(v[0], v[1]); }, {random_tensor({3, 4}, 1), random_tensor({4}, 2)}},
      {"add_broadcast_both", [](V v) { return add(v[0], v[1]); }, {random_tensor({3, 1, 4}, 1), random_tensor({2, 1}, 2)}},
      {"sub_broadcast", [](V v) { return sub(v[0], v[1]); }, {random_tensor({2, 3}, 3), random_tensor({2, 1}, 4)}},
      {"mul_broadcast", [](V v) { return mul(v[0], v[1]); }, {random_tensor({2, 3, 4}, 5), random_tensor({3, 1}, 6)}},
      {"div", [](V v) { return div(v[0], v[1]); }, {random_tensor({2, 3}, 7), positive({2, 3}, 8)}},
      {"add_scalar", [](V v) { return add(v[0], 2.5); }, {random_tensor({5}, 9)}},
      {"mul_scalar", [](V v) { return mul(v[0], -1.5); }, {random_tensor({5}, 10)}},
      {"neg", [](V v) { return neg(v[0]); }, {random_tensor({5}, 11)}},
      {"exp", [](V v) { return exp(v[0]); }, {random_tensor({5}, 12)}},
      {"log", [](V v) { return log(v[0]); }, {positive({5}, 13)}},
      {"sqrt", [](V v) { return sqrt(v[0]); }, {positive({5}, 14)}},
      {"rsqrt", [](V v) { return rsqrt(v[0]); }, {positive({5}, 15)}},
      {"pow", [](V v) { return pow(v[0], 2.5); }, {positive({5}, 16)}},
      {"square", [](V v) { return square(v[0]); }, {random_tensor({5}, 17)}},
      {"where", [mask](V v) { return where(mask, v[0], v[1]); }, {random_tensor({3, 4}, 18), random_tensor({3, 4}, 19)}},
      {"masked_fill", [mask](V v) { return masked_fill(v[0], mask, -1e4); }, {random_tensor({3, 4}, 20)}},
      {"sigmoid", [](V v) { return sigmoid(v[0]); }, {random_tensor({6}, 21, 2.0)}},
      {"tanh", [](V v) { return tanh(v[0]); }, {random_tensor({6}, 22, 2.0)}},
      {"silu", [](V v) { return silu(v[0]); }, {random_tensor({6}, 23, 2.0)}},
      {"gelu", [](V v) { return gelu(v[0]); }, {random_tensor({6}, 24, 2.0)}},
      {"gelu_accurate", [](V v) { return gelu_accurate(v[0]); }, {random_tensor({6}, 25, 2.0)}},
      {"relu", [](V v) { return relu(v[0]); }, {away_from_zero({6}, 26)}},
      {"softplus", [](V v) { return softplus(v[0]); }, {random_tensor({6}, 27, 5.0)}},
      {"sum_all", [](V v) { return sum(v[0]); }, {random_tensor({3, 4}, 28)}},
      {"mean_all", [](V v) { return mean(v[0]); }, {random_tensor({3, 4}, 29)}},
      {"sum_axis1", [](V v) { return sum(v[0], 1); }, {random_tensor({2, 3, 4}, 30)}},
      {"mean_axis_last_keepdim", [](V v) { return mean(v[0], -1, true); }, {random_tensor({2, 3, 4}, 31)}},
      {"max_axis0", [](V v) { return max(v[0], 0); }, {random_tensor({3, 4}, 32)}},
      {"reshape", [](V v) { return reshape(v[0], {4, -1}); }, {random_tensor({2, 3, 2}, 33)}},
      {"transpose", [](V v) { return transpose(v[0], 0, 2); }, {random_tensor({2, 3, 4}, 34)}},
      {"permute", [](V v) { return permute(v[0], {1, 2, 0}); }, {random_tensor({2, 3, 4}, 35)}},
      {"narrow_dim0", [](V v) { return narrow(v[0], 0, 1, 2); }, {random_tensor({4, 3}, 36)}},
      {"narrow_last", [](V v) { return narrow(v[0], -1, 1, 2); }, {random_tensor({2, 3, 4}, 37)}},
      {"split_and_recombine", [](V v) {
         auto parts = split(v[0], 1, {1, 2});
         return mul(parts[0], sum(parts[1], 1, true));
       }, {random_tensor({2, 3}, 38)}},
      {"concat", [](V v) { return concat({v[0], v[1]}, 1); }, {random_tensor({2, 1, 3}, 39), random_tensor({2, 2, 3}, 40)}},
      {"stack", [](V v) { return stack({v[0], v[1]}, 0); }, {random_tensor({2, 3}, 41), random_tensor({2, 3}, 42)}},
      {"pad", [](V v) { return pad(v[0], 1, 1, 2, 0.5); }, {random_tensor({2, 3}, 43)}},
      {"select", [](V v) { return select(v[0], 1, 2); }, {random_tensor({2, 3, 4}, 44)}},
      {"expand", [](V v) { return expand(v[0], {3, 2, 4}); }, {random_tensor({2, 1}, 45)}},
      {"matmul", [](V v) { return matmul(v[0], v[1]); }, {random_tensor({3, 4}, 46), random_tensor({4, 5}, 47)}},
      {"matmul_trans_a", [](V v) { return matmul(v[0], v[1], true, false); }, {random_tensor({4, 3}, 48), random_tensor({4, 5}, 49)}},
      {"matmul_trans_b", [](V v) { return matmul(v[0], v[1], false, true); }, {random_tensor({3, 4}, 50), random_tensor({5, 4}, 51)}},
      {"matmul_trans_both", [](V v) { return matmul(v[0], v[1], true, true); }, {random_tensor({4, 3}, 52), random_tensor({5, 4}, 53)}},
      {"bmm", [](V v) { return matmul(v[0], v[1]); }, {random_tensor({2, 3, 4}, 54), random_tensor({2, 4, 5}, 55)}},
      {"bmm_broadcast_b", [](V v) { return matmul(v[0], v[1], false, true); }, {random_tensor({2, 3, 4}, 56), random_tensor({5, 4}, 57)}},
      {"bmm_broadcast_a", [](V v) { return matmul(v[0], v[1], true, false); }, {random_tensor({4, 3}, 58), random_tensor({2, 4, 5}, 59)}},
      {"linear", [](V v) { return linear(v[0], v[1], v[2]); }, {random_tensor({2, 3, 4}, 60), random_tensor({5, 4}, 61), random_tensor({5}, 62)}},
      {"linear_no_bias", [](V v) { return linear(v[0], v[1]); }, {random_tensor({3, 4}, 63), random_tensor({5, 4}, 64)}},
  };
}

class OpGradcheck : public ::testing::TestWithParam<GradcheckCase> {};

TEST_P(OpGradcheck, MatchesFiniteDifferences) {
  const GradcheckCase& c = GetParam();
  EXPECT_GRADCHECK(c.f, c.inputs, c.options);
}

INSTANTIATE_TEST_SUITE_P(Primitives, OpGradcheck, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<GradcheckCase>& info) { return info.param.name; });

Var f32(const std::vector<float>& values, const Shape& shape) { return Var(Tensor::from(values, shape)); }

}  // namespace

TEST(OpsForward, MatmulF32OnOneDnnMatchesTheReferenceLoop) {
  Tensor a = random_tensor({3, 17, 9}, 70), b = random_tensor({9, 11}, 71);
  Var fast = matmul(Var(a.to(DType::F32)), Var(b.to(DType::F32)), false, false);
  Var slow = matmul(Var(a), Var(b), false, false);  // F64 takes the plain loop
  for (int64_t i = 0; i < fast.numel(); ++i) ASSERT_NEAR(fast.value().at(i), slow.value().at(i), 1e-4);
  Var t = matmul(Var(b.to(DType::F32)), Var(a.to(DType::F32)), true, true);  // b^T a^T: (11, 9) times each (9, 17) of a^T, b broadcast over a's batch
  Var ts = matmul(Var(b), Var(a), true, true);
  for (int64_t i = 0; i < t.numel(); ++i) ASSERT_NEAR(t.value().at(i), ts.value().at(i), 1e-4);
}

TEST(OpsForward, LinearF32GradientsMatchF64) {
  Tensor x = random_tensor({6, 5}, 72), w = random_tensor({4, 5}, 73), b = random_tensor({4}, 74);
  Var x32(x.to(DType::F32), true), w32(w.to(DType::F32), true), b32(b.to(DType::F32), true);
  Var x64(x, true), w64(w, true), b64(b, true);
  sum(square(linear(x32, w32, b32))).backward();
  sum(square(linear(x64, w64, b64))).backward();
  for (int64_t i = 0; i < w.numel(); ++i) ASSERT_NEAR(w32.grad().at(i), w64.grad().at(i), 1e-3);
  for (int64_t i = 0; i < x.numel(); ++i) ASSERT_NEAR(x32.grad().at(i), x64.grad().at(i), 1e-3);
  for (int64_t i = 0; i < b.numel(); ++i) ASSERT_NEAR(b32.grad().at(i), b64.grad().at(i), 1e-3);
}

TEST(OpsForward, KnownValues) {
  EXPECT_NEAR(gelu(f32({1.0f}, {1})).item(), 0.8413447, 1e-6);
  EXPECT_NEAR(gelu_accurate(f32({1.0f}, {1})).item(), 0.8411920, 1e-6);
  EXPECT_NEAR(softplus(f32({100.0f}, {1})).item(), 100.0, 1e-4);  // no overflow
  EXPECT_NEAR(silu(f32({2.0f}, {1})).item(), 2.0 / (1 + std::exp(-2.0)), 1e-6);
  EXPECT_EQ(max(f32({1, 5, 3, 7, 2, 0}, {2, 3}), 1).value().at(1), 7.0);
  EXPECT_EQ(concat({f32({1, 2}, {1, 2}), f32({3}, {1, 1})}, 1).value().to_vector(), (std::vector<double>{1, 2, 3}));
}

TEST(OpsErrors, ShapeMismatchesNameTheOp) {
  Var a = f32({1, 2, 3, 4, 5, 6}, {2, 3}), b = f32({1, 2}, {2});
  EXPECT_NE(mega::testing::error_of([&] { add(a, b); }).find("[add] shapes (2, 3) and (2) do not broadcast"), std::string::npos);
  EXPECT_NE(mega::testing::error_of([&] { matmul(a, a); }).find("[matmul] inner dimensions differ"), std::string::npos);
  EXPECT_NE(mega::testing::error_of([&] { linear(a, b); }).find("[linear] weight must be (out, in)"), std::string::npos);
  EXPECT_NE(mega::testing::error_of([&] { narrow(a, 1, 2, 2); }).find("[narrow]"), std::string::npos);
  EXPECT_NE(mega::testing::error_of([&] { activation_from_name("mish"); }).find("unknown activation 'mish'"), std::string::npos);
}
