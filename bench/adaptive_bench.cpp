// The adaptive softmax loss and adaptive input at the WikiText-103 setup of Baevski & Auli (V 267735,
// cutoffs 20000,60000, factor 4; 256 tokens of H 512 here), forward and backward, F32, next to what they
// replace: the full-vocabulary softmax (linear + cross_entropy) and a plain embedding lookup.
// Targets are drawn Zipf-like (rank r with probability ~ 1/r), as in text, so most rows stay in the head.
#include <algorithm>
#include <cmath>
#include <functional>
#include <sstream>
#include <vector>

#include "bench/bench.h"
#include "core/rng.h"
#include "ops/adaptive_softmax.h"
#include "ops/embedding.h"
#include "ops/loss.h"
#include "ops/matmul.h"

namespace mega::bench {

static Tensor normal_f32(const Shape& shape, uint64_t seed, double std) {
  Rng rng(seed);
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(std * rng.normal(0, i));
  return t;
}

// Ranks 0..V-1 with P(r) ~ 1 / (r + 1), by inverting the harmonic CDF approximately: r = V^u - 1.
static Tensor zipf_ids(int64_t n, int64_t V, uint64_t seed) {
  Rng rng(seed);
  Tensor ids = Tensor::empty({n}, DType::I64);
  for (int64_t i = 0; i < n; ++i) {
    const double r = std::pow(static_cast<double>(V), rng.uniform(0, i)) - 1;
    ids.data<int64_t>()[i] = std::min<int64_t>(V - 1, static_cast<int64_t>(r));
  }
  return ids;
}

void bench_adaptive(Table& table, const Options& options) {
  const int repeats = 3;
  const int64_t N = options.quick ? 64 : 256, H = options.quick ? 64 : 512;
  const int64_t V = options.quick ? 2000 : 267735;
  const std::vector<int64_t> bounds = options.quick ? std::vector<int64_t>{0, 200, 600, V}
                                                    : std::vector<int64_t>{0, 20000, 60000, V};
  const int64_t T = static_cast<int64_t>(bounds.size()) - 2;
  auto band_dim = [&](int64_t b) { return std::max<int64_t>(1, H >> (2 * b)); };  // factor 4

  Var hidden(normal_f32({N, H}, 1, 1.0), true);
  AdaptiveSoftmaxWeights weights{Var(normal_f32({bounds[1], H}, 2, 0.05), true),
                                 Var(normal_f32({T, H}, 3, 0.05), true), {}};
  std::vector<Var> embeddings{weights.head_words}, projections{Var(normal_f32({H, H}, 4, 0.05), true)};
  for (int64_t i = 0; i < T; ++i) {
    const int64_t d = band_dim(i + 1);
    Var projection(normal_f32({H, d}, 10 + i, 0.05), true), output(normal_f32({bounds[i + 2] - bounds[i + 1], d}, 20 + i, 0.05), true);
    weights.tails.push_back({projection, true, output});  // tied, as the paper's models
    embeddings.push_back(output);
    projections.push_back(projection);
  }
  Var full(normal_f32({V, H}, 5, 0.05), true);
  Tensor targets = zipf_ids(N, V, 6);
  std::vector<Var> leaves{hidden, full, weights.head_clusters};
  leaves.insert(leaves.end(), embeddings.begin(), embeddings.end());
  leaves.insert(leaves.end(), projections.begin(), projections.end());
  auto zero_grads = [&] {
    for (const Var& leaf : leaves) leaf.zero_grad();
  };

  std::ostringstream shape;
  shape << "tokens=" << N << " H=" << H << " V=" << V;
  Rng rng(7);
  auto time = [&](const char* op, const std::function<Var()>& forward, double flops, const char* note) {
    double fwd = median_ms([&] { forward(); }, repeats);
    double both = median_ms([&] {
      zero_grads();
      forward().backward();
    }, repeats);
    table.add({op, shape.str(), fwd, both - fwd, flops, note});
  };
  time("adaptive_softmax_loss", [&] { return adaptive_softmax_loss(hidden, weights, targets, -100, 0, false, rng); },
       0, "tied tails, Zipf targets");
  time("linear+cross_entropy", [&] { return cross_entropy(linear(hidden, full), targets); },
       6.0 * static_cast<double>(N) * static_cast<double>(H) * static_cast<double>(V), "full softmax");

  Tensor ids = zipf_ids(N, V, 8);
  Tensor cotangent = normal_f32({N, H}, 9, 1.0);
  auto time_input = [&](const char* op, const std::function<Var()>& forward, const char* note) {
    double fwd = median_ms([&] { forward(); }, repeats);
    double both = median_ms([&] {
      zero_grads();
      forward().backward(cotangent);
    }, repeats);
    table.add({op, shape.str(), fwd, both - fwd, 0, note});
  };
  time_input("adaptive_input", [&] { return adaptive_input(ids, embeddings, projections); }, "Zipf ids");
  time_input("embedding", [&] { return embedding(ids, full); }, "full (V, H) table");
}

}  // namespace mega::bench
