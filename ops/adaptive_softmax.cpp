// Adaptive softmax loss and adaptive input embeddings, forward and hand-written backward side by side,
// and their slow references from primitives. Every product runs through matmul_into (oneDNN in F32, the
// plain kernel in F64). Per-row losses are summed in double in row order, so the result does not depend
// on the thread count.
//
// Shapes: N rows, n scored rows (target != ignore_index), H hidden, C = C0 + T head outputs; tail i has
// n_i scored rows (those whose target is in its band), d_i dims and band_i words. adaptive_input: ids
// (...) with n elements; band b has band_b rows of d_b dims and n_b of the ids.
#include "ops/adaptive_softmax.h"

#include <cmath>
#include <cstring>
#include <memory>
#include <string>

#include "autograd/profile.h"
#include "core/threading.h"
#include "ops/attention_fn.h"
#include "ops/elementwise.h"
#include "ops/embedding.h"
#include "ops/loss.h"
#include "ops/matmul.h"
#include "ops/shape.h"

namespace mega {
namespace {

std::string shape_of(const Var& v) { return v.defined() ? shape_str(v.shape()) : std::string("(undefined)"); }

void check_floating(const Var& v, DType dtype, const char* op, const std::string& name) {
  MEGA_CHECK(v.dtype() == DType::F32 || v.dtype() == DType::F64, "[", op, "] ", name, " must be F32 or F64, got ",
             dtype_name(v.dtype()));
  MEGA_CHECK(v.dtype() == dtype, "[", op, "] ", name, " is ", dtype_name(v.dtype()), " but hidden is ",
             dtype_name(dtype));
}

// The bands read off the softmax weights: the head's C0 words, then tail i's band at start[i].
struct Layout {
  int64_t H = 0, C0 = 0, T = 0, V = 0;
  std::vector<int64_t> start, band, dim;  // per tail
};

Layout check_weights(const AdaptiveSoftmaxWeights& w, int64_t H, DType dtype, const char* op) {
  Layout l;
  l.H = H;
  l.T = static_cast<int64_t>(w.tails.size());
  MEGA_CHECK(l.T >= 1, "[", op, "] needs at least one tail (a softmax without tails is cross_entropy)");
  MEGA_CHECK(w.head_words.defined() && w.head_words.dim() == 2 && w.head_words.size(1) == H &&
                 w.head_words.size(0) >= 1,
             "[", op, "] head_words must be (C0, H) with H = ", H, ", got ", shape_of(w.head_words));
  MEGA_CHECK(w.head_clusters.defined() && w.head_clusters.shape() == (Shape{l.T, H}), "[", op,
             "] head_clusters must be (T, H) = (", l.T, ", ", H, "), one row per tail, got ",
             shape_of(w.head_clusters));
  check_floating(w.head_words, dtype, op, "head_words");
  check_floating(w.head_clusters, dtype, op, "head_clusters");
  l.C0 = w.head_words.size(0);
  int64_t start = l.C0;
  for (int64_t i = 0; i < l.T; ++i) {
    const AdaptiveSoftmaxTail& tail = w.tails[i];
    const std::string name = "tail " + std::to_string(i);
    MEGA_CHECK(tail.projection.defined() && tail.projection.dim() == 2, "[", op, "] ", name,
               " projection must be 2-D, got ", shape_of(tail.projection));
    const int64_t d = tail.projection.size(tail.projection_transposed ? 1 : 0);
    const int64_t h = tail.projection.size(tail.projection_transposed ? 0 : 1);
    MEGA_CHECK(h == H && d >= 1, "[", op, "] ", name, " projection has shape ", shape_of(tail.projection),
               tail.projection_transposed ? ", expected (H, d) with H = " : ", expected (d, H) with H = ", H);
    MEGA_CHECK(tail.output.defined() && tail.output.dim() == 2 && tail.output.size(1) == d &&
                   tail.output.size(0) >= 1,
               "[", op, "] ", name, " output must be (band, d) with d = ", d, " (its projection's), got ",
               shape_of(tail.output));
    check_floating(tail.projection, dtype, op, name + " projection");
    check_floating(tail.output, dtype, op, name + " output");
    l.start.push_back(start);
    l.band.push_back(tail.output.size(0));
    l.dim.push_back(d);
    start += tail.output.size(0);
  }
  l.V = start;
  return l;
}

int64_t check_hidden(const Tensor& hidden, const char* op) {
  MEGA_CHECK(hidden.defined() && hidden.dim() == 2, "[", op, "] hidden must be (N, H), got ",
             hidden.defined() ? shape_str(hidden.shape()) : std::string("(undefined)"));
  MEGA_CHECK(hidden.dtype() == DType::F32 || hidden.dtype() == DType::F64, "[", op,
             "] hidden must be F32 or F64, got ", dtype_name(hidden.dtype()));
  return hidden.size(1);
}

// Which scored row goes where (fairseq's adapt_target): the head target is the word itself or the
// cluster C0 + i of its tail; tail i sees its members with the target's offset in the band.
struct Routing {
  std::vector<int64_t> rows;         // (n) row of hidden of each scored row
  std::vector<int64_t> head_target;  // (n) in [0, C)
  std::vector<std::vector<int64_t>> members;  // per tail: (n_i) indices into the scored rows
  std::vector<std::vector<int64_t>> local;    // per tail: (n_i) target - start_i
};

Routing route(const Tensor& targets, int64_t N, const Layout& l, int64_t ignore_index, const char* op) {
  MEGA_CHECK(targets.defined() && targets.dtype() == DType::I64, "[", op, "] targets must be I64, got ",
             targets.defined() ? dtype_name(targets.dtype()) : "undefined");
  MEGA_CHECK(targets.shape() == Shape{N}, "[", op, "] targets have shape ", shape_str(targets.shape()),
             " but hidden has ", N, " rows (expected (", N, "))");
  Routing r;
  r.members.resize(static_cast<size_t>(l.T));
  r.local.resize(static_cast<size_t>(l.T));
  const int64_t* t = targets.data<int64_t>();
  for (int64_t row = 0; row < N; ++row) {
    if (t[row] == ignore_index) continue;
    MEGA_CHECK(t[row] >= 0 && t[row] < l.V, "[", op, "] target ", t[row], " (row ", row,
               ") is out of range for a vocabulary of V = ", l.V, " (ignore_index is ", ignore_index, ")");
    const int64_t scored = static_cast<int64_t>(r.rows.size());
    r.rows.push_back(row);
    if (t[row] < l.C0) {
      r.head_target.push_back(t[row]);
      continue;
    }
    int64_t i = l.T - 1;
    while (t[row] < l.start[i]) --i;
    r.head_target.push_back(l.C0 + i);
    r.members[i].push_back(scored);
    r.local[i].push_back(t[row] - l.start[i]);
  }
  return r;
}

// Rows `index` of x (R, W) -> (index.size(), W).
Tensor gather_rows(const Tensor& x, const std::vector<int64_t>& index) {
  const int64_t W = x.size(1), count = static_cast<int64_t>(index.size());
  Tensor out = Tensor::empty({count, W}, x.dtype());
  const size_t row_bytes = static_cast<size_t>(W) * dtype_size(x.dtype());
  const char* src = static_cast<const char*>(x.raw());
  char* dst = static_cast<char*>(out.raw());
  parallel_for(count, std::max<int64_t>(1, 4096 / std::max<int64_t>(W, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) std::memcpy(dst + r * row_bytes, src + index[r] * row_bytes, row_bytes);
  });
  return out;
}

// y[index[r]] += x[r] for x (R, W), y (*, W). Serial, so repeated indices add in a fixed order.
void scatter_add_rows(const Tensor& x, const std::vector<int64_t>& index, Tensor& y, int64_t skip_index = -1) {
  const int64_t W = x.size(1);
  dispatch_floating(x.dtype(), "scatter_add_rows", [&]<class T>() {
    const T* src = x.data<T>();
    T* dst = y.data<T>();
    for (size_t r = 0; r < index.size(); ++r) {
      if (index[r] == skip_index) continue;
      T* row = dst + index[r] * W;
      const T* from = src + static_cast<int64_t>(r) * W;
      for (int64_t j = 0; j < W; ++j) row[j] += from[j];
    }
  });
}

// op(a) @ op(b) into a fresh tensor.
Tensor product(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  Tensor c = Tensor::empty({a.size(trans_a ? 1 : 0), b.size(trans_b ? 0 : 1)}, a.dtype());
  matmul_into(a, b, c, trans_a, trans_b);
  return c;
}

int64_t row_grain(int64_t width) { return std::max<int64_t>(1, (int64_t{1} << 14) / std::max<int64_t>(width, 1)); }

// Each row of logits (R, K) becomes its softmax; nll[r] += lse_r - logits[r, target[r]].
void softmax_rows_adding_nll(Tensor& logits, const std::vector<int64_t>& target, const std::vector<int64_t>& nll_row,
                             std::vector<double>& nll) {
  const int64_t R = logits.size(0), K = logits.size(1);
  dispatch_floating(logits.dtype(), "adaptive_softmax", [&]<class T>() {
    T* z = logits.data<T>();
    parallel_for(R, row_grain(K), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        T* row = z + r * K;
        double m = row[0];
        for (int64_t c = 1; c < K; ++c) m = std::max(m, static_cast<double>(row[c]));
        const double target_logit = row[target[r]];
        double s = 0;
        // exp in T (F32's expf is about twice as fast as double's); the sum stays in double.
        for (int64_t c = 0; c < K; ++c) s += (row[c] = std::exp(row[c] - static_cast<T>(m)));
        nll[nll_row[r]] += m + std::log(s) - target_logit;  // rows of one call have distinct nll_row
        const T inverse = static_cast<T>(1 / s);
        for (int64_t c = 0; c < K; ++c) row[c] *= inverse;
      }
    });
  });
}

// Each row of logits (R, K) becomes its log-softmax plus prior[r * prior_stride] (0 without prior).
void log_softmax_rows(Tensor& logits, const Tensor& prior, int64_t prior_stride, int64_t prior_offset) {
  const int64_t R = logits.size(0), K = logits.size(1);
  dispatch_floating(logits.dtype(), "adaptive_softmax", [&]<class T>() {
    T* z = logits.data<T>();
    const T* p = prior.defined() ? prior.data<T>() : nullptr;
    parallel_for(R, row_grain(K), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        T* row = z + r * K;
        double m = row[0];
        for (int64_t c = 1; c < K; ++c) m = std::max(m, static_cast<double>(row[c]));
        double s = 0;
        for (int64_t c = 0; c < K; ++c) s += std::exp(row[c] - m);
        const double shift = m + std::log(s) - (p ? static_cast<double>(p[r * prior_stride + prior_offset]) : 0.0);
        for (int64_t c = 0; c < K; ++c) row[c] = static_cast<T>(row[c] - shift);
      }
    });
  });
}

// A Bool keep-mask: element j kept when rng.uniform(stream, j) >= p (the scheme of ops/dropout.cpp).
Tensor draw_keep_mask(const Shape& shape, double p, uint64_t stream, const Rng& rng) {
  Tensor keep = Tensor::empty(shape, DType::Bool);
  bool* k = keep.data<bool>();
  parallel_for(keep.numel(), 1 << 12, [&](int64_t lo, int64_t hi) {
    for (int64_t j = lo; j < hi; ++j) k[j] = rng.uniform(stream, static_cast<uint64_t>(j)) >= p;
  });
  return keep;
}

// x *= keep * scale elementwise, in place.
void apply_keep_mask(Tensor& x, const Tensor& keep, double scale) {
  const bool* k = keep.data<bool>();
  dispatch_floating(x.dtype(), "adaptive_softmax", [&]<class T>() {
    T* v = x.data<T>();
    const T s = static_cast<T>(scale);
    parallel_for(x.numel(), 1 << 14, [&](int64_t lo, int64_t hi) {
      for (int64_t j = lo; j < hi; ++j) v[j] = k[j] ? v[j] * s : T(0);
    });
  });
}

// (C, H): the head's word rows, then its cluster rows.
Tensor head_weight(const AdaptiveSoftmaxWeights& w) {
  const Tensor& words = w.head_words.value();
  const Tensor& clusters = w.head_clusters.value();
  Tensor both = Tensor::empty({words.size(0) + clusters.size(0), words.size(1)}, words.dtype());
  std::memcpy(both.raw(), words.raw(), words.nbytes());
  std::memcpy(static_cast<char*>(both.raw()) + words.nbytes(), clusters.raw(), clusters.nbytes());
  return both;
}

// A tail's projection of rows x (R, H) -> (R, d): x @ P^T for P (d, H), x @ P for the tied P (H, d).
Tensor project(const Tensor& x, const AdaptiveSoftmaxTail& tail) {
  return product(x, tail.projection.value(), false, !tail.projection_transposed);
}

// What the loss's backward needs. Saved: the scored rows of hidden, the head's softmax, and per tail its
// dropped projection and its softmax (and the keep-mask); each tail's input rows are re-gathered.
struct LossState {
  Routing routing;
  Tensor head_weight;  // (C, H)
  Tensor hidden;       // (n, H) the scored rows
  Tensor head;         // (n, C) softmax of the head logits
  std::vector<Tensor> projected;  // per tail (n_i, d_i), after dropout
  std::vector<Tensor> probs;      // per tail (n_i, band_i) softmax of the tail logits
  std::vector<Tensor> keep;       // per tail Bool (n_i, d_i), undefined without dropout
  double nll_sum = 0;
};

// The forward of Eq. 5 on the scored rows: -log p(w) = (lse_head - z_head[c(w)]) + [w in tail i]
// (lse_i - z_i[w - start_i]). `streams` holds one rng stream per tail when dropout is active.
void forward_loss(LossState& s, const Tensor& hidden, const AdaptiveSoftmaxWeights& w, const Layout& l,
                  double p, const Rng* rng, const std::vector<uint64_t>& streams) {
  const Routing& r = s.routing;
  const int64_t n = static_cast<int64_t>(r.rows.size());
  s.projected.resize(static_cast<size_t>(l.T));
  s.probs.resize(static_cast<size_t>(l.T));
  s.keep.resize(static_cast<size_t>(l.T));
  if (n == 0) return;
  std::vector<double> nll(static_cast<size_t>(n), 0.0);
  std::vector<int64_t> identity(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) identity[j] = j;
  s.head_weight = head_weight(w);
  s.hidden = gather_rows(hidden, r.rows);
  s.head = product(s.hidden, s.head_weight, false, true);
  softmax_rows_adding_nll(s.head, r.head_target, identity, nll);
  for (int64_t i = 0; i < l.T; ++i) {
    if (r.members[i].empty()) continue;
    Tensor a = project(gather_rows(s.hidden, r.members[i]), w.tails[i]);
    if (rng) {
      s.keep[i] = draw_keep_mask(a.shape(), p, streams[i], *rng);
      apply_keep_mask(a, s.keep[i], 1.0 / (1.0 - p));
    }
    s.probs[i] = product(a, w.tails[i].output.value(), false, true);
    softmax_rows_adding_nll(s.probs[i], r.local[i], r.members[i], nll);
    s.projected[i] = std::move(a);
  }
  for (double v : nll) s.nll_sum += v;
}

// probs (R, K) -> scale * (probs - onehot(target)), in place: the gradient of scale * NLL w.r.t. logits.
void subtract_onehot_and_scale(Tensor& probs, const std::vector<int64_t>& target, double scale) {
  const int64_t R = probs.size(0), K = probs.size(1);
  dispatch_floating(probs.dtype(), "adaptive_softmax", [&]<class T>() {
    T* q = probs.data<T>();
    parallel_for(R, row_grain(K), [&](int64_t lo, int64_t hi) {
      for (int64_t row = lo; row < hi; ++row) {
        T* x = q + row * K;
        x[target[row]] -= T(1);
        for (int64_t c = 0; c < K; ++c) x[c] = static_cast<T>(x[c] * scale);
      }
    });
  });
}

}  // namespace

// Backward, with s = g / n over the scored rows (fairseq's AdaptiveLoss, mean over tokens):
//   dZ_head = s (softmax(Z_head) - onehot(c(w)))            (n, C)
//   d[words; clusters] = dZ_head^T X,   dX += dZ_head [words; clusters]
// and for tail i, with A = dropout(X_i op(P)) and Y = A E^T:
//   dY = s (softmax(Y) - onehot(w - start_i))               (n_i, band_i)
//   dE = dY^T A,   dA = (dY E) * keep / (1 - p)
//   dP = dA^T X_i  (P (d, H)),   dP = X_i^T dA  (tied P (H, d));   dX_i += dA op(P)^T
// Rows of hidden with an ignored target get zero gradient.
Var adaptive_softmax_loss(const Var& hidden, const AdaptiveSoftmaxWeights& weights, const Tensor& targets,
                          int64_t ignore_index, double tail_dropout, bool training, Rng& rng) {
  OpScope scope("adaptive_softmax_loss");
  const char* op = "adaptive_softmax_loss";
  MEGA_CHECK(hidden.defined(), "[", op, "] hidden is undefined");
  const int64_t H = check_hidden(hidden.value(), op), N = hidden.size(0);
  const Layout l = check_weights(weights, H, hidden.dtype(), op);
  MEGA_CHECK(tail_dropout >= 0 && tail_dropout < 1, "[", op, "] tail_dropout must be in [0, 1), got ", tail_dropout);
  auto state = std::make_shared<LossState>();
  state->routing = route(targets, N, l, ignore_index, op);
  const bool dropping = training && tail_dropout > 0;
  std::vector<uint64_t> streams;
  if (dropping)
    for (int64_t i = 0; i < l.T; ++i) streams.push_back(rng.next_stream());
  forward_loss(*state, hidden.value(), weights, l, tail_dropout, dropping ? &rng : nullptr, streams);
  const int64_t n = static_cast<int64_t>(state->routing.rows.size());
  Tensor out = Tensor::scalar(n > 0 ? state->nll_sum / static_cast<double>(n) : 0.0, hidden.dtype());

  std::vector<Var> inputs{hidden, weights.head_words, weights.head_clusters};
  std::vector<AdaptiveSoftmaxTail> tails = weights.tails;
  for (const AdaptiveSoftmaxTail& tail : tails) {
    inputs.push_back(tail.projection);
    inputs.push_back(tail.output);
  }
  std::vector<bool> needs;
  for (const Var& v : inputs) needs.push_back(v.requires_grad());
  const double keep_scale = dropping ? 1.0 / (1.0 - tail_dropout) : 1.0;
  return record(op, out, inputs, [state, tails, l, N, n, needs, keep_scale](const Tensor& g) -> std::vector<Tensor> {
    LossState& s = *state;
    const Routing& r = s.routing;
    const DType dtype = g.dtype();
    std::vector<Tensor> grads;
    grads.push_back(needs[0] ? Tensor::zeros({N, l.H}, dtype) : Tensor());
    Tensor d_head = Tensor::zeros({l.C0 + l.T, l.H}, dtype);
    grads.push_back(d_head.narrow0(0, l.C0));
    grads.push_back(d_head.narrow0(l.C0, l.C0 + l.T));
    for (int64_t i = 0; i < l.T; ++i) {
      grads.push_back(Tensor::zeros(tails[i].projection.shape(), dtype));
      grads.push_back(Tensor::zeros(tails[i].output.shape(), dtype));
    }
    if (n == 0) return grads;
    const double scale = g.item() / static_cast<double>(n);
    subtract_onehot_and_scale(s.head, r.head_target, scale);
    if (needs[1] || needs[2]) matmul_into(s.head, s.hidden, d_head, true, false);
    Tensor d_scored = needs[0] ? product(s.head, s.head_weight, false, false) : Tensor();  // (n, H)
    s.head = Tensor();
    for (int64_t i = 0; i < l.T; ++i) {
      if (r.members[i].empty()) continue;
      const AdaptiveSoftmaxTail& tail = tails[i];
      Tensor& dy = s.probs[i];
      subtract_onehot_and_scale(dy, r.local[i], scale);
      if (needs[4 + 2 * i]) matmul_into(dy, s.projected[i], grads[4 + 2 * i], true, false);
      if (!needs[0] && !needs[3 + 2 * i]) continue;
      Tensor da = product(dy, tail.output.value(), false, false);  // (n_i, d_i)
      if (s.keep[i].defined()) apply_keep_mask(da, s.keep[i], keep_scale);
      const Tensor& P = tail.projection.value();
      if (needs[3 + 2 * i]) {
        Tensor x = gather_rows(s.hidden, r.members[i]);
        if (tail.projection_transposed) matmul_into(x, da, grads[3 + 2 * i], true, false);
        else matmul_into(da, x, grads[3 + 2 * i], true, false);
      }
      if (needs[0]) scatter_add_rows(product(da, P, false, tail.projection_transposed), r.members[i], d_scored);
    }
    if (needs[0]) {
      // Scored rows are distinct rows of hidden: a plain copy back to their places.
      const size_t row_bytes = static_cast<size_t>(l.H) * dtype_size(dtype);
      for (int64_t j = 0; j < n; ++j)
        std::memcpy(static_cast<char*>(grads[0].raw()) + r.rows[j] * row_bytes,
                    static_cast<const char*>(d_scored.raw()) + j * row_bytes, row_bytes);
    }
    return grads;
  });
}

Var adaptive_softmax_loss_reference(const Var& hidden, const AdaptiveSoftmaxWeights& weights, const Tensor& targets,
                                    int64_t ignore_index) {
  const char* op = "adaptive_softmax_loss_reference";
  MEGA_CHECK(hidden.defined(), "[", op, "] hidden is undefined");
  const int64_t H = check_hidden(hidden.value(), op);
  const Layout l = check_weights(weights, H, hidden.dtype(), op);
  Var head = log_softmax(linear(hidden, concat({weights.head_words, weights.head_clusters}, 0)));  // (N, C)
  std::vector<Var> pieces{narrow(head, 1, 0, l.C0)};
  for (int64_t i = 0; i < l.T; ++i) {
    const AdaptiveSoftmaxTail& tail = weights.tails[i];
    Var projected = tail.projection_transposed ? matmul(hidden, tail.projection) : linear(hidden, tail.projection);
    pieces.push_back(add(log_softmax(linear(projected, tail.output)), narrow(head, 1, l.C0 + i, 1)));
  }
  // cross_entropy normalises its logits again, which leaves log-probabilities unchanged (their exp sums
  // to 1, and so does its derivative's correction), so this is exactly the mean NLL of Eq. 5.
  return cross_entropy(concat(pieces, 1), targets, ignore_index);
}

AdaptiveNll adaptive_softmax_nll(const Tensor& hidden, const AdaptiveSoftmaxWeights& weights, const Tensor& targets,
                                 int64_t ignore_index) {
  const char* op = "adaptive_softmax_nll";
  const int64_t H = check_hidden(hidden, op);
  const Layout l = check_weights(weights, H, hidden.dtype(), op);
  LossState s;
  s.routing = route(targets, hidden.size(0), l, ignore_index, op);
  forward_loss(s, hidden, weights, l, 0, nullptr, {});
  return {s.nll_sum, static_cast<int64_t>(s.routing.rows.size())};
}

// log p(w) for every word: the head's log-softmax for its words; for tail i the tail's log-softmax plus
// the head's log-probability of cluster C0 + i (Eq. 5 in log space). Every row runs every tail.
Tensor adaptive_softmax_log_probs(const Tensor& hidden, const AdaptiveSoftmaxWeights& weights) {
  const char* op = "adaptive_softmax_log_probs";
  const int64_t H = check_hidden(hidden, op), N = hidden.size(0);
  const Layout l = check_weights(weights, H, hidden.dtype(), op);
  const int64_t C = l.C0 + l.T;
  Tensor out = Tensor::empty({N, l.V}, hidden.dtype());
  if (N == 0) return out;
  Tensor head = product(hidden, head_weight(weights), false, true);  // (N, C)
  log_softmax_rows(head, Tensor(), 0, 0);
  const size_t item = dtype_size(hidden.dtype());
  auto place = [&](const Tensor& block, int64_t column, int64_t width, int64_t block_stride) {
    for (int64_t row = 0; row < N; ++row)
      std::memcpy(static_cast<char*>(out.raw()) + (row * l.V + column) * item,
                  static_cast<const char*>(block.raw()) + row * block_stride * item, static_cast<size_t>(width) * item);
  };
  place(head, 0, l.C0, C);
  for (int64_t i = 0; i < l.T; ++i) {
    Tensor y = product(project(hidden, weights.tails[i]), weights.tails[i].output.value(), false, true);
    log_softmax_rows(y, head, C, l.C0 + i);
    place(y, l.start[i], l.band[i], l.band[i]);
  }
  return out;
}

// Forward, band by band: out[pos] = E_b[id - start_b] P_b^T for the positions pos holding band b's ids.
// Backward, with G_b the output gradient's rows at those positions and A_b the looked-up rows:
//   dP_b = G_b^T A_b,   dE_b[id - start_b] += (G_b P_b) row by row (not the padding row of band 0).
// Saved: the positions and local ids per band; A_b is looked up again from E_b.
Var adaptive_input(const Tensor& ids, const std::vector<Var>& embeddings, const std::vector<Var>& projections,
                   int64_t padding_idx) {
  OpScope scope("adaptive_input");
  const char* op = "adaptive_input";
  MEGA_CHECK(ids.defined() && ids.dtype() == DType::I64, "[", op, "] ids must be I64, got ",
             ids.defined() ? dtype_name(ids.dtype()) : "undefined");
  const int64_t bands = static_cast<int64_t>(embeddings.size());
  MEGA_CHECK(bands >= 1 && projections.size() == embeddings.size(), "[", op, "] needs one projection per band, got ",
             embeddings.size(), " embeddings and ", projections.size(), " projections");
  MEGA_CHECK(projections[0].defined() && projections[0].dim() == 2, "[", op,
             "] projection 0 must be (H, d_0), got ", shape_of(projections[0]));
  const int64_t H = projections[0].size(0);
  const DType dtype = projections[0].dtype();
  std::vector<int64_t> start;
  int64_t V = 0;
  for (int64_t b = 0; b < bands; ++b) {
    const Var& E = embeddings[b];
    const Var& P = projections[b];
    MEGA_CHECK(E.defined() && E.dim() == 2 && E.size(0) >= 1, "[", op, "] embedding ", b,
               " must be (band, d), got ", shape_of(E));
    MEGA_CHECK(P.defined() && P.shape() == (Shape{H, E.size(1)}), "[", op, "] projection ", b,
               " must be (H, d) = (", H, ", ", E.size(1), ") for embedding ", b, " of shape ", shape_of(E), ", got ",
               shape_of(P));
    check_floating(E, dtype, op, "embedding " + std::to_string(b));
    check_floating(P, dtype, op, "projection " + std::to_string(b));
    start.push_back(V);
    V += E.size(0);
  }
  MEGA_CHECK(padding_idx < embeddings[0].size(0), "[", op, "] padding_idx ", padding_idx,
             " is outside band 0 (ids [0, ", embeddings[0].size(0), "))");
  const int64_t n = ids.numel();
  const int64_t* id = ids.data<int64_t>();
  auto positions = std::make_shared<std::vector<std::vector<int64_t>>>(bands);
  auto local = std::make_shared<std::vector<std::vector<int64_t>>>(bands);
  for (int64_t j = 0; j < n; ++j) {
    MEGA_CHECK(id[j] >= 0 && id[j] < V, "[", op, "] id ", id[j], " (element ", j, " of ids ", shape_str(ids.shape()),
               ") is out of range for a vocabulary of V = ", V);
    int64_t b = bands - 1;
    while (id[j] < start[b]) --b;
    (*positions)[b].push_back(j);
    (*local)[b].push_back(id[j] - start[b]);
  }
  Shape out_shape = ids.shape();
  out_shape.push_back(H);
  Tensor out = Tensor::empty(out_shape, dtype);
  Tensor out_rows = out.reshape({n, H});
  const size_t row_bytes = static_cast<size_t>(H) * dtype_size(dtype);
  for (int64_t b = 0; b < bands; ++b) {
    if ((*positions)[b].empty()) continue;
    Tensor rows = product(gather_rows(embeddings[b].value(), (*local)[b]), projections[b].value(), false, true);
    const std::vector<int64_t>& pos = (*positions)[b];
    for (size_t j = 0; j < pos.size(); ++j)
      std::memcpy(static_cast<char*>(out_rows.raw()) + pos[j] * row_bytes,
                  static_cast<const char*>(rows.raw()) + j * row_bytes, row_bytes);
  }

  std::vector<Var> inputs = embeddings;
  inputs.insert(inputs.end(), projections.begin(), projections.end());
  std::vector<Tensor> E, P;
  for (int64_t b = 0; b < bands; ++b) {
    E.push_back(embeddings[b].value());
    P.push_back(projections[b].value());
  }
  return record(op, out, inputs, [positions, local, E, P, bands, n, H, padding_idx](const Tensor& g) -> std::vector<Tensor> {
    std::vector<Tensor> d_embeddings, d_projections;
    Tensor g_rows = g.reshape({n, H});
    for (int64_t b = 0; b < bands; ++b) {
      Tensor dE = Tensor::zeros(E[b].shape(), g.dtype());
      Tensor dP = Tensor::zeros(P[b].shape(), g.dtype());
      if (!(*positions)[b].empty()) {
        Tensor gb = gather_rows(g_rows, (*positions)[b]);  // (n_b, H)
        matmul_into(gb, gather_rows(E[b], (*local)[b]), dP, true, false);
        scatter_add_rows(product(gb, P[b], false, false), (*local)[b], dE, b == 0 ? padding_idx : -1);
      }
      d_embeddings.push_back(dE);
      d_projections.push_back(dP);
    }
    d_embeddings.insert(d_embeddings.end(), d_projections.begin(), d_projections.end());
    return d_embeddings;
  });
}

Var adaptive_input_reference(const Tensor& ids, const std::vector<Var>& embeddings,
                             const std::vector<Var>& projections, int64_t padding_idx) {
  MEGA_CHECK(!embeddings.empty() && projections.size() == embeddings.size(),
             "[adaptive_input_reference] needs one projection per band");
  Var out;
  int64_t start = 0;
  for (size_t b = 0; b < embeddings.size(); ++b) {
    const int64_t band = embeddings[b].size(0);
    // Ids outside the band read row 0 and are zeroed by the mask, so they send row 0 no gradient.
    Tensor local = Tensor::empty(ids.shape(), DType::I64);
    Shape mask_shape = ids.shape();
    mask_shape.push_back(1);
    Tensor mask = Tensor::empty(mask_shape, DType::F64);
    for (int64_t j = 0; j < ids.numel(); ++j) {
      const int64_t id = ids.data<int64_t>()[j];
      const bool inside = id >= start && id < start + band;
      local.data<int64_t>()[j] = inside ? id - start : 0;
      mask.data<double>()[j] = inside ? 1.0 : 0.0;
    }
    Var rows = linear(embedding(local, embeddings[b], b == 0 ? padding_idx : -1), projections[b]);
    Var part = mul(rows, Var(mask.to(rows.dtype())));
    out = out.defined() ? add(out, part) : part;
    start += band;
  }
  return out;
}

}  // namespace mega
