// The norms at the LRA recipes' token counts (8192 tokens, D 80 for ListOps and 128 for Text), forward and
// backward, F32. batch_norm runs in train mode on (8, 1024, D), so its backward goes through the batch
// statistics. The norms are memory-bound, so no FLOP count is reported.
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "core/rng.h"
#include "ops/norm.h"

namespace mega::bench {

static Tensor random_f32(const Shape& shape, uint64_t seed, float shift = 0) {
  Rng rng(seed);
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = rng.normal(0, i) + shift;
  return t;
}

void bench_norm(Table& table, const Options& options) {
  int repeats = options.quick ? 3 : 20;
  const int64_t B = 8, L = options.quick ? 128 : 1024;
  for (int64_t D : {int64_t{80}, int64_t{128}}) {
    Var x(random_f32({B, L, D}, 1), true);
    Var weight(random_f32({D}, 2, 1.0f), true), bias(random_f32({D}, 3), true);
    Var scalar(Tensor::full({1}, 1.5f), true);
    Tensor cotangent = random_f32({B, L, D}, 4);
    BatchNormState state{Tensor::zeros({D}), Tensor::full({D}, 1.0f), Tensor::zeros({}, DType::I64)};

    struct Case {
      const char* op;
      std::function<Var()> forward;
    };
    std::vector<Case> cases = {
        {"layer_norm", [&] { return layer_norm(x, weight, bias); }},
        {"scale_norm", [&] { return scale_norm(x, scalar); }},
        {"rms_norm", [&] { return rms_norm(x, weight); }},
        {"batch_norm", [&] { return batch_norm(x, weight, bias, state, true); }},
    };
    std::ostringstream shape;
    shape << "tokens=" << B * L << " D=" << D;
    for (const Case& c : cases) {
      double fwd = median_ms([&] { c.forward(); }, repeats);
      double both = median_ms([&] {
        for (const Var& leaf : {x, weight, bias, scalar}) leaf.zero_grad();  // time the op, not accumulation
        c.forward().backward(cotangent);
      }, repeats);
      table.add({c.op, shape.str(), fwd, both - fwd, 0, c.op == std::string("batch_norm") ? "train" : ""});
    }
  }
}

}  // namespace mega::bench
