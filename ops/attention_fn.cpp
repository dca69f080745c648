// The attention functions: softmax and log_softmax along the last axis (rows of n), laplace and relu2
// pointwise. Shapes: x (..., n) viewed as (rows, n); output as input. Hand-written backward, F32 and F64.
#include "ops/attention_fn.h"

#include <algorithm>
#include <limits>

#include "autograd/profile.h"
#include "core/threading.h"
#include "ops/pointwise.h"

namespace mega {

namespace {

struct Rows {
  int64_t count, n;
};

Rows rows_of(const Var& x, const char* op) {
  MEGA_CHECK(x.dim() >= 1 && x.size(-1) > 0, "[", op, "] needs a non-empty last axis, got ", shape_str(x.shape()));
  return {x.numel() / x.size(-1), x.size(-1)};
}

// Rows per parallel task: about 16K elements.
int64_t row_grain(int64_t n) { return std::max<int64_t>(1, (int64_t{1} << 14) / n); }

// y = exp(x - max) / sum exp(x - max) on one row; a row with max -inf (all -inf) becomes zeros.
template <class T>
void softmax_row(const T* x, T* y, int64_t n) {
  T m = -std::numeric_limits<T>::infinity();
  for (int64_t j = 0; j < n; ++j) m = std::max(m, x[j]);
  if (m == -std::numeric_limits<T>::infinity()) {
    std::fill(y, y + n, T(0));
    return;
  }
  T total = 0;
  for (int64_t j = 0; j < n; ++j) total += (y[j] = std::exp(x[j] - m));
  T inverse = 1 / total;
  for (int64_t j = 0; j < n; ++j) y[j] *= inverse;
}

}  // namespace

// Saves y. Backward: dx = y (g - sum_j g_j y_j).
Var softmax(const Var& x) {
  OpScope scope("softmax");
  Rows r = rows_of(x, "softmax");
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  dispatch_floating(x.dtype(), "softmax", [&]<class T>() {
    const T* xs = x.value().data<T>();
    T* y = out.data<T>();
    parallel_for(r.count, row_grain(r.n), [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) softmax_row(xs + i * r.n, y + i * r.n, r.n);
    });
  });
  return record("softmax", out, {x}, [=](const Tensor& g) -> std::vector<Tensor> {
    Tensor gx = Tensor::empty(g.shape(), g.dtype());
    dispatch_floating(g.dtype(), "softmax", [&]<class T>() {
      const T* y = out.data<T>();
      const T* gd = g.data<T>();
      T* d = gx.data<T>();
      parallel_for(r.count, row_grain(r.n), [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) {
          const T* yr = y + i * r.n;
          const T* gr = gd + i * r.n;
          T dot = 0;
          for (int64_t j = 0; j < r.n; ++j) dot += gr[j] * yr[j];
          for (int64_t j = 0; j < r.n; ++j) d[i * r.n + j] = yr[j] * (gr[j] - dot);
        }
      });
    });
    return {gx};
  });
}

// y = x - max - log sum exp(x - max). Saves y. Backward: dx = g - exp(y) sum_j g_j; a row of -inf
// (exp(y) = 0 everywhere) passes no gradient.
Var log_softmax(const Var& x) {
  OpScope scope("log_softmax");
  Rows r = rows_of(x, "log_softmax");
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  dispatch_floating(x.dtype(), "log_softmax", [&]<class T>() {
    const T* xs = x.value().data<T>();
    T* y = out.data<T>();
    parallel_for(r.count, row_grain(r.n), [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        const T* xr = xs + i * r.n;
        T* yr = y + i * r.n;
        T m = -std::numeric_limits<T>::infinity();
        for (int64_t j = 0; j < r.n; ++j) m = std::max(m, xr[j]);
        if (m == -std::numeric_limits<T>::infinity()) {
          std::fill(yr, yr + r.n, m);
          continue;
        }
        T total = 0;
        for (int64_t j = 0; j < r.n; ++j) total += std::exp(xr[j] - m);
        T shift = m + std::log(total);
        for (int64_t j = 0; j < r.n; ++j) yr[j] = xr[j] - shift;
      }
    });
  });
  return record("log_softmax", out, {x}, [=](const Tensor& g) -> std::vector<Tensor> {
    Tensor gx = Tensor::empty(g.shape(), g.dtype());
    dispatch_floating(g.dtype(), "log_softmax", [&]<class T>() {
      const T* y = out.data<T>();
      const T* gd = g.data<T>();
      T* d = gx.data<T>();
      parallel_for(r.count, row_grain(r.n), [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) {
          const T* yr = y + i * r.n;
          const T* gr = gd + i * r.n;
          bool empty = yr[0] == -std::numeric_limits<T>::infinity() &&
                       std::all_of(yr, yr + r.n, [](T v) { return v == -std::numeric_limits<T>::infinity(); });
          T total = 0;
          for (int64_t j = 0; j < r.n; ++j) total += gr[j];
          for (int64_t j = 0; j < r.n; ++j) d[i * r.n + j] = empty ? T(0) : gr[j] - std::exp(yr[j]) * total;
        }
      });
    });
    return {gx};
  });
}

Var laplace(const Var& x) {
  OpScope scope("laplace");
  return pointwise(
      "laplace", x, [](auto v) { return attention_scalar::laplace(v); },
      [](auto v, auto) { return attention_scalar::laplace_derivative(v); });
}

Var relu2(const Var& x) {
  return pointwise(
      "relu2", x, [](auto v) { return attention_scalar::relu2(v); },
      [](auto v, auto) { return attention_scalar::relu2_derivative(v); });
}

}  // namespace mega
