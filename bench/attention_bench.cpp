// The fused attention (ops/attention.h) at ListOps-like shapes (chunk 128, Z 64, I 160): chunked softmax
// over L = 1K..16K, where time per token must stay flat (memory and work are O(B L c)), against unchunked
// attention at small L, where both grow as L^2. Per-token time is in each row's note.
#include <cstdio>
#include <sstream>

#include "bench/bench.h"
#include "core/rng.h"
#include "ops/attention.h"

namespace mega::bench {

static Tensor random_f32(const Shape& shape, uint64_t seed, double scale) {
  Rng rng(seed);
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(rng.normal(0, i) * scale);
  return t;
}

namespace {

struct Case {
  int64_t batch, length, chunk;  // chunk 0: unchunked
  AttentionFunction function;
  const char* function_name;
};

void run_case(Table& table, const Case& c, int64_t z, int64_t value_dim, int repeats) {
  int64_t keys = c.chunk > 0 ? c.chunk : c.length;
  Var q(random_f32({c.batch, c.length, z}, 1, 0.5), true), k(random_f32({c.batch, c.length, z}, 2, 0.5), true);
  Var v(random_f32({c.batch, c.length, value_dim}, 3, 1.0), true);
  Var bias(random_f32({c.chunk > 0 ? c.chunk : c.length, keys}, 4, 0.1), true);
  Tensor cotangent = random_f32({c.batch, c.length, value_dim}, 5, 1.0);
  AttentionOptions options;
  options.function = c.function, options.chunk_size = c.chunk, options.causal = false;
  double fwd = median_ms([&] { attention(q, k, v, bias, Tensor(), options); }, repeats);
  double total = median_ms([&] { attention(q, k, v, bias, Tensor(), options).backward(cotangent); }, repeats);
  double tokens = static_cast<double>(c.batch * c.length);
  // Forward: q k^T and w v, 2 tokens keys (Z + I); backward: two products per forward product.
  double flops = 3 * 2 * tokens * static_cast<double>(keys) * static_cast<double>(z + value_dim);
  std::ostringstream shape, note;
  shape << "B=" << c.batch << " L=" << c.length << " c=" << (c.chunk > 0 ? std::to_string(c.chunk) : "-") << " Z=" << z
        << " I=" << value_dim;
  char per_token[96];
  std::snprintf(per_token, sizeof per_token, "%s %s, %.3f us/token fwd+bwd", c.function_name,
                c.chunk > 0 ? "chunked" : "unchunked", 1e3 * total / tokens);
  table.add({"attention", shape.str(), fwd, total - fwd, flops, per_token});
}

}  // namespace

void bench_attention(Table& table, const Options& options) {
  int repeats = options.quick ? 3 : 7;
  const int64_t z = options.quick ? 16 : 64, value_dim = options.quick ? 32 : 160;
  const int64_t chunk = options.quick ? 32 : 128;
  std::vector<Case> cases;
  // Chunked softmax: B L = 8192 tokens while L <= 8K (ListOps' batch), then B = 1 at 16K.
  std::vector<int64_t> lengths =
      options.quick ? std::vector<int64_t>{256, 1024} : std::vector<int64_t>{1024, 2048, 4096, 8192, 16384};
  int64_t tokens = options.quick ? 1024 : 8192;
  for (int64_t length : lengths)
    cases.push_back({std::max<int64_t>(1, tokens / length), length, chunk, AttentionFunction::Softmax, "softmax"});
  cases.push_back({tokens / lengths.front(), lengths.front(), chunk, AttentionFunction::Laplace, "laplace"});
  // Unchunked, the same tokens: O(L^2) per sequence.
  for (int64_t length : options.quick ? std::vector<int64_t>{128, 256} : std::vector<int64_t>{256, 512, 1024})
    cases.push_back({tokens / length, length, 0, AttentionFunction::Softmax, "softmax"});
  for (const Case& c : cases) run_case(table, c, z, value_dim, repeats);
}

}  // namespace mega::bench
