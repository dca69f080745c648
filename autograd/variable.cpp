// The backward pass: topological order, gradient accumulation, freeing saved state.
#include "autograd/variable.h"

#include "autograd/profile.h"

#include <unordered_map>
#include <unordered_set>

namespace mega {

static thread_local bool g_grad_enabled = true;

bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = previous_; }

Var::Var(Tensor value, bool requires_grad) : impl_(std::make_shared<VariableImpl>()) {
  MEGA_CHECK(value.defined(), "Var from an undefined tensor");
  MEGA_CHECK(!requires_grad || value.dtype() == DType::F32 || value.dtype() == DType::F64,
             "only F32/F64 tensors can require grad, got ", dtype_name(value.dtype()));
  impl_->value = std::move(value);
  impl_->requires_grad = requires_grad;
}

Var record(const char* op, Tensor output, std::vector<Var> inputs, BackwardFn backward) {
  Var result(std::move(output), false);
  if (!grad_enabled()) return result;
  bool any = false;
  for (const Var& v : inputs) any = any || v.requires_grad();
  if (!any) return result;
  auto node = std::make_shared<Node>();
  node->op = op;
  node->inputs = std::move(inputs);
  node->backward = std::move(backward);
  result.impl()->grad_fn = std::move(node);
  result.impl()->requires_grad = true;
  return result;
}

// Releasing a long chain recursively (node -> input var -> its node -> ...) would overflow the stack,
// so a node hands the nodes only it keeps alive to an explicit worklist instead.
Node::~Node() {
  std::vector<std::shared_ptr<Node>> orphans;
  auto adopt = [&orphans](std::vector<Var>& inputs) {
    for (Var& v : inputs)
      if (v.defined() && v.use_count() == 1 && v.grad_fn() && v.grad_fn().use_count() == 1)
        orphans.push_back(std::move(v.impl()->grad_fn));
    inputs.clear();
  };
  adopt(inputs);
  while (!orphans.empty()) {
    std::shared_ptr<Node> node = std::move(orphans.back());
    orphans.pop_back();
    adopt(node->inputs);
  }
}

void accumulate_into(Tensor& a, const Tensor& b) {
  MEGA_CHECK(a.shape() == b.shape() && a.dtype() == b.dtype(), "gradient accumulation: ",
             shape_str(a.shape()), " ", dtype_name(a.dtype()), " += ", shape_str(b.shape()), " ",
             dtype_name(b.dtype()));
  dispatch_floating(a.dtype(), "accumulate", [&]<class T>() {
    T* x = a.data<T>();
    const T* y = b.data<T>();
    for (int64_t i = 0, n = a.numel(); i < n; ++i) x[i] += y[i];
  });
}

// Adds g into `slot`. The first gradient is stored without a copy; later ones make a new tensor rather
// than adding in place, because a backward may hand the same tensor to several inputs (add's does).
static void add_gradient(Tensor& slot, Tensor g) {
  OpScope scope("grad_accumulate", OpPhase::Backward);
  if (!slot.defined()) {
    slot = std::move(g);
    return;
  }
  Tensor sum = slot.clone();
  accumulate_into(sum, g);
  slot = std::move(sum);
}

void Var::backward(const Tensor& seed_in) const {
  MEGA_CHECK(requires_grad(), "backward() on a value that does not require grad");
  Tensor seed = seed_in;
  if (!seed.defined()) {
    MEGA_CHECK(numel() == 1, "backward() without a seed needs a one-element output, got shape ",
               shape_str(shape()));
    seed = Tensor::full(shape(), 1.0, dtype());
  }
  MEGA_CHECK(seed.shape() == shape(), "backward seed has shape ", shape_str(seed.shape()),
             ", output has ", shape_str(shape()));
  if (is_leaf()) {
    add_gradient(impl_->grad, seed.dtype() == dtype() ? seed.clone() : seed.to(dtype()));
    return;
  }

  // Reverse topological order by an iterative depth-first search (graphs can be thousands deep).
  // `order` owns the nodes so that clearing a node's inputs below cannot free one still to run.
  std::vector<std::shared_ptr<Node>> order;
  std::unordered_set<Node*> visited;
  std::vector<std::pair<std::shared_ptr<Node>, size_t>> stack{{grad_fn(), 0}};
  visited.insert(grad_fn().get());
  while (!stack.empty()) {
    auto& top = stack.back();
    if (top.second < top.first->inputs.size()) {
      const Var& input = top.first->inputs[top.second++];
      if (input.defined() && input.grad_fn() && visited.insert(input.grad_fn().get()).second)
        stack.push_back({input.grad_fn(), 0});
    } else {
      order.push_back(std::move(top.first));
      stack.pop_back();
    }
  }

  std::unordered_map<Node*, Tensor> pending;
  // No copy when the dtype matches: backward functions never write into their grad_output.
  pending[grad_fn().get()] = seed.dtype() == dtype() ? seed : seed.to(dtype());
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* node = it->get();
    auto found = pending.find(node);
    if (found == pending.end()) continue;
    Tensor grad_output = std::move(found->second);
    pending.erase(found);
    MEGA_CHECK(node->backward != nullptr, "op '", node->op,
               "' has no backward (or its graph was already freed by an earlier backward())");
    std::vector<Tensor> grads;
    {
      OpScope scope(node->op, OpPhase::Backward);
      grads = node->backward(grad_output);
    }
    MEGA_CHECK(grads.size() == node->inputs.size(), "op '", node->op, "' returned ", grads.size(),
               " gradients for ", node->inputs.size(), " inputs");
    for (size_t i = 0; i < grads.size(); ++i) {
      const Var& input = node->inputs[i];
      if (!input.requires_grad()) continue;
      MEGA_CHECK(grads[i].defined(), "op '", node->op, "' returned no gradient for input ", i);
      MEGA_CHECK(grads[i].shape() == input.shape(), "op '", node->op, "' returned a gradient of shape ",
                 shape_str(grads[i].shape()), " for input ", i, " of shape ", shape_str(input.shape()));
      if (input.is_leaf()) {
        add_gradient(input.impl()->grad, std::move(grads[i]));
      } else {
        add_gradient(pending[input.grad_fn().get()], std::move(grads[i]));
      }
    }
    node->backward = nullptr;  // frees the saved state
    node->inputs.clear();
  }
}

}  // namespace mega
