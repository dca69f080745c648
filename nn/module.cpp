// Module tree walking, state dicts, and the two leaf modules every model uses (Linear, Embedding).
#include "nn/module.h"

#include <unordered_set>

#include "ops/embedding.h"
#include "ops/matmul.h"

namespace mega {

template <class Visit>
void Module::visit(const std::string& prefix, Visit&& visit_leaf) const {
  for (const auto& [name, p] : parameters_) visit_leaf(prefix + name, p, nullptr);
  for (const auto& [name, b] : buffers_) visit_leaf(prefix + name, nullptr, b);
  for (const auto& [name, child] : children_) child->visit(prefix + name + ".", visit_leaf);
}

std::vector<std::pair<std::string, Var>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Var>> all;
  visit("", [&](const std::string& name, Var* p, Tensor*) {
    if (p) all.emplace_back(name, *p);
  });
  return all;
}

std::vector<std::pair<std::string, Tensor*>> Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor*>> all;
  visit("", [&](const std::string& name, Var*, Tensor* b) {
    if (b) all.emplace_back(name, b);
  });
  return all;
}

std::vector<Var> Module::parameters() const {
  std::vector<Var> unique;
  std::unordered_set<VariableImpl*> seen;
  for (const auto& [name, p] : named_parameters())
    if (seen.insert(p.impl()).second) unique.push_back(p);
  return unique;
}

std::map<std::string, Tensor> Module::state_dict() const {
  std::map<std::string, Tensor> all;
  visit("", [&](const std::string& name, Var* p, Tensor* b) { all[name] = p ? p->value() : *b; });
  return all;
}

void Module::load_state_dict(const std::map<std::string, Tensor>& tensors,
                             const std::set<std::string>& optional) {
  std::set<std::string> used;
  visit("", [&](const std::string& name, Var* p, Tensor* b) {
    auto found = tensors.find(name);
    if (found == tensors.end()) {
      MEGA_CHECK(optional.count(name), "[load_state_dict] missing key '", name, "'");
      return;
    }
    used.insert(name);
    Tensor& target = p ? p->value_mut() : *b;
    MEGA_CHECK(found->second.shape() == target.shape(), "[load_state_dict] '", name, "' has shape ",
               shape_str(found->second.shape()), " but the model expects ", shape_str(target.shape()));
    target.copy_from(found->second);
  });
  for (const auto& [name, t] : tensors)
    MEGA_CHECK(used.count(name), "[load_state_dict] unexpected key '", name, "' (shape ",
               shape_str(t.shape()), "): the model has no such parameter or buffer");
}

void Module::train(bool training) {
  training_ = training;
  for (auto& [name, child] : children_) child->train(training);
}

void Module::register_parameter(const std::string& name, Var* parameter) {
  parameters_.emplace_back(name, parameter);
}
void Module::register_buffer(const std::string& name, Tensor* buffer) { buffers_.emplace_back(name, buffer); }
void Module::register_module(const std::string& name, Module* child) { children_.emplace_back(name, child); }

Linear::Linear(int64_t in_features, int64_t out_features, bool with_bias) {
  weight = Var::parameter(Tensor::zeros({out_features, in_features}));
  register_parameter("weight", &weight);
  if (with_bias) {
    bias = Var::parameter(Tensor::zeros({out_features}));
    register_parameter("bias", &bias);
  }
}

Var Linear::forward(const Var& x) const { return linear(x, weight, bias); }

Embedding::Embedding(int64_t num_embeddings, int64_t dim, int64_t padding_idx) : padding_idx_(padding_idx) {
  weight = Var::parameter(Tensor::zeros({num_embeddings, dim}));
  register_parameter("weight", &weight);
}

Var Embedding::forward(const Tensor& ids) const { return embedding(ids, weight, padding_idx_); }

}  // namespace mega
