// Reverse-mode autograd, define-by-run. A Var holds a tensor, its gradient and the Node that made it.
// A Node keeps its inputs and a backward function whose captures are exactly the state backward needs;
// backward() runs the nodes in reverse topological order, accumulates gradients that meet, and drops
// each node's saved state once it has run (a second backward over the same graph is an error).
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "core/tensor.h"

namespace mega {

struct Node;

struct VariableImpl {
  Tensor value;
  Tensor grad;  // accumulated by backward() for leaves that require grad
  std::shared_ptr<Node> grad_fn;
  bool requires_grad = false;
};

class Var {
 public:
  Var() = default;
  explicit Var(Tensor value, bool requires_grad = false);
  static Var parameter(Tensor value) { return Var(std::move(value), true); }

  bool defined() const { return impl_ != nullptr; }
  const Tensor& value() const { return impl_->value; }
  Tensor& value_mut() const { return impl_->value; }  // optimizers update leaves in place
  const Tensor& grad() const { return impl_->grad; }  // undefined until backward reached it
  void set_grad(Tensor grad) const { impl_->grad = std::move(grad); }
  void zero_grad() const { impl_->grad = Tensor(); }
  bool requires_grad() const { return impl_ && impl_->requires_grad; }
  const std::shared_ptr<Node>& grad_fn() const { return impl_->grad_fn; }
  bool is_leaf() const { return impl_->grad_fn == nullptr; }

  const Shape& shape() const { return impl_->value.shape(); }
  int64_t dim() const { return impl_->value.dim(); }
  int64_t size(int64_t d) const { return impl_->value.size(d); }
  int64_t numel() const { return impl_->value.numel(); }
  DType dtype() const { return impl_->value.dtype(); }
  double item() const { return impl_->value.item(); }

  Var detach() const { return Var(impl_->value, false); }
  // Seeds with ones for a one-element output; otherwise `seed` (the output's cotangent) is required.
  void backward(const Tensor& seed = Tensor()) const;

  VariableImpl* impl() const { return impl_.get(); }
  bool same(const Var& other) const { return impl_ == other.impl_; }
  long use_count() const { return impl_.use_count(); }

 private:
  std::shared_ptr<VariableImpl> impl_;
};

// Maps the output's gradient to one gradient per input, in input order. An input that does not
// require grad may get an undefined Tensor; one that does must get a tensor of its own shape.
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output)>;

struct Node {
  const char* op = "";
  std::vector<Var> inputs;
  BackwardFn backward;  // null when the op is not differentiable: reaching it is an error
  Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  ~Node();
};

// Wraps an op's output: when grad mode is on and some input requires grad, the result gets a Node.
// Pass backward = nullptr for an op with no gradient; differentiating through it then fails loudly.
Var record(const char* op, Tensor output, std::vector<Var> inputs, BackwardFn backward);

bool grad_enabled();
// Turns gradient recording off for its scope (evaluation, optimizer steps, decoding).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// a += b elementwise (same shape, F32 or F64); used to accumulate gradients.
void accumulate_into(Tensor& a, const Tensor& b);

}  // namespace mega
