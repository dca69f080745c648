// Reductions. Shapes: x any; `axis` may be negative; keepdim keeps the reduced axis with size 1.
#pragma once
#include "autograd/variable.h"

namespace mega {

Var sum(const Var& x);  // every element, 0-d result
Var mean(const Var& x);
Var sum(const Var& x, int64_t axis, bool keepdim = false);
Var mean(const Var& x, int64_t axis, bool keepdim = false);
Var max(const Var& x, int64_t axis, bool keepdim = false);  // gradient to the first maximum

}  // namespace mega
