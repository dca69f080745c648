// Pointwise activations (HF's ACT2FN names). Shapes: any, output as input.
#pragma once
#include <string>

#include "autograd/variable.h"
#include "core/enum_names.h"

namespace mega {

Var sigmoid(const Var& x);
Var tanh(const Var& x);
Var silu(const Var& x);           // x * sigmoid(x)
Var gelu(const Var& x);           // erf form: x/2 * (1 + erf(x/sqrt 2))
Var gelu_accurate(const Var& x);  // tanh form: x/2 * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
Var relu(const Var& x);
Var softplus(const Var& x);       // log(1 + e^x), stable for large |x|

enum class Activation { Identity, Relu, Silu, Gelu, GeluAccurate, Tanh, Sigmoid, Softplus };
// HF's ACT2FN names (aliases after the name written back); the one list of accepted activation names.
EnumNames<Activation> activation_names();
Activation activation_from_name(const std::string& name);  // an error lists activation_names()
const char* activation_name(Activation activation);
Var activate(Activation activation, const Var& x);

}  // namespace mega
