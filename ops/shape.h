// Differentiable reshaping and indexing: views where free, copies otherwise.
#pragma once
#include <vector>

#include "autograd/variable.h"

namespace mega {

Var reshape(const Var& x, const Shape& shape);  // a view; one dimension may be -1
Var transpose(const Var& x, int64_t dim0, int64_t dim1);  // a copy, contiguous
Var permute(const Var& x, const std::vector<int64_t>& order);  // a copy, contiguous
// x[..., start:start+length, ...] along `dim` (a copy unless dim is 0).
Var narrow(const Var& x, int64_t dim, int64_t start, int64_t length);
// Splits along `dim` into pieces of the given sizes (they must add up to x.size(dim)).
std::vector<Var> split(const Var& x, int64_t dim, const std::vector<int64_t>& sizes);
Var concat(const std::vector<Var>& xs, int64_t dim);
Var stack(const std::vector<Var>& xs, int64_t dim);
// Pads `dim` with `before` and `after` entries of `value`.
Var pad(const Var& x, int64_t dim, int64_t before, int64_t after, double value = 0);
// x.select(dim, index): drops `dim`.
Var select(const Var& x, int64_t dim, int64_t index);
// Repeats x along a new or size-1 dimension to `shape` (broadcast copy; backward sums).
Var expand(const Var& x, const Shape& shape);

}  // namespace mega
