// Elementwise arithmetic with NumPy broadcasting, scalar forms, unary math and masking.
// Shapes: any; binary ops broadcast trailing-aligned dimensions (size 1 or missing stretches).
#pragma once
#include "autograd/variable.h"

namespace mega {

Var add(const Var& a, const Var& b);
Var sub(const Var& a, const Var& b);
Var mul(const Var& a, const Var& b);
Var div(const Var& a, const Var& b);
Var add(const Var& a, double s);
Var mul(const Var& a, double s);
Var neg(const Var& a);
Var exp(const Var& a);
Var log(const Var& a);
Var sqrt(const Var& a);
Var rsqrt(const Var& a);
Var pow(const Var& a, double exponent);
Var square(const Var& a);

// where(mask, a, b): a where mask != 0, else b. mask (any dtype) broadcasts against a and b (same shape).
Var where(const Tensor& mask, const Var& a, const Var& b);
// x with `value` wherever mask != 0; mask broadcasts to x's shape. No gradient flows to filled places.
Var masked_fill(const Var& x, const Tensor& mask, double value);

// The broadcast shape of a and b, or an error naming `op` and both shapes.
Shape broadcast_shape(const Shape& a, const Shape& b, const char* op);
// Sums g (broadcast shape) down to `shape`: the backward of broadcasting.
Tensor sum_to_shape(const Tensor& g, const Shape& shape);

inline Var operator+(const Var& a, const Var& b) { return add(a, b); }
inline Var operator-(const Var& a, const Var& b) { return sub(a, b); }
inline Var operator*(const Var& a, const Var& b) { return mul(a, b); }
inline Var operator/(const Var& a, const Var& b) { return div(a, b); }
inline Var operator+(const Var& a, double s) { return add(a, s); }
inline Var operator-(const Var& a, double s) { return add(a, -s); }
inline Var operator*(const Var& a, double s) { return mul(a, s); }
inline Var operator*(double s, const Var& a) { return mul(a, s); }
inline Var operator/(const Var& a, double s) { return mul(a, 1.0 / s); }
inline Var operator-(const Var& a) { return neg(a); }

}  // namespace mega
