// Optimizers exactly as PyTorch defines them (torch.optim.SGD, Adam, AdamW; single-tensor path, no
// amsgrad, no maximize), parameter groups, global-norm gradient clipping and state save/load.
// Updates run under NoGradGuard and write each parameter in place (Var::value_mut()); gradients are
// only read, never written, so one backward's gradients can be inspected after step().
// Gradient accumulation is the caller's loop: several backward() calls add into .grad, then one step(),
// then zero_grad().
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "autograd/variable.h"

namespace mega {

// Parameters sharing hyperparameters. lr_scale multiplies the schedule's learning rate; weight_decay
// is L2 for SGD and Adam, decoupled (p *= 1 - lr * wd) for AdamW. `names` (one per parameter, or empty
// for "g<group>.<index>") key the saved state, so a checkpoint survives reordering of parameters.
struct ParamGroup {
  std::vector<Var> params;
  std::vector<std::string> names;
  double lr_scale = 1.0;
  double weight_decay = 0.0;
};

// Two groups from named parameters: those whose name contains any of `no_decay` (biases, norms, EMA
// parameters, ...) get weight decay 0, the others `weight_decay`. An empty group is left out.
std::vector<ParamGroup> decay_groups(const std::vector<std::pair<std::string, Var>>& named,
                                     double weight_decay, const std::vector<std::string>& no_decay);

// Fine-tuning rules over named parameters. Patterns are globs (fnmatch: * and ? match any characters,
// dots included; [...] a set), matched against the whole name ("mega.layers.0.*").
//   freeze    parameters matching any pattern are left out of every group: no update, no weight decay
//   lr_scale  (pattern, factor): a parameter's lr_scale is the factor of the first pattern it matches
// Groups are decay_groups' two, split further by lr_scale; an empty group is left out. A pattern that
// matches no parameter is an error naming it (a typo would otherwise train what was meant to stay fixed).
struct GroupRules {
  double weight_decay = 0.0;
  std::vector<std::string> no_decay{};
  std::vector<std::string> freeze{};
  std::vector<std::pair<std::string, double>> lr_scale{};
};
std::vector<ParamGroup> rule_groups(const std::vector<std::pair<std::string, Var>>& named, const GroupRules& rules);
bool glob_match(const std::string& pattern, const std::string& name);

enum class OptimizerKind { Sgd, Adam, AdamW };
OptimizerKind optimizer_kind_from_name(const std::string& name);  // "sgd", "adam", "adamw"
const char* optimizer_kind_name(OptimizerKind kind);

struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::AdamW;
  // SGD
  double momentum = 0.0;
  double dampening = 0.0;
  bool nesterov = false;  // needs momentum > 0 and dampening 0, as in PyTorch
  // Adam, AdamW
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};

class Optimizer {
 public:
  Optimizer(std::vector<ParamGroup> groups, OptimizerOptions options);

  // One update with learning rate `lr` (times each group's lr_scale). A parameter whose grad is
  // undefined is skipped and its step count does not advance, as in PyTorch.
  void step(double lr);
  void zero_grad();  // drops every parameter's gradient

  // Per parameter NAME: "NAME.step" (0-d I64) and, once it exists, "NAME.momentum_buffer" (SGD with
  // momentum) or "NAME.exp_avg", "NAME.exp_avg_sq" (Adam, AdamW), in the parameter's dtype.
  std::map<std::string, Tensor> state_dict() const;
  // Restores a state_dict(): every parameter's entries must be present with matching shapes, and no
  // entry may be left over; errors name the key. Tensors are copied (a loaded file may be a mapping).
  void load_state_dict(const std::map<std::string, Tensor>& state);

  const std::vector<ParamGroup>& groups() const { return groups_; }
  const OptimizerOptions& options() const { return options_; }

 private:
  struct ParamState {
    std::string name;
    int64_t step = 0;
    Tensor buffer0, buffer1;  // momentum_buffer; or exp_avg, exp_avg_sq
  };
  std::vector<ParamGroup> groups_;
  OptimizerOptions options_;
  std::vector<std::vector<ParamState>> state_;  // [group][param]
};

// sqrt of the sum of squares of every defined gradient (in double).
double grad_norm(const std::vector<Var>& params);
// torch.nn.utils.clip_grad_norm_: scales every gradient by max_norm / (norm + 1e-6) when that is
// below 1, and returns the norm before clipping. A non-finite norm leaves the gradients untouched (the
// caller should skip the step). Scaled gradients are new tensors: backward may share one gradient
// tensor between parameters, so scaling in place could scale it twice.
double clip_grad_norm(const std::vector<Var>& params, double max_norm);

// Every parameter of every group, in order.
std::vector<Var> all_params(const std::vector<ParamGroup>& groups);

}  // namespace mega
