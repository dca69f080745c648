// Matmul and linear at the LRA recipes' shapes, each next to oneDNN's own sgemm on the same shape (the
// machine's peak for that shape): the ratio is what the framework's overhead costs.
#include <oneapi/dnnl/dnnl.hpp>
#include <sstream>

#include "bench/bench.h"
#include "core/rng.h"
#include "ops/matmul.h"
#include "ops/reduce.h"

namespace mega::bench {

static Tensor random_f32(const Shape& shape, uint64_t seed) {
  Rng rng(seed);
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = rng.normal(0, i);
  return t;
}

void bench_matmul(Table& table, const Options& options) {
  int repeats = options.quick ? 3 : 10;
  struct Case {
    int64_t tokens, in, out;
    const char* what;
  };
  // ListOps (D 80, hidden 160, z 64): mx_proj D -> 2D + Z + hidden, v_proj D -> hidden, h_proj hidden -> D,
  // and Text (D 128, hidden 256); B*L = 8192 tokens.
  std::vector<Case> cases = {{8192, 80, 2 * 80 + 64 + 160, "listops mx_proj"},
                             {8192, 80, 160, "listops v_proj"},
                             {8192, 160, 80, "listops h_proj"},
                             {8192, 128, 2 * 128 + 64 + 256, "text mx_proj"},
                             {8192, 256, 128, "text h_proj"}};
  if (options.quick) cases.resize(2);
  for (const Case& c : cases) {
    Var x(random_f32({c.tokens, c.in}, 1), true);
    Var w(random_f32({c.out, c.in}, 2), true);
    Var b(random_f32({c.out}, 3), true);
    Tensor cotangent = random_f32({c.tokens, c.out}, 4);
    Var y;
    double fwd = median_ms([&] { y = linear(x, w, b); }, repeats);
    double bwd = median_ms([&] {
      Var yy = linear(x, w, b);
      yy.backward(cotangent);
    }, repeats) - fwd;
    double flops = 2.0 * c.tokens * c.in * c.out * 3;  // forward, grad x, grad w
    std::ostringstream shape;
    shape << "M=" << c.tokens << " K=" << c.in << " N=" << c.out;
    table.add({"linear", shape.str(), fwd, bwd, flops, c.what});

    // oneDNN sgemm alone on the forward shape: the reference peak.
    Tensor a = random_f32({c.tokens, c.in}, 5), bt = random_f32({c.in, c.out}, 6), out = Tensor::empty({c.tokens, c.out});
    double peak = median_ms([&] {
      dnnl_sgemm('N', 'N', c.tokens, c.out, c.in, 1.0f, a.data<float>(), c.in, bt.data<float>(), c.out, 0.0f,
                 out.data<float>(), c.out);
    }, repeats);
    table.add({"dnnl_sgemm", shape.str(), peak, 0, 2.0 * c.tokens * c.in * c.out, "oneDNN sgemm peak"});
  }
}

}  // namespace mega::bench
