// Embedding lookup. Shapes: ids I64 (...), weight (V, D) -> (..., D). Backward scatter-adds into weight.
#pragma once
#include "autograd/variable.h"

namespace mega {

Var embedding(const Tensor& ids, const Var& weight);

}  // namespace mega
