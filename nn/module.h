// The module system: a tree of modules, each naming its parameters (Var), buffers (Tensor) and children,
// so every leaf has a dotted name ("layers.0.mega_layer.ema_gate.damping_factor") that matches the
// PyTorch state_dict of the HF model. Members register themselves by address in the constructor, so
// a module can be neither copied nor moved. A tied weight is one Var registered under two names.
#pragma once
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "autograd/variable.h"

namespace mega {

class Module {
 public:
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  virtual ~Module() = default;

  // Every parameter under its full dotted name, depth first in registration order; a tied weight
  // appears under each of its names.
  std::vector<std::pair<std::string, Var>> named_parameters() const;
  std::vector<std::pair<std::string, Tensor*>> named_buffers() const;
  std::vector<Var> parameters() const;  // each distinct Var once, for optimizers
  // Parameters and buffers by name; the tensors share storage with the module.
  std::map<std::string, Tensor> state_dict() const;
  // Copies every entry into place (dtype converted, shapes checked). A key of the module missing from
  // `tensors` is an error unless listed in `optional`; a key of `tensors` the module lacks is an error.
  void load_state_dict(const std::map<std::string, Tensor>& tensors,
                       const std::set<std::string>& optional = {});

  void train(bool training = true);  // this module and all below it
  void eval() { train(false); }
  bool training() const { return training_; }

 protected:
  void register_parameter(const std::string& name, Var* parameter);
  void register_buffer(const std::string& name, Tensor* buffer);
  void register_module(const std::string& name, Module* child);

 private:
  template <class Visit>
  void visit(const std::string& prefix, Visit&& visit_leaf) const;

  std::vector<std::pair<std::string, Var*>> parameters_;
  std::vector<std::pair<std::string, Tensor*>> buffers_;
  std::vector<std::pair<std::string, Module*>> children_;
  bool training_ = true;
};

// Linear(in, out) as PyTorch's: weight (out, in), bias (out). Parameters start at zero.
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool with_bias = true);
  Var forward(const Var& x) const;  // (..., in) -> (..., out)
  Var weight, bias;
};

// Embedding(V, D): weight (V, D). Positions holding `padding_idx` read their row but send it no
// gradient (PyTorch's padding_idx).
class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t dim, int64_t padding_idx = -1);
  Var forward(const Tensor& ids) const;  // I64 (...) -> (..., D)
  Var weight;

 private:
  int64_t padding_idx_;
};

}  // namespace mega
