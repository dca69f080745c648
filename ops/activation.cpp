// Pointwise activations with their derivatives. Shapes: any, output as input.
#include "ops/activation.h"

#include <cmath>

#include "ops/pointwise.h"
#include "ops/vector_math.h"

namespace mega {

Var sigmoid(const Var& x) {
  return pointwise("sigmoid", x, [](auto v) { return sigmoid_of(v); },
                   [](auto, auto y) { return y * (1 - y); });
}
Var tanh(const Var& x) {
  return pointwise("tanh", x, [](auto v) { return std::tanh(v); }, [](auto, auto y) { return 1 - y * y; });
}
Var silu(const Var& x) {
  return pointwise("silu", x, [](auto v) { return v * sigmoid_of(v); }, [](auto v, auto) {
    auto s = sigmoid_of(v);
    return s * (1 + v * (1 - s));
  });
}
Var gelu(const Var& x) {
  return pointwise("gelu", x, [](auto v) { return v / 2 * (1 + std::erf(v * decltype(v)(M_SQRT1_2))); },
                   [](auto v, auto) {
                     using T = decltype(v);
                     T cdf = (1 + std::erf(v * T(M_SQRT1_2))) / 2;
                     T pdf = std::exp(-v * v / 2) * T(0.3989422804014327);  // 1/sqrt(2 pi)
                     return cdf + v * pdf;
                   });
}
Var gelu_accurate(const Var& x) {
  // tanh approximation; k = sqrt(2/pi).
  return pointwise("gelu_accurate", x,
                   [](auto v) {
                     using T = decltype(v);
                     T k = T(0.7978845608028654);
                     return v / 2 * (1 + std::tanh(k * (v + T(0.044715) * v * v * v)));
                   },
                   [](auto v, auto) {
                     using T = decltype(v);
                     T k = T(0.7978845608028654);
                     T t = std::tanh(k * (v + T(0.044715) * v * v * v));
                     return (1 + t) / 2 + v / 2 * (1 - t * t) * k * (1 + 3 * T(0.044715) * v * v);
                   });
}
Var relu(const Var& x) {
  return pointwise("relu", x, [](auto v) { return v > 0 ? v : decltype(v)(0); },
                   [](auto v, auto) { return v > 0 ? decltype(v)(1) : decltype(v)(0); });
}
Var softplus(const Var& x) {
  // log(1 + e^v) = max(v, 0) + log1p(e^-|v|): no overflow for large |v|.
  return pointwise("softplus", x,
                   [](auto v) { return std::max(v, decltype(v)(0)) + std::log1p(std::exp(-std::abs(v))); },
                   [](auto v, auto) { return sigmoid_of(v); });
}

EnumNames<Activation> activation_names() {
  static constexpr EnumName<Activation> names[] = {
      {Activation::Identity, "linear"}, {Activation::Identity, "identity"}, {Activation::Relu, "relu"},
      {Activation::Silu, "silu"},       {Activation::Silu, "swish"},        {Activation::Gelu, "gelu"},
      {Activation::GeluAccurate, "gelu_accurate"}, {Activation::Tanh, "tanh"},
      {Activation::Sigmoid, "sigmoid"}, {Activation::Softplus, "softplus"}};
  return names;
}

Activation activation_from_name(const std::string& name) {
  if (auto activation = enum_from_name(activation_names(), name)) return *activation;
  fail("unknown activation '", name, "' (expected ", or_list(enum_name_list(activation_names())), ")");
}

const char* activation_name(Activation activation) {
  return enum_name(activation_names(), activation).data();  // the table's literals are NUL-terminated
}

Var activate(Activation activation, const Var& x) {
  switch (activation) {
    case Activation::Identity: return x;
    case Activation::Relu: return relu(x);
    case Activation::Silu: return silu(x);
    case Activation::Gelu: return gelu(x);
    case Activation::GeluAccurate: return gelu_accurate(x);
    case Activation::Tanh: return tanh(x);
    case Activation::Sigmoid: return sigmoid(x);
    case Activation::Softplus: return softplus(x);
  }
  fail("unknown activation");
}

}  // namespace mega
