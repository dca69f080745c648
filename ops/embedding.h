// Embedding lookup. Shapes: ids I64 (...), weight (V, D) -> (..., D). Backward scatter-adds into weight;
// the row `padding_idx` (when >= 0) gets no gradient, as PyTorch's nn.Embedding(padding_idx=...), which
// HF's Mega uses for the pad token.
#pragma once
#include "autograd/variable.h"

namespace mega {

Var embedding(const Tensor& ids, const Var& weight, int64_t padding_idx = -1);

}  // namespace mega
