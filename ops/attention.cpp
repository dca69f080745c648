// Mega's attention core (paper Sec. 3.2-3.3, HF's softmax_attention / element_attention): relative position
// biases, then one fused op for scores, masks, the attention function, chunking, dropout and the weighted
// sum, with a hand-written backward; and the slow reference from primitive ops it is tested against.
// Shapes: B batch, L queries, S keys, Z shared dim, I value dim, c chunk size, M bias positions.
// Inside the fused op chunks are batch entries: P = B L/c problems of Lq = Sk = c queries and keys
// (without chunking P = B, Lq = L, Sk = S), so every product is one 3-D batched matmul.
#include "ops/attention.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <memory>

#include "autograd/profile.h"
#include "core/threading.h"
#include "ops/attention_fn.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/shape.h"
#include "ops/vector_math.h"

namespace mega {

EnumNames<AttentionFunction> attention_function_names() {
  static constexpr EnumName<AttentionFunction> names[] = {
      {AttentionFunction::Softmax, "softmax"}, {AttentionFunction::Laplace, "laplace"},
      {AttentionFunction::Relu2, "relu2"}};
  return names;
}

AttentionFunction attention_function_from_name(const std::string& name) {
  if (auto function = enum_from_name(attention_function_names(), name)) return *function;
  fail("[attention] unknown attention function '", name, "' (expected ",
       or_list(enum_name_list(attention_function_names())), ")");
}

// ---------------------------------------------------------------------------------------------------
// Relative position biases.

// bias[i][j] = w[M - 1 + j - i]. Backward scatters: dw[M - 1 + j - i] += g[i][j].
Var simple_relative_bias(const Var& w, int64_t n) {
  OpScope scope("simple_relative_bias");
  MEGA_CHECK(w.dim() == 1 && w.size(0) % 2 == 1, "[simple_relative_bias] w must be (2M - 1), got ",
             shape_str(w.shape()));
  int64_t m = (w.size(0) + 1) / 2;
  MEGA_CHECK(n >= 1, "[simple_relative_bias] length must be positive, got ", n);
  MEGA_CHECK(n <= m, "[simple_relative_bias] a chunk of ", n, " positions is longer than the bias's M = ", m,
             " (M is chunk_size when chunk_size > 0, else max_positions): raise max_positions/chunk_size");
  Tensor out = Tensor::empty({n, n}, w.dtype());
  dispatch_floating(w.dtype(), "simple_relative_bias", [&]<class T>() {
    const T* ws = w.value().data<T>();
    T* o = out.data<T>();
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) o[i * n + j] = ws[m - 1 + j - i];
  });
  Shape w_shape = w.shape();
  return record("simple_relative_bias", out, {w}, [=](const Tensor& g) -> std::vector<Tensor> {
    Tensor gw = Tensor::zeros(w_shape, g.dtype());
    dispatch_floating(g.dtype(), "simple_relative_bias", [&]<class T>() {
      const T* gd = g.data<T>();
      T* d = gw.data<T>();
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) d[m - 1 + j - i] += gd[i * n + j];
    });
    return {gw};
  });
}

// Built from primitives (its cost is O(n Z + n^2 Z) once per call, negligible next to attention), so the
// gradient comes from autograd. Angles as HF's get_sinusoid_embeddings: in float32,
// inv_k = exp(k * -(log(10000) / (Z/2))), angle(t, k) = t * inv_k.
Var rotary_relative_bias(const Var& alpha, const Var& b_param, int64_t n) {
  OpScope scope("rotary_relative_bias");
  MEGA_CHECK(alpha.dim() == 2 && alpha.size(0) == 1, "[rotary_relative_bias] alpha must be (1, Z), got ",
             shape_str(alpha.shape()));
  MEGA_CHECK(b_param.shape() == alpha.shape(), "[rotary_relative_bias] b_param has shape ", shape_str(b_param.shape()),
             " but alpha has ", shape_str(alpha.shape()));
  int64_t z = alpha.size(1);
  MEGA_CHECK(z % 2 == 0 && z > 0, "[rotary_relative_bias] needs an even shared dimension Z, got Z = ", z);
  MEGA_CHECK(n >= 1, "[rotary_relative_bias] length must be positive, got ", n);
  int64_t half = z / 2;
  Tensor cos_table = Tensor::empty({n, half}, DType::F64), sin_table = Tensor::empty({n, half}, DType::F64);
  float step = static_cast<float>(std::log(10000.0) / static_cast<double>(half));
  for (int64_t k = 0; k < half; ++k) {
    float inverse = std::exp(static_cast<float>(k) * -step);
    for (int64_t t = 0; t < n; ++t) {
      double angle = static_cast<float>(t) * inverse;
      cos_table.data<double>()[t * half + k] = std::cos(angle);
      sin_table.data<double>()[t * half + k] = std::sin(angle);
    }
  }
  Var c(cos_table.to(alpha.dtype())), s(sin_table.to(alpha.dtype()));
  auto rotate = [&](const Var& x) {  // (1, Z) -> (n, Z)
    std::vector<Var> halves = split(x, 1, {half, half});
    return concat({halves[0] * c - halves[1] * s, halves[1] * c + halves[0] * s}, 1);
  };
  return matmul(rotate(alpha), rotate(b_param), false, true);
}

// ---------------------------------------------------------------------------------------------------
// The fused attention.

namespace {

struct Plan {
  int64_t batch, queries, keys, z, value_dim;  // B, L, S, Z, I
  int64_t problems, lq, sk;                    // P, Lq, Sk: the per-chunk problem
  int64_t offset;                              // Sk - Lq: the key position of query 0 (causal)
  AttentionFunction function;
  bool causal;
  double dropout;  // the probability when it applies (training), else 0
};

// The front end: every shape rule of the header, with the offending shapes in the message.
Plan make_plan(const Var& q, const Var& k, const Var& v, const Var& bias, const Tensor& key_mask,
               const AttentionOptions& options, const char* op) {
  MEGA_CHECK(q.defined() && k.defined() && v.defined(), "[", op, "] q, k and v are required");
  MEGA_CHECK(q.dim() == 3, "[", op, "] q must be (B, L, Z), got ", shape_str(q.shape()));
  MEGA_CHECK(k.dim() == 3, "[", op, "] k must be (B, S, Z), got ", shape_str(k.shape()));
  MEGA_CHECK(v.dim() == 3, "[", op, "] v must be (B, S, I), got ", shape_str(v.shape()));
  MEGA_CHECK(q.dtype() == k.dtype() && q.dtype() == v.dtype(), "[", op,
             "] q, k, v dtypes differ: ", dtype_name(q.dtype()), ", ", dtype_name(k.dtype()), ", ",
             dtype_name(v.dtype()));
  Plan p{};
  p.batch = q.size(0), p.queries = q.size(1), p.keys = k.size(1), p.z = q.size(2), p.value_dim = v.size(2);
  MEGA_CHECK(k.size(0) == p.batch && k.size(2) == p.z, "[", op, "] k has shape ", shape_str(k.shape()), " but q is ",
             shape_str(q.shape()), ": expected (", p.batch, ", S, ", p.z, ")");
  MEGA_CHECK(v.size(0) == p.batch && v.size(1) == p.keys, "[", op, "] v has shape ", shape_str(v.shape()), " but k is ",
             shape_str(k.shape()), ": expected (", p.batch, ", ", p.keys, ", I)");
  MEGA_CHECK(p.queries > 0 && p.keys > 0 && p.z > 0, "[", op, "] empty q or k: ", shape_str(q.shape()), ", ",
             shape_str(k.shape()));
  int64_t c = options.chunk_size;
  MEGA_CHECK(c >= 0, "[", op, "] chunk_size must be >= 0, got ", c);
  if (c > 0) {
    MEGA_CHECK(p.queries == p.keys, "[", op, "] chunking needs as many queries as keys, got L = ", p.queries,
               ", S = ", p.keys);
    MEGA_CHECK(p.queries % c == 0, "[", op, "] chunking needs L a multiple of chunk_size ", c, ", got L = ", p.queries,
               " (pad to the next multiple)");
    p.problems = p.batch * (p.queries / c), p.lq = c, p.sk = c;
  } else {
    p.problems = p.batch, p.lq = p.queries, p.sk = p.keys;
  }
  p.offset = p.sk - p.lq;
  if (bias.defined()) {
    MEGA_CHECK(bias.shape() == (Shape{p.lq, p.sk}), "[", op, "] bias has shape ", shape_str(bias.shape()),
               ", expected ", shape_str(Shape{p.lq, p.sk}), c > 0 ? " (chunk, chunk)" : " (L, S)");
    MEGA_CHECK(bias.dtype() == q.dtype(), "[", op, "] bias dtype ", dtype_name(bias.dtype()), " differs from q's ",
               dtype_name(q.dtype()));
  }
  if (key_mask.defined())
    MEGA_CHECK(key_mask.shape() == (Shape{p.batch, p.keys}), "[", op, "] key_mask has shape ",
               shape_str(key_mask.shape()), ", expected (B, S) = ", shape_str(Shape{p.batch, p.keys}));
  p.function = options.function;
  p.causal = options.causal;
  MEGA_CHECK(options.dropout >= 0 && options.dropout < 1, "[", op, "] dropout must be in [0, 1), got ",
             options.dropout);
  p.dropout = options.training ? options.dropout : 0;
  MEGA_CHECK(p.dropout == 0 || options.rng != nullptr, "[", op, "] dropout ", p.dropout,
             " while training needs options.rng");
  return p;
}

// Which keys each problem may attend before the causal mask, and the element-attention divisor.
struct KeyMasks {
  std::vector<uint8_t> visible;  // (P, Sk)
  std::vector<int64_t> tokens;   // (P): non-padding keys, at least 1 (laplace / relu2 divisor)
  std::vector<uint8_t> open;     // (P): every key visible, so non-causal rows take the unmasked loops
};

// Softmax: padding is hidden unless every key of the chunk is padding (then none is). Laplace / relu2:
// padding is always multiplied out; a chunk of padding has zero weights.
KeyMasks key_masks(const Tensor& key_mask, const Plan& plan) {
  KeyMasks m;
  m.visible.assign(static_cast<size_t>(plan.problems * plan.sk), 1);
  m.tokens.assign(static_cast<size_t>(plan.problems), plan.sk);
  m.open.assign(static_cast<size_t>(plan.problems), 1);
  if (!key_mask.defined()) return m;
  Tensor mask = key_mask.dtype() == DType::F64 ? key_mask : key_mask.to(DType::F64);
  const double* mk = mask.data<double>();  // (B, S) read as (P, Sk): chunks are contiguous in S
  for (int64_t p = 0; p < plan.problems; ++p) {
    uint8_t* visible = m.visible.data() + p * plan.sk;
    int64_t tokens = 0;
    for (int64_t j = 0; j < plan.sk; ++j) tokens += (visible[j] = mk[p * plan.sk + j] != 0);
    if (tokens == 0 && plan.function == AttentionFunction::Softmax) std::fill(visible, visible + plan.sk, 1);
    m.tokens[p] = std::max<int64_t>(tokens, 1);
    m.open[p] = std::all_of(visible, visible + plan.sk, [](uint8_t b) { return b != 0; });
  }
  return m;
}

// Keys j < end(i) pass the causal mask: query i sits at key position offset + i.
int64_t visible_end(const Plan& plan, int64_t i) {
  return plan.causal ? std::clamp<int64_t>(plan.offset + i + 1, 0, plan.sk) : plan.sk;
}

// The factor multiplying qk^T of row (p, i): Z^-1/2 for softmax; 1/n for laplace / relu2 with n the
// chunk's tokens, or the row's causal count offset + i + 1 when causal.
template <class T>
T row_scale(const Plan& plan, const KeyMasks& masks, int64_t p, int64_t i) {
  if (plan.function == AttentionFunction::Softmax) return T(1 / std::sqrt(static_cast<double>(plan.z)));
  if (plan.causal) return T(1) / static_cast<T>(std::max<int64_t>(plan.offset + i + 1, 1));
  return T(1) / static_cast<T>(masks.tokens[p]);
}

// Dropout on the weights: weight f of the (P, Lq, Sk) layout is kept (times 1/(1-p)) when
// rng.uniform(stream, f / 4, f % 4) >= p. Counter-based, so backward regenerates the mask instead of
// saving it.
struct DropoutMask {
  Rng rng;
  uint64_t stream = 0;
  double p = 0;
  // out[j] = in[j] times the factor of weight flat + j (in place allowed): one Philox block per four weights, each word
  // turned into a uniform exactly as Rng::uniform does (the reference draws through Rng::uniform).
  template <class T>
  void apply(int64_t flat, int64_t n, const T* in, T* out) const {
    T keep = T(1 / (1 - p));
    std::array<uint32_t, 4> block{};
    int64_t current = -1;
    for (int64_t j = 0; j < n; ++j) {
      int64_t f = flat + j;
      if (f / 4 != current) current = f / 4, block = rng.bits(stream, static_cast<uint64_t>(current));
      float u = static_cast<float>(block[f % 4] >> 8) * (1.0f / 16777216.0f);
      out[j] = u >= p ? in[j] * keep : T(0);
    }
  }
};

template <class T>
T element_value(AttentionFunction f, T x) {
  return f == AttentionFunction::Laplace ? attention_scalar::laplace(x) : attention_scalar::relu2(x);
}
template <class T>
T element_derivative(AttentionFunction f, T x) {
  return f == AttentionFunction::Laplace ? attention_scalar::laplace_derivative(x)
                                         : attention_scalar::relu2_derivative(x);
}


// Row (p, i) of the forward. In: row = qk^T. Out: row = saved state (softmax: the weights w; laplace /
// relu2: the pre-activation x), weights_row = w (may alias row), mixed_row = w after dropout.
template <class T>
void forward_row(const Plan& plan, const KeyMasks& masks, const DropoutMask* dropout, const T* bias_row, int64_t p,
                 int64_t i, T* row, T* weights_row, T* mixed_row) {
  const uint8_t* visible = masks.visible.data() + p * plan.sk;
  int64_t end = visible_end(plan, i), n = plan.sk;
  T scale = row_scale<T>(plan, masks, p, i);
  if (plan.function == AttentionFunction::Softmax && masks.open[p] && end == n) {
    // No mask on this row: straight loops the compiler vectorises.
    if (bias_row) {
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) row[j] = row[j] * scale + bias_row[j];
    } else {
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) row[j] *= scale;
    }
    T top = row[0];
#pragma omp simd reduction(max : top)
    for (int64_t j = 0; j < n; ++j) top = std::max(top, row[j]);
    T total = 0;
#pragma omp simd reduction(+ : total)
    for (int64_t j = 0; j < n; ++j) total += (row[j] = exp_of(row[j] - top));
    T inverse = 1 / total;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) row[j] *= inverse;
    if (weights_row != row) std::copy(row, row + n, weights_row);
  } else if (plan.function == AttentionFunction::Softmax) {
    // x_j = qk_j Z^-1/2 + bias_j over visible keys; w = exp(x - max) / sum; a row with no key is zero.
    T top = -std::numeric_limits<T>::infinity();
    int64_t seen = 0;
    for (int64_t j = 0; j < end; ++j)
      if (visible[j]) {
        row[j] = row[j] * scale + (bias_row ? bias_row[j] : T(0));
        top = std::max(top, row[j]);
        ++seen;
      }
    T total = 0;
    for (int64_t j = 0; j < n; ++j) {
      row[j] = seen && j < end && visible[j] ? exp_of(row[j] - top) : T(0);
      total += row[j];
    }
    T inverse = seen ? 1 / total : T(0);
    for (int64_t j = 0; j < end; ++j) row[j] *= inverse;
    if (weights_row != row) std::copy(row, row + n, weights_row);
  } else {
    // x_j = qk_j / n + bias_j; w_j = f(x_j) times the key and causal masks.
    for (int64_t j = 0; j < n; ++j) {
      row[j] = row[j] * scale + (bias_row ? bias_row[j] : T(0));
      weights_row[j] = j < end && visible[j] ? element_value(plan.function, row[j]) : T(0);
    }
  }
  if (mixed_row != weights_row) dropout->apply((p * plan.lq + i) * n, n, weights_row, mixed_row);
}

// Row (p, i) of the backward, in place: in grad = dL/d mixed (= g v^T), out grad = dL/dx (x the scores
// after scale and bias). Softmax: dx = w (dw - sum_j dw_j w_j); laplace / relu2: dx = dw f'(x) mask;
// with dw = dL/d mixed times the dropout factor.
template <class T>
void backward_row(const Plan& plan, const KeyMasks& masks, const DropoutMask* dropout, const T* saved_row, int64_t p,
                  int64_t i, T* grad) {
  const uint8_t* visible = masks.visible.data() + p * plan.sk;
  int64_t end = visible_end(plan, i), n = plan.sk, flat = (p * plan.lq + i) * n;
  if (dropout) dropout->apply(flat, n, grad, grad);
  if (plan.function == AttentionFunction::Softmax) {
    T dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < n; ++j) dot += grad[j] * saved_row[j];
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) grad[j] = saved_row[j] * (grad[j] - dot);
  } else {
    for (int64_t j = 0; j < n; ++j)
      grad[j] = j < end && visible[j] ? grad[j] * element_derivative(plan.function, saved_row[j]) : T(0);
  }
}

// The weights after dropout of problems [p0, p0 + n), rebuilt from their saved state into `out`
// (n, Lq, Sk) for dL/dv = mixed^T g.
template <class T>
void rebuild_mixed(const Plan& plan, const KeyMasks& masks, const DropoutMask* dropout, const T* saved, int64_t p0,
                   int64_t n, T* out) {
  parallel_for(n * plan.lq, std::max<int64_t>(1, 4096 / plan.sk), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      int64_t p = p0 + r / plan.lq, i = r % plan.lq, end = visible_end(plan, i);
      const uint8_t* visible = masks.visible.data() + p * plan.sk;
      const T* saved_row = saved + r * plan.sk;
      T* row = out + r * plan.sk;
      for (int64_t j = 0; j < plan.sk; ++j)
        row[j] = plan.function == AttentionFunction::Softmax ? saved_row[j]
                 : j < end && visible[j]                     ? element_value(plan.function, saved_row[j])
                                                             : T(0);
      if (dropout) dropout->apply((p * plan.lq + i) * plan.sk, plan.sk, row, row);
    }
  });
}

// Problems per block: about 1M scores (4 MB in F32). Blocks bound the backward's scratch and keep the
// working set of one block's products and row pass in cache; they are not smaller because each block
// costs a few parallel regions, and on a shared machine each region's barrier can cost a time slice.
int64_t problem_block(const Plan& plan) {
  return std::clamp<int64_t>((int64_t{1} << 20) / (plan.lq * plan.sk), 1, plan.problems);
}

}  // namespace

// Forward, one block of problems at a time (problem_block): scores = q k^T (batched matmul), one pass
// over rows for scale, bias, masks, the function and dropout, then out = mixed v. Saves the scores
// buffer (P, Lq, Sk) transformed in place (softmax: the weights w; laplace / relu2: the pre-activation
// x), the per-key masks and the dropout stream; q, k, v are the inputs' own tensors. Recomputed in
// backward: the causal mask, row scales, dropout factors, and for laplace / relu2 the weights f(x).
Var attention(const Var& q, const Var& k, const Var& v, const Var& bias, const Tensor& key_mask,
              const AttentionOptions& options, Tensor* weights) {
  OpScope scope("attention");
  const Plan plan = make_plan(q, k, v, bias, key_mask, options, "attention");
  auto masks = std::make_shared<const KeyMasks>(key_masks(key_mask, plan));
  std::shared_ptr<const DropoutMask> dropout;
  if (plan.dropout > 0)
    dropout = std::make_shared<const DropoutMask>(DropoutMask{*options.rng, options.rng->next_stream(), plan.dropout});

  DType dtype = q.dtype();
  Tensor q3 = q.value().reshape({plan.problems, plan.lq, plan.z});
  Tensor k3 = k.value().reshape({plan.problems, plan.sk, plan.z});
  Tensor v3 = v.value().reshape({plan.problems, plan.sk, plan.value_dim});
  bool softmax = plan.function == AttentionFunction::Softmax;
  const int64_t block = problem_block(plan);
  Tensor saved = Tensor::empty({plan.problems, plan.lq, plan.sk}, dtype);
  Tensor out = Tensor::empty({plan.problems, plan.lq, plan.value_dim}, dtype);
  Tensor all_weights = weights ? Tensor::empty(saved.shape(), dtype) : Tensor();
  // Per-block scratch: laplace / relu2 weights (softmax keeps them in `saved`), weights after dropout.
  Tensor scratch_w = softmax ? Tensor() : Tensor::empty({block, plan.lq, plan.sk}, dtype);
  Tensor scratch_mixed = dropout ? Tensor::empty({block, plan.lq, plan.sk}, dtype) : Tensor();
  Tensor bias_value = bias.defined() ? bias.value() : Tensor();
  for (int64_t p0 = 0; p0 < plan.problems; p0 += block) {
    int64_t n = std::min(block, plan.problems - p0);
    Tensor s = saved.narrow0(p0, p0 + n);
    matmul_into(q3.narrow0(p0, p0 + n), k3.narrow0(p0, p0 + n), s, false, true);
    Tensor w = softmax ? s : scratch_w.narrow0(0, n);
    Tensor mixed = dropout ? scratch_mixed.narrow0(0, n) : w;
    dispatch_floating(dtype, "attention", [&]<class T>() {
      T* sd = s.data<T>();
      T* wd = w.data<T>();
      T* md = mixed.data<T>();
      const T* b = bias_value.defined() ? bias_value.data<T>() : nullptr;
      parallel_for(n * plan.lq, std::max<int64_t>(1, 4096 / plan.sk), [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; ++r) {
          int64_t i = r % plan.lq, at = r * plan.sk;
          forward_row<T>(plan, *masks, dropout.get(), b ? b + i * plan.sk : nullptr, p0 + r / plan.lq, i, sd + at,
                         wd + at, md + at);
        }
      });
    });
    if (weights) all_weights.narrow0(p0, p0 + n).copy_from(w);
    Tensor o = out.narrow0(p0, p0 + n);
    matmul_into(mixed, v3.narrow0(p0, p0 + n), o, false, false);
  }
  if (weights)
    *weights = options.chunk_size > 0 ? all_weights.reshape({plan.batch, plan.problems / plan.batch, plan.lq, plan.sk})
                                      : all_weights.reshape({plan.batch, 1, plan.lq, plan.sk});

  bool need_q = q.requires_grad(), need_k = k.requires_grad(), need_v = v.requires_grad();
  bool need_bias = bias.requires_grad();
  std::vector<Var> inputs{q, k, v};
  if (bias.defined()) inputs.push_back(bias);
  size_t input_count = inputs.size();
  return record("attention", out.reshape({plan.batch, plan.queries, plan.value_dim}), inputs,
                [=](const Tensor& g_out) -> std::vector<Tensor> {
                  DType gtype = g_out.dtype();
                  Tensor g = g_out.reshape({plan.problems, plan.lq, plan.value_dim});
                  Tensor gq = need_q ? Tensor::empty({plan.problems, plan.lq, plan.z}, gtype) : Tensor();
                  Tensor gk = need_k ? Tensor::empty({plan.problems, plan.sk, plan.z}, gtype) : Tensor();
                  Tensor gv = need_v ? Tensor::empty({plan.problems, plan.sk, plan.value_dim}, gtype) : Tensor();
                  Tensor gb = need_bias ? Tensor::zeros({plan.lq, plan.sk}, gtype) : Tensor();
                  // Per block: dL/d mixed (= g v^T), turned in place into dL/dx, then dL/d(qk^T); and the rebuilt
                  // weights after dropout when they are not `saved` itself.
                  Tensor scratch_grad = Tensor::empty({block, plan.lq, plan.sk}, gtype);
                  bool rebuild = need_v && (!softmax || dropout);
                  Tensor scratch_mixed = rebuild ? Tensor::empty({block, plan.lq, plan.sk}, gtype) : Tensor();
                  for (int64_t p0 = 0; p0 < plan.problems; p0 += block) {
                    int64_t n = std::min(block, plan.problems - p0);
                    Tensor g_block = g.narrow0(p0, p0 + n), s = saved.narrow0(p0, p0 + n);
                    Tensor grad = scratch_grad.narrow0(0, n);
                    matmul_into(g_block, v3.narrow0(p0, p0 + n), grad, false, true);
                    dispatch_floating(gtype, "attention", [&]<class T>() {
                      if (need_v) {
                        Tensor mixed = rebuild ? scratch_mixed.narrow0(0, n) : s;
                        if (rebuild) rebuild_mixed<T>(plan, *masks, dropout.get(), s.data<T>(), p0, n, mixed.data<T>());
                        Tensor gv_block = gv.narrow0(p0, p0 + n);
                        matmul_into(mixed, g_block, gv_block, true, false);
                      }
                      // Rows (p, i) for one i belong to one task, so dL/dbias_i = sum_p dL/dx_{p,i} needs no reduction
                      // across threads; then dL/d(qk^T) = dL/dx * row scale.
                      T* gd = grad.data<T>();
                      const T* sd = s.data<T>();
                      T* gbd = need_bias ? gb.data<T>() : nullptr;
                      parallel_for(plan.lq, std::max<int64_t>(1, 4096 / (plan.sk * n)), [&](int64_t lo, int64_t hi) {
                        for (int64_t i = lo; i < hi; ++i)
                          for (int64_t p = 0; p < n; ++p) {
                            int64_t at = (p * plan.lq + i) * plan.sk;
                            backward_row<T>(plan, *masks, dropout.get(), sd + at, p0 + p, i, gd + at);
                            if (gbd)
                              for (int64_t j = 0; j < plan.sk; ++j) gbd[i * plan.sk + j] += gd[at + j];
                            T scale = row_scale<T>(plan, *masks, p0 + p, i);
                            for (int64_t j = 0; j < plan.sk; ++j) gd[at + j] *= scale;
                          }
                      });
                    });
                    if (need_q) {
                      Tensor gq_block = gq.narrow0(p0, p0 + n);
                      matmul_into(grad, k3.narrow0(p0, p0 + n), gq_block, false, false);
                    }
                    if (need_k) {
                      Tensor gk_block = gk.narrow0(p0, p0 + n);
                      matmul_into(grad, q3.narrow0(p0, p0 + n), gk_block, true, false);
                    }
                  }
                  std::vector<Tensor> grads(input_count);
                  if (need_q) grads[0] = gq.reshape({plan.batch, plan.queries, plan.z});
                  if (need_k) grads[1] = gk.reshape({plan.batch, plan.keys, plan.z});
                  if (need_v) grads[2] = gv.reshape({plan.batch, plan.keys, plan.value_dim});
                  if (need_bias) grads[3] = gb;
                  return grads;
                });
}

// ---------------------------------------------------------------------------------------------------
// The reference: the same definition from primitive ops, masks built element by element from the
// header's rules in sequence coordinates.

Var attention_reference(const Var& q, const Var& k, const Var& v, const Var& bias, const Tensor& key_mask,
                        const AttentionOptions& options, Tensor* weights) {
  const Plan plan = make_plan(q, k, v, bias, key_mask, options, "attention_reference");
  int64_t c = options.chunk_size, chunks = plan.problems / plan.batch;
  DType dtype = q.dtype();
  // hidden (P, Lq, Sk): 1 where the weight is forced to zero; divisor (P, Lq, 1) for laplace / relu2.
  Tensor hidden = Tensor::zeros({plan.problems, plan.lq, plan.sk}, DType::F64);
  Tensor divisor = Tensor::empty({plan.problems, plan.lq, 1}, DType::F64);
  for (int64_t b = 0; b < plan.batch; ++b)
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      int64_t p = b * chunks + chunk, first_key = c > 0 ? chunk * c : 0;
      auto padded = [&](int64_t j) { return key_mask.defined() && key_mask.at(b * plan.keys + first_key + j) == 0; };
      int64_t tokens = 0;
      for (int64_t j = 0; j < plan.sk; ++j) tokens += !padded(j);
      bool all_padding = tokens == 0;
      for (int64_t i = 0; i < plan.lq; ++i) {
        int64_t position = plan.sk - plan.lq + i;  // of query i among the chunk's keys
        for (int64_t j = 0; j < plan.sk; ++j) {
          bool masked_pad = padded(j) && !(all_padding && plan.function == AttentionFunction::Softmax);
          bool masked_causal = plan.causal && j > position;
          hidden.data<double>()[(p * plan.lq + i) * plan.sk + j] = masked_pad || masked_causal;
        }
        divisor.data<double>()[p * plan.lq + i] =
            static_cast<double>(std::max<int64_t>(plan.causal ? position + 1 : tokens, 1));
      }
    }
  Var q3 = reshape(q, {plan.problems, plan.lq, plan.z});
  Var k3 = reshape(k, {plan.problems, plan.sk, plan.z});
  Var v3 = reshape(v, {plan.problems, plan.sk, plan.value_dim});
  Var scores = matmul(q3, k3, false, true);
  Var w;
  if (plan.function == AttentionFunction::Softmax) {
    Var x = scores * (1 / std::sqrt(static_cast<double>(plan.z)));
    if (bias.defined()) x = x + bias;
    w = softmax(masked_fill(x, hidden, -std::numeric_limits<double>::infinity()));
  } else {
    Var x = scores / Var(divisor.to(dtype));
    if (bias.defined()) x = x + bias;
    Var f = plan.function == AttentionFunction::Laplace ? laplace(x) : relu2(x);
    w = masked_fill(f, hidden, 0);
  }
  Var mixed = w;
  if (plan.dropout > 0) {
    Rng rng = *options.rng;
    uint64_t stream = options.rng->next_stream();
    Tensor keep = Tensor::empty(w.shape(), DType::F64);
    for (int64_t f = 0; f < keep.numel(); ++f)
      keep.data<double>()[f] = rng.uniform(stream, f / 4, static_cast<int>(f % 4)) >= plan.dropout ? 1 : 0;
    mixed = w * Var(keep.to(dtype)) * (1 / (1 - plan.dropout));
  }
  if (weights)
    *weights =
        w.value()
            .reshape(c > 0 ? Shape{plan.batch, chunks, plan.lq, plan.sk} : Shape{plan.batch, 1, plan.lq, plan.sk})
            .clone();
  return reshape(matmul(mixed, v3), {plan.batch, plan.queries, plan.value_dim});
}

}  // namespace mega
