// Central-difference gradient check with a report of the worst element.
#include "autograd/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/rng.h"

namespace mega {

static bool is_floating(DType d) { return d == DType::F32 || d == DType::F64; }

// sum(y * w) in double.
static double weighted_sum(const Tensor& y, const Tensor& w) {
  double total = 0;
  for (int64_t i = 0; i < y.numel(); ++i) total += y.at(i) * w.at(i);
  return total;
}

static std::string index_str(const Shape& shape, int64_t flat) {
  std::vector<int64_t> index(shape.size());
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    index[d] = shape[d] ? flat % shape[d] : 0;
    flat = shape[d] ? flat / shape[d] : 0;
  }
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < index.size(); ++i) os << (i ? ", " : "") << index[i];
  os << "]";
  return os.str();
}

GradcheckReport gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options) {
  std::vector<Tensor> values;
  std::vector<bool> differentiate;
  for (size_t i = 0; i < inputs.size(); ++i) {
    bool floating = is_floating(inputs[i].dtype());
    values.push_back(floating ? inputs[i].to(options.dtype) : inputs[i]);
    bool skipped = std::find(options.skip.begin(), options.skip.end(), static_cast<int>(i)) !=
                   options.skip.end();
    differentiate.push_back(floating && !skipped);
  }
  auto make_vars = [&]() {
    std::vector<Var> vars;
    for (size_t i = 0; i < values.size(); ++i) vars.emplace_back(values[i], differentiate[i]);
    return vars;
  };

  std::vector<Var> vars = make_vars();
  Var y = f(vars);
  MEGA_CHECK(y.requires_grad(), "gradcheck: the output does not depend on any differentiable input");
  Rng rng(options.seed);
  Tensor w = Tensor::empty(y.shape(), options.dtype);
  for (int64_t i = 0; i < w.numel(); ++i) {
    double v = rng.normal(0, static_cast<uint64_t>(i));
    if (options.dtype == DType::F64) w.data<double>()[i] = v;
    else w.data<float>()[i] = static_cast<float>(v);
  }
  y.backward(w);

  GradcheckReport report;
  report.worst_excess = -INFINITY;
  NoGradGuard no_grad;
  for (size_t i = 0; i < values.size(); ++i) {
    if (!differentiate[i]) continue;
    Tensor analytic = vars[i].grad();
    Tensor& x = values[i];
    for (int64_t j = 0; j < x.numel(); ++j) {
      double original = x.at(j);
      auto set = [&](double v) {
        if (x.dtype() == DType::F64) x.data<double>()[j] = v;
        else x.data<float>()[j] = static_cast<float>(v);
      };
      set(original + options.eps);
      double plus = weighted_sum(f(make_vars()).value(), w);
      set(original - options.eps);
      double minus = weighted_sum(f(make_vars()).value(), w);
      set(original);
      double numeric = (plus - minus) / (2 * options.eps);
      double got = analytic.defined() ? analytic.at(j) : 0.0;
      double excess = std::abs(got - numeric) - (options.atol + options.rtol * std::abs(numeric));
      if (std::isnan(got) || std::isnan(numeric)) excess = INFINITY;
      if (excess > report.worst_excess) {
        report.worst_excess = excess;
        std::ostringstream os;
        os << "input " << i << " " << shape_str(x.shape()) << " at " << index_str(x.shape(), j)
           << ": analytic " << got << ", numeric " << numeric << ", |diff| " << std::abs(got - numeric)
           << " (allowed " << options.atol + options.rtol * std::abs(numeric) << ")"
           << (analytic.defined() ? "" : " [no gradient was produced]");
        report.message = os.str();
      }
    }
  }
  report.ok = report.worst_excess <= 0;
  return report;
}

}  // namespace mega
