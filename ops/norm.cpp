// The normalisations of Mega: fused forward kernels and hand-written backward kernels side by side. The
// slow references built from primitives live in tests/test_norm.cpp, which compares the two.
// Statistics and reductions are accumulated in double; parameter gradients are summed over fixed blocks
// of rows in a fixed order, so every result is bit-identical whatever the thread count.
//
// Shapes: R rows (every leading dimension of x flattened), D the normalised (last) dimension.
// batch_norm: x (B, L, D) (any leading dimensions are accepted), statistics per feature d over the
// N = B*L rows.
#include "ops/sync_batch_norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "autograd/profile.h"
#include "core/threading.h"

namespace mega {
namespace {

// ---- Shared plumbing ---------------------------------------------------------------------------

// Rows per block of a parameter-gradient (or batch-statistic) reduction; fixed by the shape alone.
constexpr int64_t kRowBlock = 64;

int64_t block_count(int64_t rows) { return (rows + kRowBlock - 1) / kRowBlock; }

// Rows per thread chunk so that a parallel region covers at least ~32k elements.
int64_t row_grain(int64_t D) { return std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(D, 1)); }

// Calls body(block, row_begin, row_end) for each block of kRowBlock rows, blocks spread over threads.
template <class F>
void for_row_blocks(int64_t rows, int64_t D, F&& body) {
  int64_t grain = std::max<int64_t>(1, row_grain(D) / kRowBlock);
  parallel_for(block_count(rows), grain, [&](int64_t lo, int64_t hi) {
    for (int64_t blk = lo; blk < hi; ++blk)
      body(blk, blk * kRowBlock, std::min(rows, (blk + 1) * kRowBlock));
  });
}

// partials holds `blocks` rows of `width` doubles; returns their sum, taken in block order.
std::vector<double> sum_blocks(const std::vector<double>& partials, int64_t blocks, int64_t width) {
  std::vector<double> total(static_cast<size_t>(width), 0.0);
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t j = 0; j < width; ++j) total[j] += partials[b * width + j];
  return total;
}

// values[offset, offset + numel(shape)) as a tensor of `dtype`.
Tensor tensor_from(const std::vector<double>& values, int64_t offset, const Shape& shape, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype);
  dispatch_floating(dtype, "norm", [&]<class T>() {
    T* p = t.data<T>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<T>(values[offset + i]);
  });
  return t;
}

// Checks x and returns D, its last dimension.
int64_t check_x(const Var& x, const char* op) {
  MEGA_CHECK(x.defined(), "[", op, "] x is undefined");
  MEGA_CHECK(x.dtype() == DType::F32 || x.dtype() == DType::F64, "[", op, "] x must be F32 or F64, got ",
             dtype_name(x.dtype()));
  MEGA_CHECK(x.dim() >= 1, "[", op, "] x must have at least one dimension, got a 0-d tensor");
  MEGA_CHECK(x.size(-1) > 0, "[", op, "] the last dimension of x is empty: x has shape ", shape_str(x.shape()));
  return x.size(-1);
}

// A per-feature parameter: undefined, or (D) with x's dtype.
void check_feature_param(const Var& p, const char* name, const Var& x, int64_t D, const char* op) {
  if (!p.defined()) return;
  MEGA_CHECK(p.shape() == Shape{D}, "[", op, "] ", name, " has shape ", shape_str(p.shape()),
             " but the last dimension of x is ", D);
  MEGA_CHECK(p.dtype() == x.dtype(), "[", op, "] ", name, " is ", dtype_name(p.dtype()), " but x is ",
             dtype_name(x.dtype()));
}

void check_eps(double eps, const char* op) {
  MEGA_CHECK(eps >= 0 && std::isfinite(eps), "[", op, "] eps must be finite and >= 0, got ", eps);
}

// sum over j in [0, n) of term(j) in double. A plain running sum may not be reordered, so it would run
// one add per add-latency; eight explicit lanes let the compiler keep them in two vector registers. The
// order is fixed, never dependent on the thread count, so results stay reproducible.
template <class Term>
inline double lane_sum(int64_t n, Term term) {
  double l0 = 0, l1 = 0, l2 = 0, l3 = 0, l4 = 0, l5 = 0, l6 = 0, l7 = 0;
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    l0 += term(j);
    l1 += term(j + 1);
    l2 += term(j + 2);
    l3 += term(j + 3);
    l4 += term(j + 4);
    l5 += term(j + 5);
    l6 += term(j + 6);
    l7 += term(j + 7);
  }
  double tail = 0;
  for (; j < n; ++j) tail += term(j);
  return ((l0 + l4) + (l1 + l5)) + ((l2 + l6) + (l3 + l7)) + tail;
}

// ---- RMS normalisation with a gain: scale_norm and rms_norm ------------------------------------
// Both are y = x * rstd * gain with rstd = 1 / sqrt(mean_d x^2 + eps) per row; they differ only in the
// gain: one scalar for scale_norm (per_feature false), one per feature for rms_norm (per_feature true),
// or none (gain null). The kernels share one derivation.

template <class T>
void rms_forward(const T* x, const T* gain, bool per_feature, T* y, T* rstd, int64_t rows, int64_t D,
                 double eps) {
  parallel_for(rows, row_grain(D), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const T* xr = x + r * D;
      T* yr = y + r * D;
      double sum_sq = lane_sum(D, [&](int64_t j) { return static_cast<double>(xr[j]) * xr[j]; });
      double s = 1.0 / std::sqrt(sum_sq / static_cast<double>(D) + eps);
      rstd[r] = static_cast<T>(s);
      if (gain != nullptr && per_feature) {
        for (int64_t j = 0; j < D; ++j) yr[j] = static_cast<T>(xr[j] * s * gain[j]);
      } else {
        double c = gain != nullptr ? s * gain[0] : s;
        for (int64_t j = 0; j < D; ++j) yr[j] = static_cast<T>(xr[j] * c);
      }
    }
  });
}

// Backward of y_j = x_j r w_j, r = (mean_k x_k^2 + eps)^(-1/2). Since dr/dx_k = -r^3 x_k / D, writing
// n = x r (the normalised row) and gw = g w:
//   dx_j = r (gw_j - n_j * mean_k(gw_k n_k))
//   dw_j = sum over rows of g_j n_j          (scalar gain: the sum over every element)
// Saved: x and r per row; n is recomputed. gain_grad, when not null, receives D (per feature) or 1 values.
template <class T>
void rms_backward(const T* x, const T* rstd, const T* gain, bool per_feature, const T* g, T* dx,
                  double* gain_grad, int64_t rows, int64_t D) {
  int64_t width = per_feature ? D : 1;
  int64_t blocks = block_count(rows);
  bool gain_per_feature = gain != nullptr && per_feature;
  double gain_scalar = gain != nullptr && !per_feature ? static_cast<double>(gain[0]) : 1.0;
  std::vector<double> partials(gain_grad ? static_cast<size_t>(blocks * width) : 0, 0.0);
  for_row_blocks(rows, D, [&](int64_t blk, int64_t begin, int64_t end) {
    double* part = gain_grad ? partials.data() + blk * width : nullptr;
    for (int64_t r = begin; r < end; ++r) {
      const T* xr = x + r * D;
      const T* gr = g + r * D;
      double s = rstd[r];
      // sum_k g_k x_k (times w_k per feature): mean_k(gw_k n_k) = s * that / D.
      double dot = gain_per_feature
                       ? lane_sum(D, [&](int64_t j) { return static_cast<double>(gr[j] * gain[j]) * xr[j]; })
                       : lane_sum(D, [&](int64_t j) { return static_cast<double>(gr[j]) * xr[j]; });
      if (part && per_feature) {
        for (int64_t j = 0; j < D; ++j) part[j] += static_cast<double>(gr[j]) * xr[j] * s;
      } else if (part) {
        part[0] += dot * s;  // the scalar's dot has no gain in it
      }
      if (dx == nullptr) continue;
      T* dr = dx + r * D;
      double mean_gwn = (gain_per_feature ? dot : dot * gain_scalar) * s / static_cast<double>(D);
      double n_coef = s * mean_gwn * s;  // dx_j = s gw_j - (x_j s) * mean_gwn * s
      if (gain_per_feature) {
        for (int64_t j = 0; j < D; ++j) dr[j] = static_cast<T>(s * gr[j] * gain[j] - n_coef * xr[j]);
      } else {
        double c = s * gain_scalar;
        for (int64_t j = 0; j < D; ++j) dr[j] = static_cast<T>(c * gr[j] - n_coef * xr[j]);
      }
    }
  });
  if (gain_grad) {
    std::vector<double> total = sum_blocks(partials, blocks, width);
    std::copy(total.begin(), total.end(), gain_grad);
  }
}

// scale_norm and rms_norm: the front end after each has checked its gain.
Var rms_normalize(const char* op, const Var& x, const Var& gain, bool per_feature, double eps) {
  OpScope scope(op);
  int64_t D = x.size(-1), rows = x.numel() / D;
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  Tensor rstd = Tensor::empty({rows}, x.dtype());
  Tensor xv = x.value(), gv = gain.defined() ? gain.value() : Tensor();
  dispatch_floating(x.dtype(), op, [&]<class T>() {
    rms_forward<T>(xv.data<T>(), gv.defined() ? gv.data<T>() : nullptr, per_feature, y.data<T>(), rstd.data<T>(),
                   rows, D, eps);
  });
  bool need_x = x.requires_grad(), need_gain = gain.requires_grad();
  return record(op, y, {x, gain}, [=](const Tensor& g) -> std::vector<Tensor> {
    Tensor dx = need_x ? Tensor::empty(xv.shape(), xv.dtype()) : Tensor();
    Tensor dgain;
    dispatch_floating(g.dtype(), op, [&]<class T>() {
      std::vector<double> gain_grad(need_gain ? (per_feature ? D : 1) : 0);
      rms_backward<T>(xv.data<T>(), rstd.data<T>(), gv.defined() ? gv.data<T>() : nullptr, per_feature, g.data<T>(),
                      need_x ? dx.data<T>() : nullptr, need_gain ? gain_grad.data() : nullptr, rows, D);
      if (need_gain) dgain = tensor_from(gain_grad, 0, gv.shape(), gv.dtype());
    });
    return {dx, dgain};
  });
}

// ---- Layer normalisation -----------------------------------------------------------------------

template <class T>
void layer_norm_forward(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, int64_t rows, int64_t D,
                        double eps) {
  parallel_for(rows, row_grain(D), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const T* xr = x + r * D;
      T* yr = y + r * D;
      double mu = lane_sum(D, [&](int64_t j) { return static_cast<double>(xr[j]); }) / static_cast<double>(D);
      // Two passes: the row is in cache, and it avoids the cancellation of E[x^2] - mu^2.
      double sum_sq = lane_sum(D, [&](int64_t j) {
        double c = xr[j] - mu;
        return c * c;
      });
      double s = 1.0 / std::sqrt(sum_sq / static_cast<double>(D) + eps);
      mean[r] = static_cast<T>(mu);
      rstd[r] = static_cast<T>(s);
      if (w && b) {
        for (int64_t j = 0; j < D; ++j) yr[j] = static_cast<T>((xr[j] - mu) * s * w[j] + b[j]);
      } else {
        for (int64_t j = 0; j < D; ++j) {
          double v = (xr[j] - mu) * s;
          yr[j] = static_cast<T>((w ? v * w[j] : v) + (b ? b[j] : T(0)));
        }
      }
    }
  });
}

// Backward of y = xhat w + b with xhat = (x - mu) r, mu = mean_k x_k, r = (mean_k (x_k - mu)^2 + eps)^(-1/2).
// With gw = g w, the two statistics contribute -mean(gw) and -xhat mean(gw xhat):
//   dx_j = r (gw_j - mean_k gw_k - xhat_j mean_k(gw_k xhat_k))
//   dw_j = sum over rows of g_j xhat_j
//   db_j = sum over rows of g_j
// Saved: x, mu and r per row; xhat is recomputed. param_grad (2D values: dw then db) may be null.
template <class T>
void layer_norm_backward(const T* x, const T* mean, const T* rstd, const T* w, const T* g, T* dx,
                         double* param_grad, int64_t rows, int64_t D) {
  std::vector<T> ones;  // no affine: a weight of ones keeps the inner loops free of branches
  if (w == nullptr) {
    ones.assign(static_cast<size_t>(D), T(1));
    w = ones.data();
  }
  int64_t blocks = block_count(rows);
  std::vector<double> partials(param_grad ? static_cast<size_t>(blocks * 2 * D) : 0, 0.0);
  for_row_blocks(rows, D, [&](int64_t blk, int64_t begin, int64_t end) {
    double* part = param_grad ? partials.data() + blk * 2 * D : nullptr;
    for (int64_t r = begin; r < end; ++r) {
      const T* xr = x + r * D;
      const T* gr = g + r * D;
      double mu = mean[r], s = rstd[r];
      if (part) {
        for (int64_t j = 0; j < D; ++j) {
          part[j] += gr[j] * ((xr[j] - mu) * s);
          part[D + j] += gr[j];
        }
      }
      if (dx == nullptr) continue;
      auto gw = [&](int64_t j) { return static_cast<double>(gr[j]) * w[j]; };
      double mean_gw = lane_sum(D, gw) / static_cast<double>(D);
      double mean_gw_xhat = lane_sum(D, [&](int64_t j) { return gw(j) * ((xr[j] - mu) * s); }) / static_cast<double>(D);
      T* dr = dx + r * D;
      for (int64_t j = 0; j < D; ++j) dr[j] = static_cast<T>(s * (gw(j) - mean_gw - (xr[j] - mu) * s * mean_gw_xhat));
    }
  });
  if (param_grad) {
    std::vector<double> total = sum_blocks(partials, blocks, 2 * D);
    std::copy(total.begin(), total.end(), param_grad);
  }
}

// ---- Batch normalisation -----------------------------------------------------------------------

// Per-feature mean and biased variance over N rows, two passes, in double.
template <class T>
void batch_statistics(const T* x, int64_t N, int64_t D, std::vector<double>& mean, std::vector<double>& var) {
  int64_t blocks = block_count(N);
  std::vector<double> partials(static_cast<size_t>(blocks * D), 0.0);
  for_row_blocks(N, D, [&](int64_t blk, int64_t begin, int64_t end) {
    double* part = partials.data() + blk * D;
    for (int64_t r = begin; r < end; ++r)
      for (int64_t j = 0; j < D; ++j) part[j] += x[r * D + j];
  });
  mean = sum_blocks(partials, blocks, D);
  for (double& m : mean) m /= static_cast<double>(N);
  std::fill(partials.begin(), partials.end(), 0.0);
  for_row_blocks(N, D, [&](int64_t blk, int64_t begin, int64_t end) {
    double* part = partials.data() + blk * D;
    for (int64_t r = begin; r < end; ++r)
      for (int64_t j = 0; j < D; ++j) {
        double c = x[r * D + j] - mean[j];
        part[j] += c * c;
      }
  });
  var = sum_blocks(partials, blocks, D);
  for (double& v : var) v /= static_cast<double>(N);
}

// y = (x - mu_d) a_d + b_d with a = r w folded per feature, so the inner loop over d has no branch.
template <class T>
void batch_norm_forward(const T* x, const T* w, const T* b, const std::vector<double>& mean,
                        const std::vector<double>& rstd, T* y, int64_t N, int64_t D) {
  std::vector<double> a(static_cast<size_t>(D)), shift(static_cast<size_t>(D));
  for (int64_t j = 0; j < D; ++j) {
    a[j] = rstd[j] * (w ? static_cast<double>(w[j]) : 1.0);
    shift[j] = b ? static_cast<double>(b[j]) : 0.0;
  }
  parallel_for(N, row_grain(D), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const T* xr = x + r * D;
      T* yr = y + r * D;
      for (int64_t j = 0; j < D; ++j) yr[j] = static_cast<T>((xr[j] - mean[j]) * a[j] + shift[j]);
    }
  });
}

// Backward of y = xhat w + b with xhat = (x - mu_d) r_d per feature d.
// Train mode: mu_d and r_d are the batch statistics over the N rows, so, exactly as for layer_norm but
// along the other axis (w_d is a constant of the feature and factors out):
//   dx = r w (g - mean_rows g - xhat mean_rows(g xhat))
// Eval mode: mu and r come from the running statistics, constants here:
//   dx = r w g
// Both: dw_d = sum over rows of g xhat, db_d = sum over rows of g.
// Saved: x, mu and r per feature (double); xhat is recomputed.
template <class T>
void batch_norm_backward(const T* x, const T* w, const std::vector<double>& mean, const std::vector<double>& rstd,
                         bool training, const T* g, T* dx, std::vector<double>& sum_g_xhat,
                         std::vector<double>& sum_g, int64_t N, int64_t D, const BatchNormSum* sync,
                         int64_t rows) {
  int64_t blocks = block_count(N);
  std::vector<double> partials(static_cast<size_t>(blocks * 2 * D), 0.0);
  for_row_blocks(N, D, [&](int64_t blk, int64_t begin, int64_t end) {
    double* part = partials.data() + blk * 2 * D;
    for (int64_t r = begin; r < end; ++r)
      for (int64_t j = 0; j < D; ++j) {
        double gj = g[r * D + j];
        part[j] += gj * ((x[r * D + j] - mean[j]) * rstd[j]);
        part[D + j] += gj;
      }
  });
  std::vector<double> total = sum_blocks(partials, blocks, 2 * D);
  sum_g_xhat.assign(total.begin(), total.begin() + D);
  sum_g.assign(total.begin() + D, total.end());  // this rank's: the weight and bias gradients
  // Synced, dx needs the sums of every rank's rows (the collective runs even when dx is not needed,
  // since every rank must take part).
  if (sync) (*sync)(total);
  if (dx == nullptr) return;
  // Per feature, dx = p g - q - c (x - mu) with p = r w, and in train mode q = p mean_rows(g),
  // c = p r mean_rows(g xhat) (both 0 in eval).
  double inv_n = 1.0 / static_cast<double>(rows);
  std::vector<double> p(static_cast<size_t>(D)), q(static_cast<size_t>(D), 0.0), c(static_cast<size_t>(D), 0.0);
  for (int64_t j = 0; j < D; ++j) {
    p[j] = rstd[j] * (w ? static_cast<double>(w[j]) : 1.0);
    if (training) {
      q[j] = p[j] * total[D + j] * inv_n;
      c[j] = p[j] * rstd[j] * total[j] * inv_n;
    }
  }
  parallel_for(N, row_grain(D), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const T* xr = x + r * D;
      const T* gr = g + r * D;
      T* dr = dx + r * D;
      for (int64_t j = 0; j < D; ++j) dr[j] = static_cast<T>(p[j] * gr[j] - q[j] - c[j] * (xr[j] - mean[j]));
    }
  });
}

// running = (1 - momentum) running + momentum value, written back in running's dtype.
void blend_into(Tensor& running, const std::vector<double>& value, double momentum) {
  dispatch_floating(running.dtype(), "batch_norm", [&]<class T>() {
    T* p = running.data<T>();
    for (size_t j = 0; j < value.size(); ++j)
      p[j] = static_cast<T>((1 - momentum) * static_cast<double>(p[j]) + momentum * value[j]);
  });
}

void check_running(const Tensor& t, const char* name, int64_t D) {
  MEGA_CHECK(t.defined(), "[batch_norm] state.", name, " is undefined");
  MEGA_CHECK(t.shape() == Shape{D}, "[batch_norm] state.", name, " has shape ", shape_str(t.shape()),
             " but the last dimension of x is ", D);
  MEGA_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::F64, "[batch_norm] state.", name,
             " must be F32 or F64, got ", dtype_name(t.dtype()));
}

}  // namespace

// ---- Front ends --------------------------------------------------------------------------------

Var scale_norm(const Var& x, const Var& scalar, double eps) {
  check_x(x, "scale_norm");
  check_eps(eps, "scale_norm");
  if (scalar.defined()) {
    MEGA_CHECK(scalar.numel() == 1 && scalar.dim() <= 1, "[scale_norm] scalar must have shape (1), got ",
               shape_str(scalar.shape()));
    MEGA_CHECK(scalar.dtype() == x.dtype(), "[scale_norm] scalar is ", dtype_name(scalar.dtype()), " but x is ",
               dtype_name(x.dtype()));
  }
  return rms_normalize("scale_norm", x, scalar, false, eps);
}

Var rms_norm(const Var& x, const Var& weight, double eps) {
  int64_t D = check_x(x, "rms_norm");
  check_eps(eps, "rms_norm");
  check_feature_param(weight, "weight", x, D, "rms_norm");
  return rms_normalize("rms_norm", x, weight, true, eps);
}

Var layer_norm(const Var& x, const Var& weight, const Var& bias, double eps) {
  OpScope scope("layer_norm");
  int64_t D = check_x(x, "layer_norm");
  check_eps(eps, "layer_norm");
  check_feature_param(weight, "weight", x, D, "layer_norm");
  check_feature_param(bias, "bias", x, D, "layer_norm");
  int64_t rows = x.numel() / D;
  Tensor xv = x.value();
  Tensor wv = weight.defined() ? weight.value() : Tensor(), bv = bias.defined() ? bias.value() : Tensor();
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  Tensor mean = Tensor::empty({rows}, x.dtype()), rstd = Tensor::empty({rows}, x.dtype());
  dispatch_floating(x.dtype(), "layer_norm", [&]<class T>() {
    layer_norm_forward<T>(xv.data<T>(), wv.defined() ? wv.data<T>() : nullptr,
                          bv.defined() ? bv.data<T>() : nullptr, y.data<T>(), mean.data<T>(), rstd.data<T>(),
                          rows, D, eps);
  });
  bool need_x = x.requires_grad(), need_params = weight.requires_grad() || bias.requires_grad();
  bool has_weight = weight.defined(), has_bias = bias.defined();
  return record("layer_norm", y, {x, weight, bias}, [=](const Tensor& g) -> std::vector<Tensor> {
    Tensor dx = need_x ? Tensor::empty(xv.shape(), xv.dtype()) : Tensor();
    Tensor dw, db;
    dispatch_floating(g.dtype(), "layer_norm", [&]<class T>() {
      std::vector<double> params(need_params ? 2 * D : 0);
      layer_norm_backward<T>(xv.data<T>(), mean.data<T>(), rstd.data<T>(), has_weight ? wv.data<T>() : nullptr,
                             g.data<T>(), need_x ? dx.data<T>() : nullptr, need_params ? params.data() : nullptr,
                             rows, D);
      if (need_params && has_weight) dw = tensor_from(params, 0, {D}, xv.dtype());
      if (need_params && has_bias) db = tensor_from(params, D, {D}, xv.dtype());
    });
    return {dx, dw, db};
  });
}

namespace {

BatchNormSum& sync_batch_norm_sum() {
  static BatchNormSum sum;
  return sum;
}

// Per feature, the mean and biased variance over the rows of every rank, from one sum of
// (sum x, sum x^2, count); returns the total count.
template <class T>
int64_t synced_statistics(const T* x, int64_t N, int64_t D, std::vector<double>& mean, std::vector<double>& var) {
  std::vector<double> totals(static_cast<size_t>(2 * D + 1), 0.0);
  for (int64_t r = 0; r < N; ++r)
    for (int64_t j = 0; j < D; ++j) {
      const double v = x[r * D + j];
      totals[j] += v;
      totals[D + j] += v * v;
    }
  totals[2 * D] = static_cast<double>(N);
  sync_batch_norm_sum()(totals);
  const double n = totals[2 * D];
  mean.assign(static_cast<size_t>(D), 0.0);
  var.assign(static_cast<size_t>(D), 0.0);
  for (int64_t j = 0; j < D; ++j) {
    mean[j] = totals[j] / n;
    var[j] = std::max(0.0, totals[D + j] / n - mean[j] * mean[j]);
  }
  return static_cast<int64_t>(n);
}

Var batch_norm_impl(const Var& x, const Var& weight, const Var& bias, BatchNormState& state, bool training,
                    double momentum, double eps, bool sync) {
  OpScope scope(sync ? "sync_batch_norm" : "batch_norm");
  int64_t D = check_x(x, "batch_norm");
  MEGA_CHECK(x.dim() >= 2, "[batch_norm] x must be (B, L, D), got shape ", shape_str(x.shape()));
  check_eps(eps, "batch_norm");
  MEGA_CHECK(momentum >= 0 && momentum <= 1, "[batch_norm] momentum must be in [0, 1], got ", momentum);
  check_feature_param(weight, "weight", x, D, "batch_norm");
  check_feature_param(bias, "bias", x, D, "batch_norm");
  check_running(state.running_mean, "running_mean", D);
  check_running(state.running_var, "running_var", D);
  MEGA_CHECK(state.num_batches_tracked.defined() && state.num_batches_tracked.dtype() == DType::I64 &&
                 state.num_batches_tracked.numel() == 1,
             "[batch_norm] state.num_batches_tracked must be a 0-d I64 tensor");
  int64_t N = x.numel() / D;
  MEGA_CHECK(!training || N > 1, "[batch_norm] training needs more than one value per feature, got x of shape ",
             shape_str(x.shape()));

  Tensor xv = x.value();
  Tensor wv = weight.defined() ? weight.value() : Tensor(), bv = bias.defined() ? bias.value() : Tensor();
  std::vector<double> mean, var;
  int64_t rows = N;  // over every rank when synced
  if (training) {
    dispatch_floating(x.dtype(), "batch_norm", [&]<class T>() {
      if (sync) rows = synced_statistics<T>(xv.data<T>(), N, D, mean, var);
      else batch_statistics<T>(xv.data<T>(), N, D, mean, var);
    });
    // PyTorch's update: the running variance takes the unbiased estimate, the normalisation the biased one.
    std::vector<double> unbiased(var);
    for (double& v : unbiased) v *= static_cast<double>(rows) / static_cast<double>(rows - 1);
    blend_into(state.running_mean, mean, momentum);
    blend_into(state.running_var, unbiased, momentum);
    state.num_batches_tracked.data<int64_t>()[0] += 1;
  } else {
    mean = state.running_mean.to_vector();
    var = state.running_var.to_vector();
  }
  std::vector<double> rstd(static_cast<size_t>(D));
  for (int64_t j = 0; j < D; ++j) rstd[j] = 1.0 / std::sqrt(var[j] + eps);

  Tensor y = Tensor::empty(x.shape(), x.dtype());
  dispatch_floating(x.dtype(), "batch_norm", [&]<class T>() {
    batch_norm_forward<T>(xv.data<T>(), wv.defined() ? wv.data<T>() : nullptr, bv.defined() ? bv.data<T>() : nullptr,
                          mean, rstd, y.data<T>(), N, D);
  });
  bool need_x = x.requires_grad(), has_weight = weight.defined(), has_bias = bias.defined();
  return record("batch_norm", y, {x, weight, bias}, [=](const Tensor& g) -> std::vector<Tensor> {
    Tensor dx = need_x ? Tensor::empty(xv.shape(), xv.dtype()) : Tensor();
    std::vector<double> sum_g_xhat, sum_g;
    dispatch_floating(g.dtype(), "batch_norm", [&]<class T>() {
      batch_norm_backward<T>(xv.data<T>(), has_weight ? wv.data<T>() : nullptr, mean, rstd, training, g.data<T>(),
                             need_x ? dx.data<T>() : nullptr, sum_g_xhat, sum_g, N, D,
                             sync ? &sync_batch_norm_sum() : nullptr, rows);
    });
    Tensor dw = has_weight ? tensor_from(sum_g_xhat, 0, {D}, xv.dtype()) : Tensor();
    Tensor db = has_bias ? tensor_from(sum_g, 0, {D}, xv.dtype()) : Tensor();
    return {dx, dw, db};
  });
}

}  // namespace

Var batch_norm(const Var& x, const Var& weight, const Var& bias, BatchNormState& state, bool training,
               double momentum, double eps) {
  return batch_norm_impl(x, weight, bias, state, training, momentum, eps, false);
}

void set_sync_batch_norm_sum(BatchNormSum sum) { sync_batch_norm_sum() = std::move(sum); }

Var sync_batch_norm(const Var& x, const Var& weight, const Var& bias, BatchNormState& state, bool training,
                    double momentum, double eps) {
  return batch_norm_impl(x, weight, bias, state, training, momentum, eps, training && sync_batch_norm_sum());
}

}  // namespace mega
