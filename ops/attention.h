// The attention core of Mega's gated attention (paper Sec. 3.2-3.3): scores, relative position bias,
// masks, the attention function, chunking (Mega-chunk), dropout on the weights, and the weighted sum.
// Shapes: B batch, L queries, S keys, Z shared (query/key) dim, I value dim, c chunk size.
#pragma once
#include <string>

#include "autograd/variable.h"
#include "core/enum_names.h"
#include "core/rng.h"

namespace mega {

enum class AttentionFunction { Softmax, Laplace, Relu2 };
// HF's attention_activation names; the one list of them.
EnumNames<AttentionFunction> attention_function_names();
AttentionFunction attention_function_from_name(const std::string& name);  // an error lists the names

// Simple bias (T5-like): w (2M - 1) -> bias (n, n), bias[i][j] = w[M - 1 + j - i]. n <= M, else an
// error naming max_positions / chunk_size.
Var simple_relative_bias(const Var& w, int64_t n);
// Rotary bias: alpha, b_param (1, Z), Z even -> (n, n) = rot(alpha) rot(b_param)^T, where row t of rot(v)
// rotates the halves v1, v2 by angles t * 10000^(-k / (Z/2)): [v1 cos - v2 sin, v2 cos + v1 sin].
// The angles are formed in float32 as HF does (then sin/cos in the tensor's precision). No limit on n.
Var rotary_relative_bias(const Var& alpha, const Var& b_param, int64_t n);

struct AttentionOptions {
  AttentionFunction function = AttentionFunction::Softmax;
  int64_t chunk_size = 0;  // > 0: block-diagonal attention over chunks; L == S and a multiple of it
  bool causal = false;     // query i sits at key position S - L + i and sees keys up to it
  double dropout = 0;      // on the attention weights, when training
  bool training = false;
  Rng* rng = nullptr;      // needed when dropout > 0 and training
};

// q (B, L, Z), k (B, S, Z), v (B, S, I) -> (B, L, I). Fused, with a hand-written backward to q, k, v, bias.
// bias: (c, c) with chunking, else (L, S); or undefined. key_mask (B, S), nonzero = token, or undefined.
// softmax: q k^T Z^-1/2 + bias, masked keys -inf (unless every key of the chunk is padding, then none
//   is masked); a row with no visible key gets zero weights.
// laplace, relu2: q k^T / n + bias, n = visible (non-padding) keys of the chunk, at least 1, or the
//   row's causal count when causal; then the function, times the key and causal masks.
// weights, if given, receives the attention weights before dropout (HF's `attentions`):
// (B, L / c, c, c) with chunking, else (B, 1, L, S).
// Dropout keeps weight (p, i, j) of the (B L/c, c, c) or (B, L, S) layout, flat index f, when
// rng.uniform(stream, f / 4, f % 4) >= dropout, one fresh stream per call; survivors scale by 1/(1-p).
// Memory is O(B L c) with chunking, never O(L^2).
Var attention(const Var& q, const Var& k, const Var& v, const Var& bias, const Tensor& key_mask,
              const AttentionOptions& options, Tensor* weights = nullptr);
// The same function from primitive ops (matmul, masked_fill, softmax, ...), gradients from autograd:
// the slow reference the fused op is tested against. Draws the same dropout mask from the same stream.
Var attention_reference(const Var& q, const Var& k, const Var& v, const Var& bias, const Tensor& key_mask,
                        const AttentionOptions& options, Tensor* weights = nullptr);

}  // namespace mega
