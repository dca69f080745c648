// Dropout and feature dropout from the counter-based RNG, and dropout with a given mask for tests. Each
// active call takes one stream (rng.next_stream()); element i of the mask is rng.uniform(stream, i) >= p,
// a function of (seed, stream, i) only, so the mask does not depend on the thread count. An identity
// call (eval, or p == 0) takes no stream.
//
// Shapes: dropout: x any, keep-mask shaped like x. feature_dropout: x (B, L, D), keep-mask (B, D) shared
// by the L positions (mask index b*D + d).
#include "ops/dropout.h"

#include <algorithm>

#include "autograd/profile.h"
#include "core/rng_block.h"
#include "core/threading.h"

namespace mega {
namespace {

void check_p(double p, const char* op) {
  MEGA_CHECK(p >= 0 && p <= 1, "[", op, "] p must be in [0, 1], got ", p);
}

void check_x(const Var& x, const char* op) {
  MEGA_CHECK(x.defined(), "[", op, "] x is undefined");
  MEGA_CHECK(x.dtype() == DType::F32 || x.dtype() == DType::F64, "[", op, "] x must be F32 or F64, got ",
             dtype_name(x.dtype()));
}

// 1/(1-p) for survivors; p == 1 drops everything, so its scale is 0 rather than infinite.
double survivor_scale(double p) { return p < 1 ? 1.0 / (1.0 - p) : 0.0; }

// A Bool keep-mask of `count` elements: element i kept when rng.uniform(stream, i) >= p.
Tensor draw_keep_mask(const Shape& shape, double p, Rng& rng) {
  Tensor keep = Tensor::empty(shape, DType::Bool);
  bool* k = keep.data<bool>();
  uint64_t stream = rng.next_stream();
  const Rng& draws = rng;
  // uniform(stream, i) is (word 0 >> 8) * 2^-24 exactly, so the test is word 0 >> 8 >= p * 2^24 (exact in
  // double), on blocks of words drawn side by side.
  const double threshold = p * 16777216.0;
  constexpr int64_t lanes = kBlockLanes;
  const int64_t blocks = (keep.numel() + lanes - 1) / lanes;
  parallel_for(blocks, 1 << 8, [&](int64_t lo, int64_t hi) {
    uint32_t words[lanes];
    for (int64_t b = lo; b < hi; ++b) {
      philox_first_words(draws.seed(), stream, static_cast<uint64_t>(b * lanes), words);
      const int64_t end = std::min(keep.numel(), (b + 1) * lanes);
      for (int64_t i = b * lanes; i < end; ++i) k[i] = static_cast<double>(words[i - b * lanes] >> 8) >= threshold;
    }
  });
  return keep;
}

// y_i = x_i * keep[mask_index(i)] * scale; backward applies the same to the gradient:
//   dx_i = g_i * keep[mask_index(i)] * scale
// Saved: the Bool keep-mask (one byte per mask element), not x.
template <class MaskIndex>
Var apply_keep_mask(const char* op, const Var& x, const Tensor& keep, double scale, MaskIndex mask_index) {
  auto scale_by_mask = [=](const Tensor& in) {
    Tensor out = Tensor::empty(in.shape(), in.dtype());
    const bool* k = keep.data<bool>();
    dispatch_floating(in.dtype(), op, [&]<class T>() {
      const T* src = in.data<T>();
      T* dst = out.data<T>();
      T s = static_cast<T>(scale);
      parallel_for(in.numel(), 1 << 14, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) dst[i] = k[mask_index(i)] ? src[i] * s : T(0);
      });
    });
    return out;
  };
  return record(op, scale_by_mask(x.value()), {x},
                [=](const Tensor& g) -> std::vector<Tensor> { return {scale_by_mask(g)}; });
}

// feature_dropout's mask index for element i of (B, L, D): (b, d) -> b*D + d.
struct FeatureIndex {
  int64_t L, D;
  int64_t operator()(int64_t i) const { return (i / (L * D)) * D + i % D; }
};

}  // namespace

Var dropout(const Var& x, double p, bool training, Rng& rng) {
  OpScope scope("dropout");
  check_x(x, "dropout");
  check_p(p, "dropout");
  if (!training || p == 0) return x;
  Tensor keep = draw_keep_mask(x.shape(), p, rng);
  return apply_keep_mask("dropout", x, keep, survivor_scale(p), [](int64_t i) { return i; });
}

Var feature_dropout(const Var& x, double p, bool training, Rng& rng) {
  OpScope scope("feature_dropout");
  check_x(x, "feature_dropout");
  check_p(p, "feature_dropout");
  MEGA_CHECK(x.dim() == 3, "[feature_dropout] x must be (B, L, D), got shape ", shape_str(x.shape()));
  if (!training || p == 0) return x;
  int64_t B = x.size(0), L = x.size(1), D = x.size(2);
  Tensor keep = draw_keep_mask({B, D}, p, rng);
  return apply_keep_mask("feature_dropout", x, keep, survivor_scale(p), FeatureIndex{L, D});
}

Var dropout_with_mask(const Var& x, const Tensor& keep, double p) {
  OpScope scope("dropout");
  check_x(x, "dropout_with_mask");
  check_p(p, "dropout_with_mask");
  MEGA_CHECK(keep.defined() && keep.shape() == x.shape(), "[dropout_with_mask] keep has shape ",
             keep.defined() ? shape_str(keep.shape()) : std::string("(undefined)"), " but x has shape ",
             shape_str(x.shape()));
  Tensor mask = Tensor::empty(keep.shape(), DType::Bool);
  bool* m = mask.data<bool>();
  for (int64_t i = 0; i < keep.numel(); ++i) {
    double v = keep.at(i);
    MEGA_CHECK(v == 0 || v == 1, "[dropout_with_mask] keep must hold only 0 and 1, found ", v, " at element ", i);
    m[i] = v == 1;
  }
  return apply_keep_mask("dropout_with_mask", x, mask, survivor_scale(p), [](int64_t i) { return i; });
}

}  // namespace mega
