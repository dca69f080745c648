// Reshaping and indexing ops. Most view x as (outer, n, inner) around one dimension and copy blocks of
// `inner` contiguous elements; backward is the matching scatter.
#include "ops/shape.h"

#include <cstring>
#include <numeric>

#include "autograd/profile.h"
#include "ops/elementwise.h"

namespace mega {

namespace {

int64_t normalize_dim(int64_t dim, int64_t dims, const char* op) {
  int64_t d = dim < 0 ? dim + dims : dim;
  MEGA_CHECK(d >= 0 && d < dims, "[", op, "] dimension ", dim, " out of range for ", dims, " dimensions");
  return d;
}

struct Around {
  int64_t outer = 1, n = 1, inner = 1;
};

Around around(const Shape& shape, int64_t dim) {
  Around a;
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    if (d < dim) a.outer *= shape[d];
    else if (d == dim) a.n = shape[d];
    else a.inner *= shape[d];
  }
  return a;
}

// Copies rows [src_start, src_start + length) of src's `dim` into rows [dst_start, ...) of dst's.
void copy_slab(const Tensor& src, int64_t src_start, Tensor& dst, int64_t dst_start, int64_t dim,
               int64_t length) {
  Around s = around(src.shape(), dim), d = around(dst.shape(), dim);
  size_t elem = dtype_size(src.dtype());
  size_t block = static_cast<size_t>(length * s.inner) * elem;
  const char* sp = static_cast<const char*>(src.raw());
  char* dp = static_cast<char*>(dst.raw());
  for (int64_t o = 0; o < s.outer; ++o)
    std::memcpy(dp + ((o * d.n + dst_start) * d.inner) * elem, sp + ((o * s.n + src_start) * s.inner) * elem,
                block);
}

}  // namespace

Var reshape(const Var& x, const Shape& shape) {
  OpScope scope("reshape");
  Shape original = x.shape();
  Tensor out = x.value().reshape(shape);
  return record("reshape", out, {x}, [original](const Tensor& g) -> std::vector<Tensor> {
    return {g.reshape(original)};
  });
}

static Tensor permute_tensor(const Tensor& x, const std::vector<int64_t>& order) {
  int64_t dims = x.dim();
  Shape out_shape(dims);
  std::vector<int64_t> in_strides(dims), strides(dims);
  int64_t stride = 1;
  for (int64_t d = dims - 1; d >= 0; --d) in_strides[d] = stride, stride *= x.shape()[d];
  for (int64_t d = 0; d < dims; ++d) out_shape[d] = x.shape()[order[d]], strides[d] = in_strides[order[d]];
  Tensor out = Tensor::empty(out_shape, x.dtype());
  size_t elem = dtype_size(x.dtype());
  const char* src = static_cast<const char*>(x.raw());
  char* dst = static_cast<char*>(out.raw());
  std::vector<int64_t> index(dims, 0);
  int64_t offset = 0;
  for (int64_t i = 0, n = x.numel(); i < n; ++i) {
    std::memcpy(dst + i * elem, src + offset * elem, elem);
    for (int64_t d = dims - 1; d >= 0; --d) {
      ++index[d];
      offset += strides[d];
      if (index[d] < out_shape[d]) break;
      offset -= strides[d] * out_shape[d];
      index[d] = 0;
    }
  }
  return out;
}

Var permute(const Var& x, const std::vector<int64_t>& order) {
  OpScope scope("permute");
  MEGA_CHECK(static_cast<int64_t>(order.size()) == x.dim(), "[permute] order has ", order.size(),
             " entries for ", x.dim(), " dimensions");
  std::vector<int64_t> inverse(order.size());
  std::vector<bool> seen(order.size(), false);
  for (size_t d = 0; d < order.size(); ++d) {
    int64_t o = normalize_dim(order[d], x.dim(), "permute");
    MEGA_CHECK(!seen[o], "[permute] dimension ", o, " repeated");
    seen[o] = true;
    inverse[o] = static_cast<int64_t>(d);
  }
  return record("permute", permute_tensor(x.value(), order), {x}, [inverse](const Tensor& g) -> std::vector<Tensor> {
    return {permute_tensor(g, inverse)};
  });
}

Var transpose(const Var& x, int64_t dim0, int64_t dim1) {
  std::vector<int64_t> order(x.dim());
  std::iota(order.begin(), order.end(), 0);
  std::swap(order[normalize_dim(dim0, x.dim(), "transpose")], order[normalize_dim(dim1, x.dim(), "transpose")]);
  return permute(x, order);
}

Var narrow(const Var& x, int64_t dim, int64_t start, int64_t length) {
  OpScope scope("narrow");
  dim = normalize_dim(dim, x.dim(), "narrow");
  MEGA_CHECK(start >= 0 && length >= 0 && start + length <= x.size(dim), "[narrow] [", start, ", ",
             start + length, ") out of range for dimension ", dim, " of ", shape_str(x.shape()));
  Shape out_shape = x.shape();
  out_shape[dim] = length;
  Tensor out;
  if (dim == 0) {
    out = x.value().narrow0(start, start + length);
  } else {
    out = Tensor::empty(out_shape, x.dtype());
    copy_slab(x.value(), start, out, 0, dim, length);
  }
  Shape shape = x.shape();
  return record("narrow", out, {x}, [=](const Tensor& g) -> std::vector<Tensor> {
    Tensor gx = Tensor::zeros(shape, g.dtype());
    copy_slab(g, 0, gx, start, dim, length);
    return {gx};
  });
}

std::vector<Var> split(const Var& x, int64_t dim, const std::vector<int64_t>& sizes) {
  dim = normalize_dim(dim, x.dim(), "split");
  int64_t total = std::accumulate(sizes.begin(), sizes.end(), int64_t{0});
  MEGA_CHECK(total == x.size(dim), "[split] sizes add up to ", total, " but dimension ", dim, " of ",
             shape_str(x.shape()), " is ", x.size(dim));
  std::vector<Var> parts;
  int64_t start = 0;
  for (int64_t size : sizes) {
    parts.push_back(narrow(x, dim, start, size));
    start += size;
  }
  return parts;
}

Var concat(const std::vector<Var>& xs, int64_t dim) {
  OpScope scope("concat");
  MEGA_CHECK(!xs.empty(), "[concat] no inputs");
  dim = normalize_dim(dim, xs[0].dim(), "concat");
  Shape out_shape = xs[0].shape();
  out_shape[dim] = 0;
  for (const Var& x : xs) {
    Shape s = x.shape();
    MEGA_CHECK(s.size() == out_shape.size() && x.dtype() == xs[0].dtype(), "[concat] ", shape_str(s),
               " does not match ", shape_str(xs[0].shape()));
    for (size_t d = 0; d < s.size(); ++d)
      MEGA_CHECK(static_cast<int64_t>(d) == dim || s[d] == xs[0].shape()[d], "[concat] ", shape_str(s),
                 " does not match ", shape_str(xs[0].shape()), " outside dimension ", dim);
    out_shape[dim] += s[dim];
  }
  Tensor out = Tensor::empty(out_shape, xs[0].dtype());
  std::vector<int64_t> starts;
  int64_t start = 0;
  for (const Var& x : xs) {
    copy_slab(x.value(), 0, out, start, dim, x.size(dim));
    starts.push_back(start);
    start += x.size(dim);
  }
  std::vector<Shape> shapes;
  for (const Var& x : xs) shapes.push_back(x.shape());
  return record("concat", out, xs, [=](const Tensor& g) -> std::vector<Tensor> {
    std::vector<Tensor> grads;
    for (size_t i = 0; i < shapes.size(); ++i) {
      Tensor gi = Tensor::empty(shapes[i], g.dtype());
      copy_slab(g, starts[i], gi, 0, dim, shapes[i][dim]);
      grads.push_back(gi);
    }
    return grads;
  });
}

Var stack(const std::vector<Var>& xs, int64_t dim) {
  MEGA_CHECK(!xs.empty(), "[stack] no inputs");
  int64_t d = dim < 0 ? dim + xs[0].dim() + 1 : dim;
  MEGA_CHECK(d >= 0 && d <= xs[0].dim(), "[stack] dimension ", dim, " out of range");
  std::vector<Var> expanded;
  for (const Var& x : xs) {
    Shape s = x.shape();
    s.insert(s.begin() + d, 1);
    expanded.push_back(reshape(x, s));
  }
  return concat(expanded, d);
}

Var pad(const Var& x, int64_t dim, int64_t before, int64_t after, double value) {
  OpScope scope("pad");
  dim = normalize_dim(dim, x.dim(), "pad");
  MEGA_CHECK(before >= 0 && after >= 0, "[pad] negative padding");
  Shape out_shape = x.shape();
  out_shape[dim] += before + after;
  Tensor out = Tensor::full(out_shape, value, x.dtype());
  copy_slab(x.value(), 0, out, before, dim, x.size(dim));
  Shape shape = x.shape();
  return record("pad", out, {x}, [=](const Tensor& g) -> std::vector<Tensor> {
    Tensor gx = Tensor::empty(shape, g.dtype());
    copy_slab(g, before, gx, 0, dim, shape[dim]);
    return {gx};
  });
}

Var select(const Var& x, int64_t dim, int64_t index) {
  dim = normalize_dim(dim, x.dim(), "select");
  MEGA_CHECK(index >= 0 && index < x.size(dim), "[select] index ", index, " out of range for dimension ",
             dim, " of ", shape_str(x.shape()));
  Shape s = x.shape();
  s.erase(s.begin() + dim);
  return reshape(narrow(x, dim, index, 1), s);
}

Var expand(const Var& x, const Shape& shape) {
  Shape target = broadcast_shape(x.shape(), shape, "expand");
  MEGA_CHECK(target == shape, "[expand] ", shape_str(x.shape()), " cannot expand to ", shape_str(shape));
  Var zeros(Tensor::zeros(shape, x.dtype()));
  return add(zeros, x);
}

}  // namespace mega
