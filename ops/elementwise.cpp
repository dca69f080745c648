// Elementwise ops: broadcasting binary arithmetic, scalar forms, unary math, where/masked_fill.
// Shapes: any; binary ops broadcast (NumPy rules). Backward of a broadcast input sums over the
// stretched dimensions (sum_to_shape).
#include "ops/elementwise.h"

#include <algorithm>
#include <cmath>

#include "autograd/profile.h"
#include "core/threading.h"
#include "ops/pointwise.h"

namespace mega {

Shape broadcast_shape(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    MEGA_CHECK(da == db || da == 1 || db == 1, "[", op, "] shapes ", shape_str(a), " and ",
               shape_str(b), " do not broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// Strides (in elements) of `shape` read as `out`: 0 on broadcast dimensions.
static std::vector<int64_t> broadcast_strides(const Shape& shape, const Shape& out) {
  std::vector<int64_t> strides(out.size(), 0);
  int64_t stride = 1;
  for (int64_t i = static_cast<int64_t>(shape.size()) - 1; i >= 0; --i) {
    int64_t o = i + static_cast<int64_t>(out.size() - shape.size());
    strides[o] = shape[i] == 1 ? 0 : stride;
    stride *= shape[i];
  }
  return strides;
}

// Calls f(out_index, a_index, b_index) for every element of `out`, in order. The common layouts (equal
// shapes, b repeating over a's leading dims) take flat loops; the rest walk a multi-index.
template <class F>
static void for_each_broadcast(const Shape& a, const Shape& b, const Shape& out, F&& f) {
  int64_t n = shape_numel(out);
  int64_t na = shape_numel(a), nb = shape_numel(b);
  if (na == n && nb == n) {
    parallel_for(n, 1 << 15, [&](int64_t lo, int64_t hi) { for (int64_t i = lo; i < hi; ++i) f(i, i, i); });
    return;
  }
  // One operand repeating over the other's leading dims: rows of its size, no division per element.
  auto rows_of = [&](int64_t width, auto&& g) {
    parallel_for(width ? n / width : 0, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(width, 1)),
                 [&](int64_t lo, int64_t hi) {
                   for (int64_t r = lo; r < hi; ++r)
                     for (int64_t j = 0; j < width; ++j) g(r * width + j, j);
                 });
  };
  if (na == n && (nb == 1 || (b.size() <= a.size() && std::equal(b.rbegin(), b.rend(), a.rbegin())))) {
    rows_of(nb, [&](int64_t i, int64_t j) { f(i, i, j); });
    return;
  }
  if (nb == n && (na == 1 || (a.size() <= b.size() && std::equal(a.rbegin(), a.rend(), b.rbegin())))) {
    rows_of(na, [&](int64_t i, int64_t j) { f(i, j, i); });
    return;
  }
  std::vector<int64_t> sa = broadcast_strides(a, out), sb = broadcast_strides(b, out);
  std::vector<int64_t> index(out.size(), 0);
  int64_t ia = 0, ib = 0;
  for (int64_t i = 0; i < n; ++i) {
    f(i, ia, ib);
    for (int64_t d = static_cast<int64_t>(out.size()) - 1; d >= 0; --d) {
      ++index[d];
      ia += sa[d];
      ib += sb[d];
      if (index[d] < out[d]) break;
      ia -= sa[d] * out[d];
      ib -= sb[d] * out[d];
      index[d] = 0;
    }
  }
}

Tensor sum_to_shape(const Tensor& g, const Shape& shape) {
  OpScope scope("sum_to_shape");
  if (g.shape() == shape) return g;
  Tensor out = Tensor::zeros(shape, g.dtype());
  // Common case (bias gradients): `shape` is g's trailing dimensions, so g is rows of shape's size.
  Shape trailing = shape;
  while (!trailing.empty() && trailing.front() == 1) trailing.erase(trailing.begin());
  if (trailing.size() <= g.shape().size() && std::equal(trailing.rbegin(), trailing.rend(), g.shape().rbegin())) {
    int64_t width = shape_numel(shape), rows = width ? g.numel() / width : 0;
    dispatch_floating(g.dtype(), "sum_to_shape", [&]<class T>() {
      const T* src = g.data<T>();
      T* dst = out.data<T>();
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < width; ++j) dst[j] += src[r * width + j];
    });
    return out;
  }
  dispatch_floating(g.dtype(), "sum_to_shape", [&]<class T>() {
    const T* src = g.data<T>();
    T* dst = out.data<T>();
    // Serial: several output indices can map to one reduced element.
    std::vector<int64_t> so = broadcast_strides(shape, g.shape());
    std::vector<int64_t> index(g.shape().size(), 0);
    int64_t io = 0;
    for (int64_t i = 0, n = g.numel(); i < n; ++i) {
      dst[io] += src[i];
      for (int64_t d = static_cast<int64_t>(index.size()) - 1; d >= 0; --d) {
        ++index[d];
        io += so[d];
        if (index[d] < g.shape()[d]) break;
        io -= so[d] * g.shape()[d];
        index[d] = 0;
      }
    }
  });
  return out;
}

static void check_floating_pair(const Var& a, const Var& b, const char* op) {
  MEGA_CHECK(a.dtype() == b.dtype(), "[", op, "] dtypes differ: ", dtype_name(a.dtype()), " and ",
             dtype_name(b.dtype()));
}

// A binary op: out = f(a, b); backward gives da = g * dfa(a, b, out), db = g * dfb(a, b, out).
template <class Fwd, class DA, class DB>
static Var binary(const char* op, const Var& a, const Var& b, Fwd fwd, DA dfa, DB dfb) {
  OpScope scope(op);
  check_floating_pair(a, b, op);
  Shape out_shape = broadcast_shape(a.shape(), b.shape(), op);
  Tensor out = Tensor::empty(out_shape, a.dtype());
  dispatch_floating(a.dtype(), op, [&]<class T>() {
    const T* x = a.value().data<T>();
    const T* y = b.value().data<T>();
    T* o = out.data<T>();
    for_each_broadcast(a.shape(), b.shape(), out_shape,
                       [&](int64_t i, int64_t ia, int64_t ib) { o[i] = fwd(x[ia], y[ib]); });
  });
  Tensor av = a.value(), bv = b.value();
  bool need_a = a.requires_grad(), need_b = b.requires_grad();
  return record(op, out, {a, b}, [=](const Tensor& g) -> std::vector<Tensor> {
    Tensor ga, gb;
    dispatch_floating(g.dtype(), op, [&]<class T>() {
      const T* x = av.data<T>();
      const T* y = bv.data<T>();
      const T* gd = g.data<T>();
      if (need_a) {
        Tensor full = Tensor::empty(out_shape, g.dtype());
        T* d = full.data<T>();
        for_each_broadcast(av.shape(), bv.shape(), out_shape,
                           [&](int64_t i, int64_t ia, int64_t ib) { d[i] = gd[i] * dfa(x[ia], y[ib]); });
        ga = sum_to_shape(full, av.shape());
      }
      if (need_b) {
        Tensor full = Tensor::empty(out_shape, g.dtype());
        T* d = full.data<T>();
        for_each_broadcast(av.shape(), bv.shape(), out_shape,
                           [&](int64_t i, int64_t ia, int64_t ib) { d[i] = gd[i] * dfb(x[ia], y[ib]); });
        gb = sum_to_shape(full, bv.shape());
      }
    });
    return {ga, gb};
  });
}

Var add(const Var& a, const Var& b) {
  return binary("add", a, b, [](auto x, auto y) { return x + y; }, [](auto, auto) { return 1; },
                [](auto, auto) { return 1; });
}
Var sub(const Var& a, const Var& b) {
  return binary("sub", a, b, [](auto x, auto y) { return x - y; }, [](auto, auto) { return 1; },
                [](auto, auto) { return -1; });
}
Var mul(const Var& a, const Var& b) {
  return binary("mul", a, b, [](auto x, auto y) { return x * y; }, [](auto, auto y) { return y; },
                [](auto x, auto) { return x; });
}
Var div(const Var& a, const Var& b) {
  return binary("div", a, b, [](auto x, auto y) { return x / y; }, [](auto, auto y) { return 1 / y; },
                [](auto x, auto y) { return -x / (y * y); });
}

Var add(const Var& a, double s) {
  return pointwise("add_scalar", a, [s](auto x) { return x + static_cast<decltype(x)>(s); },
               [](auto, auto) { return 1; });
}
Var mul(const Var& a, double s) {
  return pointwise("mul_scalar", a, [s](auto x) { return x * static_cast<decltype(x)>(s); },
               [s](auto x, auto) { return static_cast<decltype(x)>(s); });
}
Var neg(const Var& a) {
  return pointwise("neg", a, [](auto x) { return -x; }, [](auto x, auto) { return decltype(x)(-1); });
}
Var exp(const Var& a) {
  return pointwise("exp", a, [](auto x) { return std::exp(x); }, [](auto, auto y) { return y; });
}
Var log(const Var& a) {
  return pointwise("log", a, [](auto x) { return std::log(x); }, [](auto x, auto) { return 1 / x; });
}
Var sqrt(const Var& a) {
  return pointwise("sqrt", a, [](auto x) { return std::sqrt(x); }, [](auto, auto y) { return 1 / (2 * y); });
}
Var rsqrt(const Var& a) {
  return pointwise("rsqrt", a, [](auto x) { return 1 / std::sqrt(x); },
               [](auto x, auto y) { return -y / (2 * x); });
}
Var pow(const Var& a, double p) {
  return pointwise("pow", a, [p](auto x) { return static_cast<decltype(x)>(std::pow(x, p)); },
               [p](auto x, auto) { return static_cast<decltype(x)>(p * std::pow(x, p - 1)); });
}
Var square(const Var& a) {
  return pointwise("square", a, [](auto x) { return x * x; }, [](auto x, auto) { return 2 * x; });
}

// Nonzero test for a mask element of any dtype, read through the flat index.
static std::vector<uint8_t> mask_bytes(const Tensor& mask) {
  std::vector<uint8_t> m(static_cast<size_t>(mask.numel()));
  if (mask.dtype() == DType::I64) {
    const int64_t* p = mask.data<int64_t>();
    for (int64_t i = 0; i < mask.numel(); ++i) m[i] = p[i] != 0;
  } else if (mask.dtype() == DType::F32) {
    const float* p = mask.data<float>();
    for (int64_t i = 0; i < mask.numel(); ++i) m[i] = p[i] != 0;
  } else {
    for (int64_t i = 0; i < mask.numel(); ++i) m[i] = mask.at(i) != 0;
  }
  return m;
}

Var where(const Tensor& mask, const Var& a, const Var& b) {
  OpScope scope("where");
  check_floating_pair(a, b, "where");
  MEGA_CHECK(a.shape() == b.shape(), "[where] a has shape ", shape_str(a.shape()), " but b has ",
             shape_str(b.shape()));
  Shape out_shape = broadcast_shape(mask.shape(), a.shape(), "where");
  MEGA_CHECK(out_shape == a.shape(), "[where] mask ", shape_str(mask.shape()), " does not broadcast to ",
             shape_str(a.shape()));
  std::vector<uint8_t> m = mask_bytes(mask);
  Shape mask_shape = mask.shape();
  Tensor out = Tensor::empty(out_shape, a.dtype());
  dispatch_floating(a.dtype(), "where", [&]<class T>() {
    const T* x = a.value().data<T>();
    const T* y = b.value().data<T>();
    T* o = out.data<T>();
    for_each_broadcast(out_shape, mask_shape, out_shape,
                       [&](int64_t i, int64_t, int64_t im) { o[i] = m[im] ? x[i] : y[i]; });
  });
  return record("where", out, {a, b}, [=](const Tensor& g) -> std::vector<Tensor> {
    Tensor ga = Tensor::zeros(g.shape(), g.dtype()), gb = Tensor::zeros(g.shape(), g.dtype());
    dispatch_floating(g.dtype(), "where", [&]<class T>() {
      const T* gd = g.data<T>();
      T* da = ga.data<T>();
      T* db = gb.data<T>();
      for_each_broadcast(out_shape, mask_shape, out_shape, [&](int64_t i, int64_t, int64_t im) {
        (m[im] ? da : db)[i] = gd[i];
      });
    });
    return {ga, gb};
  });
}

Var masked_fill(const Var& x, const Tensor& mask, double value) {
  OpScope scope("masked_fill");
  Shape out_shape = broadcast_shape(mask.shape(), x.shape(), "masked_fill");
  MEGA_CHECK(out_shape == x.shape(), "[masked_fill] mask ", shape_str(mask.shape()),
             " does not broadcast to ", shape_str(x.shape()));
  std::vector<uint8_t> m = mask_bytes(mask);
  Shape mask_shape = mask.shape();
  Tensor out = Tensor::empty(out_shape, x.dtype());
  dispatch_floating(x.dtype(), "masked_fill", [&]<class T>() {
    const T* xs = x.value().data<T>();
    T* o = out.data<T>();
    for_each_broadcast(out_shape, mask_shape, out_shape, [&](int64_t i, int64_t, int64_t im) {
      o[i] = m[im] ? static_cast<T>(value) : xs[i];
    });
  });
  return record("masked_fill", out, {x}, [=](const Tensor& g) -> std::vector<Tensor> {
    Tensor gx = Tensor::empty(g.shape(), g.dtype());
    dispatch_floating(g.dtype(), "masked_fill", [&]<class T>() {
      const T* gd = g.data<T>();
      T* d = gx.data<T>();
      for_each_broadcast(out_shape, mask_shape, out_shape,
                         [&](int64_t i, int64_t, int64_t im) { d[i] = m[im] ? T(0) : gd[i]; });
    });
    return {gx};
  });
}

}  // namespace mega
