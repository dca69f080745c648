// Internal to ops/: the template behind every one-input pointwise op, so each op is one line of
// forward math and one line of derivative.
#pragma once
#include "autograd/variable.h"
#include "autograd/profile.h"
#include "core/threading.h"

namespace mega {

// out = fwd(x) elementwise; backward: grad_x = grad_out * df(x, out). Saves x and out.
template <class Fwd, class Df>
Var pointwise(const char* op, const Var& a, Fwd fwd, Df df) {
  OpScope scope(op);
  Tensor out = Tensor::empty(a.shape(), a.dtype());
  dispatch_floating(a.dtype(), op, [&]<class T>() {
    const T* x = a.value().data<T>();
    T* o = out.data<T>();
    parallel_for(out.numel(), 1 << 14, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) o[i] = fwd(x[i]);
    });
  });
  Tensor av = a.value();
  return record(op, out, {a}, [=](const Tensor& g) -> std::vector<Tensor> {
    Tensor ga = Tensor::empty(g.shape(), g.dtype());
    dispatch_floating(g.dtype(), op, [&]<class T>() {
      const T* x = av.data<T>();
      const T* y = out.data<T>();
      const T* gd = g.data<T>();
      T* d = ga.data<T>();
      parallel_for(ga.numel(), 1 << 14, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) d[i] = gd[i] * df(x[i], y[i]);
      });
    });
    return {ga};
  });
}

}  // namespace mega
