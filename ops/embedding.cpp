// Embedding lookup and its scatter-add backward. Ids are checked up front (an out-of-range id is an
// error naming the id and V, never a read past the table).
//
// Shapes: ids I64 (...) with n elements, weight (V, D) -> out (..., D).
#include "ops/embedding.h"

#include <cstring>

#include "autograd/profile.h"
#include "core/threading.h"

namespace mega {

Var embedding(const Tensor& ids, const Var& weight, int64_t padding_idx) {
  OpScope scope("embedding");
  MEGA_CHECK(ids.defined(), "[embedding] ids are undefined");
  MEGA_CHECK(ids.dtype() == DType::I64, "[embedding] ids must be I64, got ", dtype_name(ids.dtype()));
  MEGA_CHECK(weight.defined() && weight.dim() == 2, "[embedding] weight must be (V, D), got shape ",
             weight.defined() ? shape_str(weight.shape()) : std::string("(undefined)"));
  MEGA_CHECK(weight.dtype() == DType::F32 || weight.dtype() == DType::F64,
             "[embedding] weight must be F32 or F64, got ", dtype_name(weight.dtype()));
  int64_t V = weight.size(0), D = weight.size(1), n = ids.numel();
  const int64_t* id = ids.data<int64_t>();
  for (int64_t i = 0; i < n; ++i)
    MEGA_CHECK(id[i] >= 0 && id[i] < V, "[embedding] id ", id[i], " (element ", i, " of ids ",
               shape_str(ids.shape()), ") is out of range for a table of V = ", V, " rows");

  Shape out_shape = ids.shape();
  out_shape.push_back(D);
  Tensor out = Tensor::empty(out_shape, weight.dtype());
  Tensor wv = weight.value();
  size_t row_bytes = static_cast<size_t>(D) * dtype_size(wv.dtype());
  const char* table = static_cast<const char*>(wv.raw());
  char* dst = static_cast<char*>(out.raw());
  parallel_for(n, std::max<int64_t>(1, 4096 / std::max<int64_t>(D, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) std::memcpy(dst + i * row_bytes, table + id[i] * row_bytes, row_bytes);
  });

  // Backward: dweight[v] = sum of g[i] over the positions i with ids[i] == v (repeated ids accumulate),
  // except the padding row, which gets none (PyTorch's padding_idx). Serial over positions, so the
  // summation order is fixed. Saved: the ids (shared, not copied).
  Tensor saved_ids = ids;
  return record("embedding", out, {weight}, [saved_ids, V, D, n, padding_idx](const Tensor& g) -> std::vector<Tensor> {
    Tensor dw = Tensor::zeros({V, D}, g.dtype());
    const int64_t* id = saved_ids.data<int64_t>();
    dispatch_floating(g.dtype(), "embedding", [&]<class T>() {
      const T* gd = g.data<T>();
      T* d = dw.data<T>();
      for (int64_t i = 0; i < n; ++i) {
        if (id[i] == padding_idx) continue;
        T* row = d + id[i] * D;
        const T* src = gd + i * D;
        for (int64_t j = 0; j < D; ++j) row[j] += src[j];
      }
    });
    return {dw};
  });
}

}  // namespace mega
