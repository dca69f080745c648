// Reductions over all elements or one axis. An axis reduction views x as (outer, n, inner) and reduces n.
#include "ops/reduce.h"

#include <algorithm>
#include <limits>

#include "autograd/profile.h"
#include "core/threading.h"

namespace mega {

static int64_t normalize_axis(int64_t axis, int64_t dims, const char* op) {
  int64_t a = axis < 0 ? axis + dims : axis;
  MEGA_CHECK(a >= 0 && a < dims, "[", op, "] axis ", axis, " out of range for ", dims, " dimensions");
  return a;
}

struct AxisView {
  int64_t outer = 1, n = 1, inner = 1;
  Shape reduced;  // the output shape
};

static AxisView axis_view(const Shape& shape, int64_t axis, bool keepdim) {
  AxisView v;
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    if (d < axis) v.outer *= shape[d];
    else if (d == axis) v.n = shape[d];
    else v.inner *= shape[d];
    if (d != axis) v.reduced.push_back(shape[d]);
    else if (keepdim) v.reduced.push_back(1);
  }
  return v;
}

Var sum(const Var& x) {
  OpScope scope("sum");
  Tensor out = Tensor::empty({}, x.dtype());
  dispatch_floating(x.dtype(), "sum", [&]<class T>() {
    const T* p = x.value().data<T>();
    double total = 0;  // accumulate in double: sums of many floats drift
    for (int64_t i = 0; i < x.numel(); ++i) total += p[i];
    out.data<T>()[0] = static_cast<T>(total);
  });
  Shape shape = x.shape();
  return record("sum", out, {x}, [shape](const Tensor& g) -> std::vector<Tensor> {
    return {Tensor::full(shape, g.item(), g.dtype())};
  });
}

Var mean(const Var& x) {
  OpScope scope("mean");
  MEGA_CHECK(x.numel() > 0, "[mean] of an empty tensor");
  Tensor out = Tensor::empty({}, x.dtype());
  dispatch_floating(x.dtype(), "mean", [&]<class T>() {
    const T* p = x.value().data<T>();
    double total = 0;
    for (int64_t i = 0; i < x.numel(); ++i) total += p[i];
    out.data<T>()[0] = static_cast<T>(total / static_cast<double>(x.numel()));
  });
  Shape shape = x.shape();
  double n = static_cast<double>(x.numel());
  return record("mean", out, {x}, [shape, n](const Tensor& g) -> std::vector<Tensor> {
    return {Tensor::full(shape, g.item() / n, g.dtype())};
  });
}

// sum along an axis times `scale` (1 for sum, 1/n for mean).
static Var scaled_axis_sum(const char* op, const Var& x, int64_t axis, bool keepdim, bool average) {
         OpScope scope(op);
  axis = normalize_axis(axis, x.dim(), op);
  AxisView v = axis_view(x.shape(), axis, keepdim);
  double scale = average ? 1.0 / static_cast<double>(v.n) : 1.0;
  Tensor out = Tensor::empty(v.reduced, x.dtype());
  dispatch_floating(x.dtype(), op, [&]<class T>() {
    const T* p = x.value().data<T>();
    T* o = out.data<T>();
    // Rows of less than ~32K elements in all stay serial: a parallel region costs more than them.
    int64_t grain = std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(1, v.n * v.inner));
    parallel_for(v.outer, grain, [&](int64_t lo, int64_t hi) {
      for (int64_t a = lo; a < hi; ++a) {
        T* row = o + a * v.inner;
        for (int64_t c = 0; c < v.inner; ++c) row[c] = 0;
        for (int64_t i = 0; i < v.n; ++i) {
          const T* src = p + (a * v.n + i) * v.inner;
          for (int64_t c = 0; c < v.inner; ++c) row[c] += src[c];
        }
        for (int64_t c = 0; c < v.inner; ++c) row[c] *= static_cast<T>(scale);
      }
    });
  });
  Shape shape = x.shape();
  return record(op, out, {x}, [=](const Tensor& g) -> std::vector<Tensor> {
    Tensor gx = Tensor::empty(shape, g.dtype());
    dispatch_floating(g.dtype(), op, [&]<class T>() {
      const T* gd = g.data<T>();
      T* d = gx.data<T>();
      for (int64_t a = 0; a < v.outer; ++a)
        for (int64_t i = 0; i < v.n; ++i)
          for (int64_t c = 0; c < v.inner; ++c)
            d[(a * v.n + i) * v.inner + c] = gd[a * v.inner + c] * static_cast<T>(scale);
    });
    return {gx};
  });
}

Var sum(const Var& x, int64_t axis, bool keepdim) { return scaled_axis_sum("sum", x, axis, keepdim, false); }
Var mean(const Var& x, int64_t axis, bool keepdim) { return scaled_axis_sum("mean", x, axis, keepdim, true); }

Var max(const Var& x, int64_t axis, bool keepdim) {
  OpScope scope("max");
  axis = normalize_axis(axis, x.dim(), "max");
  AxisView v = axis_view(x.shape(), axis, keepdim);
  MEGA_CHECK(v.n > 0, "[max] over an empty axis");
  Tensor out = Tensor::empty(v.reduced, x.dtype());
  std::vector<int64_t> argmax(static_cast<size_t>(v.outer * v.inner));
  dispatch_floating(x.dtype(), "max", [&]<class T>() {
    const T* p = x.value().data<T>();
    T* o = out.data<T>();
    for (int64_t a = 0; a < v.outer; ++a)
      for (int64_t c = 0; c < v.inner; ++c) {
        T best = -std::numeric_limits<T>::infinity();
        int64_t where = 0;
        for (int64_t i = 0; i < v.n; ++i) {
          T value = p[(a * v.n + i) * v.inner + c];
          if (value > best || i == 0) best = value, where = i;
        }
        o[a * v.inner + c] = best;
        argmax[a * v.inner + c] = where;
      }
  });
  Shape shape = x.shape();
  return record("max", out, {x}, [=](const Tensor& g) -> std::vector<Tensor> {
    Tensor gx = Tensor::zeros(shape, g.dtype());
    dispatch_floating(g.dtype(), "max", [&]<class T>() {
      const T* gd = g.data<T>();
      T* d = gx.data<T>();
      for (int64_t a = 0; a < v.outer; ++a)
        for (int64_t c = 0; c < v.inner; ++c)
          d[(a * v.n + argmax[a * v.inner + c]) * v.inner + c] = gd[a * v.inner + c];
    });
    return {gx};
  });
}

}  // namespace mega
