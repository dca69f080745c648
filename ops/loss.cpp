// Losses, each reduced to a mean (0-d, the dtype of the prediction), with hand-written backward. Sums run
// in double over fixed blocks in a fixed order, so the result does not depend on the thread count.
//
// Shapes: cross_entropy: logits (N, C), targets I64 (N). bce_with_logits, mse: prediction and target of
// one shape (n elements), targets floating.
#include "ops/loss.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "autograd/profile.h"
#include "core/threading.h"

namespace mega {
namespace {

// sum over i in [0, n) of term(i), in double: fixed blocks of `block` terms (sized by the caller to about
// 4096 elements of work), summed in block order; threads take at least 8 blocks each.
template <class Term>
double blocked_sum(int64_t n, int64_t block, Term term) {
  int64_t blocks = (n + block - 1) / block;
  std::vector<double> partial(static_cast<size_t>(blocks), 0.0);
  parallel_for(blocks, 8, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) {
      double s = 0;
      for (int64_t i = b * block, end = std::min(n, (b + 1) * block); i < end; ++i) s += term(i);
      partial[b] = s;
    }
  });
  double total = 0;
  for (double s : partial) total += s;
  return total;
}

void check_prediction(const Var& x, const char* op, const char* name) {
  MEGA_CHECK(x.defined(), "[", op, "] ", name, " is undefined");
  MEGA_CHECK(x.dtype() == DType::F32 || x.dtype() == DType::F64, "[", op, "] ", name, " must be F32 or F64, got ",
             dtype_name(x.dtype()));
}

// The floating target of bce_with_logits / mse, checked against the prediction and converted to its dtype.
Tensor matching_target(const Var& prediction, const Tensor& target, const char* op, const char* name) {
  MEGA_CHECK(target.defined(), "[", op, "] target is undefined");
  MEGA_CHECK(target.dtype() == DType::F32 || target.dtype() == DType::F64, "[", op,
             "] target must be F32 or F64, got ", dtype_name(target.dtype()));
  MEGA_CHECK(target.shape() == prediction.shape(), "[", op, "] target has shape ", shape_str(target.shape()),
             " but ", name, " has shape ", shape_str(prediction.shape()));
  MEGA_CHECK(prediction.numel() > 0, "[", op, "] ", name, " is empty: the mean of nothing is undefined");
  return target.dtype() == prediction.dtype() ? target : target.to(prediction.dtype());
}

// A mean loss whose gradient is g/n * dloss(x_i, y_i) elementwise.
template <class Loss, class Grad>
Var elementwise_mean_loss(const char* op, const Var& x, const Tensor& y, Loss loss, Grad dloss) {
  OpScope scope(op);
  int64_t n = x.numel();
  Tensor xv = x.value();
  Tensor out = Tensor::empty({}, x.dtype());
  dispatch_floating(x.dtype(), op, [&]<class T>() {
    const T* xs = xv.data<T>();
    const T* ys = y.data<T>();
    double total = blocked_sum(n, 4096, [&](int64_t i) { return loss(static_cast<double>(xs[i]), static_cast<double>(ys[i])); });
    out.data<T>()[0] = static_cast<T>(total / static_cast<double>(n));
  });
  return record(op, out, {x}, [=](const Tensor& g) -> std::vector<Tensor> {
    Tensor dx = Tensor::empty(xv.shape(), xv.dtype());
    dispatch_floating(g.dtype(), op, [&]<class T>() {
      const T* xs = xv.data<T>();
      const T* ys = y.data<T>();
      T* d = dx.data<T>();
      double scale = g.item() / static_cast<double>(n);
      parallel_for(n, 1 << 14, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i)
          d[i] = static_cast<T>(scale * dloss(static_cast<double>(xs[i]), static_cast<double>(ys[i])));
      });
    });
    return {dx};
  });
}

}  // namespace

// loss_i = (1 - eps) * (lse_i - x_{i,t_i}) + eps * mean_c(lse_i - x_{i,c}), lse_i = log sum_c exp x_{i,c}
// (PyTorch's label smoothing), averaged over the rows whose target is not ignore_index.
// Backward, for those rows, with p = softmax(x_i) and n_valid the number of such rows:
//   dx_{i,c} = g / n_valid * (p_c - (1 - eps) [c == t_i] - eps / C);  ignored rows get 0.
// Saved: logits and lse per row; p is recomputed.
Var cross_entropy(const Var& logits, const Tensor& targets, int64_t ignore_index, double label_smoothing) {
  OpScope scope("cross_entropy");
  check_prediction(logits, "cross_entropy", "logits");
  MEGA_CHECK(logits.dim() == 2, "[cross_entropy] logits must be (N, C), got shape ", shape_str(logits.shape()));
  int64_t N = logits.size(0), C = logits.size(1);
  MEGA_CHECK(C > 0, "[cross_entropy] logits have no classes: shape ", shape_str(logits.shape()));
  MEGA_CHECK(targets.defined() && targets.dtype() == DType::I64, "[cross_entropy] targets must be I64, got ",
             targets.defined() ? dtype_name(targets.dtype()) : "undefined");
  MEGA_CHECK(targets.shape() == Shape{N}, "[cross_entropy] targets have shape ", shape_str(targets.shape()),
             " but logits have shape ", shape_str(logits.shape()), " (expected (", N, "))");
  MEGA_CHECK(label_smoothing >= 0 && label_smoothing <= 1, "[cross_entropy] label_smoothing must be in [0, 1], got ",
             label_smoothing);
  const int64_t* t = targets.data<int64_t>();
  int64_t valid = 0;
  for (int64_t i = 0; i < N; ++i) {
    if (t[i] == ignore_index) continue;
    MEGA_CHECK(t[i] >= 0 && t[i] < C, "[cross_entropy] target ", t[i], " (row ", i, ") is out of range for C = ", C,
               " classes (ignore_index is ", ignore_index, ")");
    ++valid;
  }

  Tensor xv = logits.value(), saved_targets = targets;
  std::vector<double> lse(static_cast<size_t>(N), 0.0);
  double eps = label_smoothing;
  Tensor out = Tensor::empty({}, logits.dtype());
  dispatch_floating(logits.dtype(), "cross_entropy", [&]<class T>() {
    const T* x = xv.data<T>();
    double total = blocked_sum(N, std::max<int64_t>(1, 4096 / C), [&](int64_t i) {
      if (t[i] == ignore_index) return 0.0;
      const T* row = x + i * C;
      double m = row[0];
      for (int64_t c = 1; c < C; ++c) m = std::max(m, static_cast<double>(row[c]));
      double s = 0, sum_x = 0;
      for (int64_t c = 0; c < C; ++c) {
        s += std::exp(row[c] - m);
        sum_x += row[c];
      }
      lse[i] = m + std::log(s);
      double nll = lse[i] - row[t[i]];
      return eps == 0 ? nll : (1 - eps) * nll + eps * (lse[i] - sum_x / static_cast<double>(C));
    });
    out.data<T>()[0] = static_cast<T>(valid > 0 ? total / static_cast<double>(valid) : 0.0);
  });

  return record("cross_entropy", out, {logits}, [=](const Tensor& g) -> std::vector<Tensor> {
    Tensor dx = Tensor::zeros(xv.shape(), xv.dtype());
    if (valid == 0) return {dx};
    const int64_t* target = saved_targets.data<int64_t>();
    double scale = g.item() / static_cast<double>(valid);
    dispatch_floating(g.dtype(), "cross_entropy", [&]<class T>() {
      const T* x = xv.data<T>();
      T* d = dx.data<T>();
      parallel_for(N, std::max<int64_t>(1, (int64_t{1} << 14) / C), [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) {
          if (target[i] == ignore_index) continue;
          const T* row = x + i * C;
          T* drow = d + i * C;
          for (int64_t c = 0; c < C; ++c)
            drow[c] = static_cast<T>(scale * (std::exp(row[c] - lse[i]) - eps / static_cast<double>(C)));
          drow[target[i]] = static_cast<T>(drow[target[i]] - scale * (1 - eps));
        }
      });
    });
    return {dx};
  });
}

// Stable form: max(x, 0) - x y + log(1 + exp(-|x|)). Backward: dx = g/n * (sigmoid(x) - y).
Var bce_with_logits(const Var& logits, const Tensor& targets) {
  check_prediction(logits, "bce_with_logits", "logits");
  Tensor y = matching_target(logits, targets, "bce_with_logits", "logits");
  return elementwise_mean_loss(
      "bce_with_logits", logits, y,
      [](double x, double t) { return std::max(x, 0.0) - x * t + std::log1p(std::exp(-std::abs(x))); },
      [](double x, double t) {
        double sigmoid = x >= 0 ? 1 / (1 + std::exp(-x)) : std::exp(x) / (1 + std::exp(x));
        return sigmoid - t;
      });
}

// mean((p - t)^2). Backward: dp = g/n * 2 (p - t).
Var mse(const Var& prediction, const Tensor& target) {
  check_prediction(prediction, "mse", "prediction");
  Tensor y = matching_target(prediction, target, "mse", "prediction");
  return elementwise_mean_loss(
      "mse", prediction, y, [](double p, double t) { return (p - t) * (p - t); },
      [](double p, double t) { return 2 * (p - t); });
}

}  // namespace mega
