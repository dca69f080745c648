// SGD, Adam and AdamW updates (the formulas of torch.optim's single-tensor implementations), state
// save/load and gradient clipping.
#include "optim/optimizer.h"

#include <fnmatch.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

#include "core/threading.h"

namespace mega {

namespace {

constexpr int64_t kGrain = 1 << 14;

// torch.optim.SGD, per element:
//   d = g + wd p
//   b = d                        (first step)
//   b = momentum b + (1 - dampening) d   (later steps)
//   d = d + momentum b  (nesterov)  or  d = b
//   p -= lr d
template <class T>
void sgd_update(T* p, const T* g, T* buffer, int64_t n, double lr, double wd, const OptimizerOptions& o,
                bool first_step) {
  const T momentum = static_cast<T>(o.momentum), keep = static_cast<T>(1 - o.dampening);
  const T t_lr = static_cast<T>(lr), t_wd = static_cast<T>(wd);
  parallel_for(n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      T d = g[i] + t_wd * p[i];
      if (buffer) {
        buffer[i] = first_step ? d : momentum * buffer[i] + keep * d;
        d = o.nesterov ? d + momentum * buffer[i] : buffer[i];
      }
      p[i] -= t_lr * d;
    }
  });
}

// torch.optim.Adam / AdamW, per element, at step t (1-based):
//   p *= 1 - lr wd                (AdamW: decoupled decay)    g += wd p   (Adam: L2 in the gradient)
//   m = beta1 m + (1 - beta1) g
//   v = beta2 v + (1 - beta2) g^2
//   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)     (eps outside the sqrt)
template <class T>
void adam_update(T* p, const T* g, T* m, T* v, int64_t n, double lr, double wd, bool decoupled,
                 const OptimizerOptions& o, int64_t t) {
  const double bias_correction1 = 1 - std::pow(o.beta1, static_cast<double>(t));
  const double bias_correction2_sqrt = std::sqrt(1 - std::pow(o.beta2, static_cast<double>(t)));
  const T step_size = static_cast<T>(lr / bias_correction1);
  const T inv_bc2_sqrt = static_cast<T>(1 / bias_correction2_sqrt);
  // 1 - beta in double, then rounded, as PyTorch does (1 - float(beta2) would be off by 1e-5).
  const T beta1 = static_cast<T>(o.beta1), beta2 = static_cast<T>(o.beta2), eps = static_cast<T>(o.eps);
  const T one_minus_beta1 = static_cast<T>(1 - o.beta1), one_minus_beta2 = static_cast<T>(1 - o.beta2);
  const T decay = static_cast<T>(decoupled ? 1 - lr * wd : 1), l2 = static_cast<T>(decoupled ? 0 : wd);
  parallel_for(n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      p[i] *= decay;
      const T grad = g[i] + l2 * p[i];
      m[i] = beta1 * m[i] + one_minus_beta1 * grad;
      v[i] = beta2 * v[i] + one_minus_beta2 * grad * grad;
      p[i] -= step_size * m[i] / (std::sqrt(v[i]) * inv_bc2_sqrt + eps);
    }
  });
}

bool uses_buffer0(const OptimizerOptions& o) { return o.kind != OptimizerKind::Sgd || o.momentum != 0; }
bool uses_buffer1(const OptimizerOptions& o) { return o.kind != OptimizerKind::Sgd; }
const char* buffer0_name(const OptimizerOptions& o) {
  return o.kind == OptimizerKind::Sgd ? "momentum_buffer" : "exp_avg";
}

std::string default_name(size_t group, size_t index) {
  std::ostringstream name;
  name << 'g' << group << '.' << index;
  return name.str();
}

}  // namespace

OptimizerKind optimizer_kind_from_name(const std::string& name) {
  if (name == "sgd") return OptimizerKind::Sgd;
  if (name == "adam") return OptimizerKind::Adam;
  if (name == "adamw") return OptimizerKind::AdamW;
  fail("unknown optimizer '", name, "' (expected sgd, adam or adamw)");
}

const char* optimizer_kind_name(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::Sgd: return "sgd";
    case OptimizerKind::Adam: return "adam";
    case OptimizerKind::AdamW: return "adamw";
  }
  return "?";
}

std::vector<ParamGroup> decay_groups(const std::vector<std::pair<std::string, Var>>& named,
                                     double weight_decay, const std::vector<std::string>& no_decay) {
  ParamGroup decay, keep;
  decay.weight_decay = weight_decay;
  std::set<VariableImpl*> seen;
  for (const auto& [name, var] : named) {
    // A tied weight is listed under each of its names (nn/module.h): it is one parameter, under its first.
    if (!seen.insert(var.impl()).second) continue;
    bool excluded = false;
    for (const std::string& pattern : no_decay) excluded = excluded || name.find(pattern) != std::string::npos;
    ParamGroup& group = excluded ? keep : decay;
    group.params.push_back(var);
    group.names.push_back(name);
  }
  std::vector<ParamGroup> groups;
  if (!decay.params.empty()) groups.push_back(std::move(decay));
  if (!keep.params.empty()) groups.push_back(std::move(keep));
  return groups;
}

bool glob_match(const std::string& pattern, const std::string& name) {
  return fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

std::vector<ParamGroup> rule_groups(const std::vector<std::pair<std::string, Var>>& named, const GroupRules& rules) {
  for (const auto& [pattern, factor] : rules.lr_scale)
    MEGA_CHECK(factor >= 0, "[optimizer] lr_scale factor of '", pattern, "' is negative: ", factor);
  std::vector<size_t> freeze_hits(rules.freeze.size(), 0), scale_hits(rules.lr_scale.size(), 0);
  std::vector<std::pair<std::string, Var>> trained;
  std::map<VariableImpl*, double> scale_of;
  for (const auto& [name, var] : named) {
    if (scale_of.count(var.impl())) continue;  // a tied weight, under its first name (as decay_groups)
    double scale = -1;  // -1: no pattern yet
    for (size_t i = 0; i < rules.lr_scale.size(); ++i) {
      if (!glob_match(rules.lr_scale[i].first, name)) continue;
      ++scale_hits[i];
      if (scale < 0) scale = rules.lr_scale[i].second;
    }
    scale_of[var.impl()] = scale < 0 ? 1.0 : scale;
    bool frozen = false;
    for (size_t i = 0; i < rules.freeze.size(); ++i)
      if (glob_match(rules.freeze[i], name)) frozen = true, ++freeze_hits[i];
    if (!frozen) trained.emplace_back(name, var);
  }
  const char* glob_note = " (a glob: * and ? match any characters, dots included)";
  for (size_t i = 0; i < rules.freeze.size(); ++i)
    MEGA_CHECK(freeze_hits[i] > 0, "[optim.freeze] pattern '", rules.freeze[i], "'", glob_note,
               " matches no parameter name");
  for (size_t i = 0; i < rules.lr_scale.size(); ++i)
    MEGA_CHECK(scale_hits[i] > 0, "[optim.lr_scale] pattern '", rules.lr_scale[i].first, "'", glob_note,
               " matches no parameter name");
  // Each decay group split by scale, the scales in order of first appearance.
  std::vector<ParamGroup> groups;
  for (const ParamGroup& group : decay_groups(trained, rules.weight_decay, rules.no_decay)) {
    const size_t first = groups.size();
    for (size_t i = 0; i < group.params.size(); ++i) {
      const double scale = scale_of.at(group.params[i].impl());
      auto same = std::find_if(groups.begin() + static_cast<std::ptrdiff_t>(first), groups.end(),
                               [&](const ParamGroup& g) { return g.lr_scale == scale; });
      if (same == groups.end()) same = groups.insert(groups.end(), ParamGroup{{}, {}, scale, group.weight_decay});
      same->params.push_back(group.params[i]);
      same->names.push_back(group.names[i]);
    }
  }
  return groups;
}

Optimizer::Optimizer(std::vector<ParamGroup> groups, OptimizerOptions options)
    : groups_(std::move(groups)), options_(options) {
  const OptimizerOptions& o = options_;
  MEGA_CHECK(o.momentum >= 0, "[optimizer] momentum must be >= 0, got ", o.momentum);
  MEGA_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0),
             "[optimizer] Nesterov momentum needs momentum > 0 and dampening 0");
  MEGA_CHECK(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1, "[optimizer] betas must lie in [0, 1), got (",
             o.beta1, ", ", o.beta2, ")");
  MEGA_CHECK(o.eps >= 0, "[optimizer] eps must be >= 0, got ", o.eps);
  std::set<std::string> names;
  std::set<VariableImpl*> seen;
  for (size_t g = 0; g < groups_.size(); ++g) {
    ParamGroup& group = groups_[g];
    MEGA_CHECK(group.names.empty() || group.names.size() == group.params.size(), "[optimizer] group ", g,
               " has ", group.params.size(), " parameters but ", group.names.size(), " names");
    MEGA_CHECK(group.weight_decay >= 0, "[optimizer] group ", g, " has negative weight decay");
    std::vector<ParamState>& states = state_.emplace_back();
    for (size_t i = 0; i < group.params.size(); ++i) {
      const Var& p = group.params[i];
      std::string name = group.names.empty() ? default_name(g, i) : group.names[i];
      MEGA_CHECK(p.defined() && p.requires_grad() && p.is_leaf(), "[optimizer] '", name,
                 "' is not a leaf parameter that requires grad");
      MEGA_CHECK(seen.insert(p.impl()).second, "[optimizer] parameter '", name, "' appears twice");
      MEGA_CHECK(names.insert(name).second, "[optimizer] two parameters are named '", name, "'");
      states.push_back(ParamState{name, 0, {}, {}});
    }
  }
}

void Optimizer::step(double lr) {
  NoGradGuard no_grad;
  const OptimizerOptions& o = options_;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const ParamGroup& group = groups_[g];
    const double group_lr = lr * group.lr_scale;
    for (size_t i = 0; i < group.params.size(); ++i) {
      const Var& p = group.params[i];
      if (!p.grad().defined()) continue;
      ParamState& s = state_[g][i];
      Tensor& value = p.value_mut();
      const Tensor& grad = p.grad();
      MEGA_CHECK(grad.shape() == value.shape() && grad.dtype() == value.dtype(), "[optimizer] '", s.name,
                 "' has a gradient of ", shape_str(grad.shape()), " ", dtype_name(grad.dtype()),
                 " for a value of ", shape_str(value.shape()), " ", dtype_name(value.dtype()));
      if (uses_buffer0(o) && !s.buffer0.defined()) s.buffer0 = Tensor::zeros(value.shape(), value.dtype());
      if (uses_buffer1(o) && !s.buffer1.defined()) s.buffer1 = Tensor::zeros(value.shape(), value.dtype());
      s.step += 1;
      dispatch_floating(value.dtype(), "optimizer", [&]<class T>() {
        T* pv = value.data<T>();
        const T* gv = grad.data<T>();
        if (o.kind == OptimizerKind::Sgd) {
          sgd_update<T>(pv, gv, s.buffer0.defined() ? s.buffer0.data<T>() : nullptr, value.numel(), group_lr,
                        group.weight_decay, o, s.step == 1);
        } else {
          adam_update<T>(pv, gv, s.buffer0.data<T>(), s.buffer1.data<T>(), value.numel(), group_lr,
                         group.weight_decay, o.kind == OptimizerKind::AdamW, o, s.step);
        }
      });
    }
  }
}

void Optimizer::zero_grad() {
  for (const ParamGroup& group : groups_)
    for (const Var& p : group.params) p.zero_grad();
}

std::map<std::string, Tensor> Optimizer::state_dict() const {
  std::map<std::string, Tensor> out;
  for (const auto& states : state_) {
    for (const ParamState& s : states) {
      Tensor step = Tensor::scalar(0, DType::I64);
      step.data<int64_t>()[0] = s.step;
      out[s.name + ".step"] = step;
      if (s.step == 0) continue;  // no buffers yet
      if (uses_buffer0(options_)) out[s.name + "." + buffer0_name(options_)] = s.buffer0.clone();
      if (uses_buffer1(options_)) out[s.name + ".exp_avg_sq"] = s.buffer1.clone();
    }
  }
  return out;
}

void Optimizer::load_state_dict(const std::map<std::string, Tensor>& state) {
  std::set<std::string> used;
  auto take = [&](const std::string& key, const Tensor& like) {
    auto found = state.find(key);
    MEGA_CHECK(found != state.end(), "[optimizer] state has no entry '", key, "'");
    MEGA_CHECK(found->second.shape() == like.shape(), "[optimizer] state entry '", key, "' has shape ",
               shape_str(found->second.shape()), ", the parameter has ", shape_str(like.shape()));
    used.insert(key);
    return found->second.to(like.dtype());  // a copy even when the dtype matches
  };
  std::vector<std::vector<ParamState>> loaded = state_;
  for (size_t g = 0; g < groups_.size(); ++g) {
    for (size_t i = 0; i < groups_[g].params.size(); ++i) {
      ParamState& s = loaded[g][i];
      const Tensor& value = groups_[g].params[i].value();
      Tensor step = take(s.name + ".step", Tensor::scalar(0, DType::I64));
      s.step = static_cast<int64_t>(step.item());
      MEGA_CHECK(s.step >= 0, "[optimizer] state entry '", s.name, ".step' is negative");
      s.buffer0 = s.buffer1 = Tensor();
      if (s.step == 0) continue;
      if (uses_buffer0(options_)) s.buffer0 = take(s.name + "." + buffer0_name(options_), value);
      if (uses_buffer1(options_)) s.buffer1 = take(s.name + ".exp_avg_sq", value);
    }
  }
  for (const auto& [key, tensor] : state)
    MEGA_CHECK(used.count(key), "[optimizer] state entry '", key, "' belongs to no parameter of this optimizer");
  state_ = std::move(loaded);
}

std::vector<Var> all_params(const std::vector<ParamGroup>& groups) {
  std::vector<Var> out;
  for (const ParamGroup& group : groups) out.insert(out.end(), group.params.begin(), group.params.end());
  return out;
}

double grad_norm(const std::vector<Var>& params) {
  double sum = 0;
  for (const Var& p : params) {
    const Tensor& g = p.grad();
    if (!g.defined()) continue;
    dispatch_floating(g.dtype(), "grad_norm", [&]<class T>() {
      const T* x = g.data<T>();
      for (int64_t i = 0, n = g.numel(); i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
    });
  }
  return std::sqrt(sum);
}

double clip_grad_norm(const std::vector<Var>& params, double max_norm) {
  MEGA_CHECK(max_norm > 0, "[clip_grad_norm] max_norm must be > 0, got ", max_norm);
  const double norm = grad_norm(params);
  const double coef = max_norm / (norm + 1e-6);
  if (!std::isfinite(norm) || coef >= 1) return norm;
  for (const Var& p : params) {
    if (!p.grad().defined()) continue;
    Tensor scaled = p.grad().clone();
    dispatch_floating(scaled.dtype(), "clip_grad_norm", [&]<class T>() {
      T* x = scaled.data<T>();
      for (int64_t i = 0, n = scaled.numel(); i < n; ++i) x[i] *= static_cast<T>(coef);
    });
    p.set_grad(std::move(scaled));
  }
  return norm;
}

}  // namespace mega
