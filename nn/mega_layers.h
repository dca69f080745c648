// The layers of a Mega block (paper Sec. 3, HF's modeling_mega.py), named as in HF's state_dict:
// SequenceNorm ("norm.norm.*"), RelativePositionBias ("rel_pos_bias.*"), MultiDimensionDampedEma
// ("ema_gate.*"), MovingAverageGatedAttention ("mega_layer.*"), NormalizedFeedForwardNetwork
// ("nffn.*"), GatedCrossAttention ("cross_attn.*") and MegaBlock ("layers.<i>.*").
// Shapes: B batch, L length (new tokens when decoding), S keys / source length, H hidden size,
// Z shared (query/key) size, I intermediate (value) size, N EMA dims, c chunk size.
#pragma once
#include <memory>

#include "core/rng.h"
#include "nn/config.h"
#include "nn/module.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/ema.h"
#include "ops/norm.h"

namespace mega {

// What one block keeps between decoding calls. Self keys/values hold the current chunk's tokens (all
// tokens without chunking) and restart at each chunk boundary.
struct MegaLayerCache {
  Tensor ema_state;    // (B, H, N): h_{t-1} of the EMA recurrence
  Tensor ema_history;  // (B, W, H): the last W < truncation masked EMA inputs, only with truncation
  Tensor self_key;     // (B, t, Z)
  Tensor self_value;   // (B, t, I)
  Tensor self_mask;    // (B, t) F32, 1 = token
  Tensor seen_token;   // (B) F32: 1 once any real (non-padding) token has been fed
  Tensor cross_key;    // (B, S, Z)
  Tensor cross_value;  // (B, S, H)
  // Relative-bias tables (n, n) for the self- and cross-attention, grown by doubling: bias[i][j] does
  // not depend on n, so each step slices its rows instead of rebuilding an (S, S) bias.
  Tensor self_bias_table, cross_bias_table;
};

// Dropout by config: feature dropout (whole features per example) when use_feature_dropout.
struct DropoutSpec {
  double p = 0;
  bool featurewise = false;
  Var apply(const Var& x, bool training, Rng& rng) const;  // x (B, L, D)
};

// HF's MegaSequenceNorm wrapping one norm as ".norm": layernorm (norm.weight, norm.bias), scalenorm
// (norm.scalar), rmsnorm (norm.weight), batchnorm (norm.weight, norm.bias, norm.running_mean,
// norm.running_var, norm.num_batches_tracked); no weights when norm_affine is false. eps 1e-5.
class SequenceNorm : public Module {
 public:
  SequenceNorm(NormalizationType type, int64_t dim, bool affine);
  Var forward(const Var& x);  // (B, L, H); batchnorm uses batch statistics in training mode

 private:
  enum class Kind { LayerNorm, ScaleNorm, RmsNorm, BatchNorm, SyncBatchNorm } kind_;
  Var weight_, bias_, scalar_;
  BatchNormState state_;
};

// Relative position bias over n positions counted from the chunk start (or the sequence start).
class RelativePositionBias : public Module {
 public:
  explicit RelativePositionBias(const MegaConfig& config);
  Var forward(int64_t n);  // (n, n): bias[i][j] for query i, key j
  // Decoding, no autograd: rows [first, first + rows), columns [0, cols) of the bias, read from `table`
  // (rebuilt at twice the size when too small).
  Var rows(int64_t first, int64_t rows, int64_t cols, Tensor& table);

 private:
  bool rotary_;
  int64_t positions_;  // M of the simple bias: chunk_size when positive, else max_positions
  int64_t chunk_size_, max_positions_;
  Var rel_pos_bias_;     // simple: (2 max_positions - 1), of which the first 2M - 1 are used
  Var alpha_, b_param_;  // rotary: (1, Z)
  Tensor float_tensor_;  // rotary: HF's (1) dtype-tracking buffer, kept for the checkpoint layout
};

// The multi-dimensional damped EMA (Eq. 2-5); parameters (D', N, 1) with D' = 2H when bidirectional.
class MultiDimensionDampedEma : public Module {
 public:
  explicit MultiDimensionDampedEma(const MegaConfig& config);
  Var forward(const Var& x, const Tensor& mask);  // x (B, L, H), mask (B, L) or undefined -> (B, L, H)
  // Decoding: feeds the L tokens through the recurrence one at a time from cache.ema_state (or, with
  // truncation, through the kept window), updating the cache. No autograd.
  Var forward_cached(const Var& x, const Tensor& mask, MegaLayerCache& cache);

 private:
  EmaParams params() const;
  int64_t hidden_, ndim_;
  bool bidirectional_;
  int64_t truncation_;  // 0: none
  Var damping_factor_, decay_factor_, ema_expansion_matrix_, kernel_projection_matrix_, residual_weight_;
};

// The Mega layer ("mega_layer"): EMA, gated single-head attention, gated residual (README order).
class MovingAverageGatedAttention : public Module {
 public:
  explicit MovingAverageGatedAttention(const MegaConfig& config);
  // x (B, L, H), mask (B, L) F32 or undefined. With a cache, the L tokens must lie in one chunk and
  // follow the cached ones. weights, if given, receives the attention weights.
  Var forward(const Var& x, const Tensor& mask, MegaLayerCache* cache, Rng& rng, Tensor* weights);

 private:
  Var attend(const Var& q, const Var& k, const Var& v, const Tensor& mask, Rng& rng, Tensor* weights);
  Var attend_cached(const Var& q, const Var& k, const Var& v, const Tensor& mask, MegaLayerCache& cache,
                    Rng& rng, Tensor* weights);
  Var zero_left_padding_rows(const Var& out, const Tensor& key_mask, MegaLayerCache& cache);

  int64_t hidden_, shared_, intermediate_, chunk_size_;
  bool use_chunking_, causal_, prenorm_;
  Activation activation_;
  AttentionOptions attention_;  // function and dropout; mode, chunking and causality are set per call
  DropoutSpec dropout_, hidden_dropout_;
  // Submodules and parameters carry their state_dict names.
  SequenceNorm norm;
  MultiDimensionDampedEma ema_gate;
  Linear v_proj, mx_proj, h_proj;
  Var qk_weight, qk_bias;  // (2, Z): row 0 makes the query, row 1 the key
  RelativePositionBias rel_pos_bias;
};

// "nffn": res = x; [norm]; fc2(dropout(act(fc1(x)))); dropout; + res; [norm].
class NormalizedFeedForwardNetwork : public Module {
 public:
  explicit NormalizedFeedForwardNetwork(const MegaConfig& config);
  Var forward(const Var& x, Rng& rng);

 private:
  bool prenorm_;
  Activation activation_;
  DropoutSpec dropout_, hidden_dropout_;
  SequenceNorm norm;
  Linear fc1, fc2;
};

// "cross_attn": gated attention from the decoder's tokens (queries) to the encoder's states.
class GatedCrossAttention : public Module {
 public:
  explicit GatedCrossAttention(const MegaConfig& config);
  // query (B, L, H) at positions [position, position + L); source (B, S, H), source_mask (B, S) or
  // undefined. With a cache, the source keys/values are computed on the first call and reused.
  Var forward(const Var& query, const Var& source, const Tensor& source_mask, int64_t position,
              MegaLayerCache* cache, Rng& rng, Tensor* weights);

 private:
  int64_t hidden_, shared_;
  bool prenorm_;
  Activation activation_;
  AttentionOptions attention_;  // function and dropout; mode set per call
  DropoutSpec dropout_, hidden_dropout_;
  SequenceNorm norm;
  Linear k_proj, v_proj, q_proj, h_proj;
  RelativePositionBias rel_pos_bias;
};

// One block ("layers.<i>"): mega_layer, then cross_attn (decoders with add_cross_attention), then nffn.
class MegaBlock : public Module {
 public:
  explicit MegaBlock(const MegaConfig& config);
  Var forward(const Var& x, const Tensor& mask, const Var& source, const Tensor& source_mask,
              int64_t position, MegaLayerCache* cache, Rng& rng, Tensor* self_weights,
              Tensor* cross_weights);
  bool has_cross_attention() const { return cross_attn != nullptr; }

 private:
  MovingAverageGatedAttention mega_layer;
  std::unique_ptr<GatedCrossAttention> cross_attn;
  std::unique_ptr<NormalizedFeedForwardNetwork> nffn;
};

}  // namespace mega
