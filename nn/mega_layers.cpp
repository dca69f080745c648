// The layers of a Mega block. Formula order follows the fixtures' README ("Mega layer"), which is HF's
// MegaMovingAverageGatedAttention with its defects corrected. Shapes as in mega_layers.h.
#include "nn/mega_layers.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "ops/dropout.h"
#include "ops/elementwise.h"
#include "ops/ema.h"
#include "ops/matmul.h"
#include "ops/shape.h"
#include "ops/sync_batch_norm.h"

namespace mega {

namespace {

Tensor ones(const Shape& shape) { return Tensor::full(shape, 1.0); }

// mask (B, L) as F32 1/0, or all ones when undefined.
Tensor float_mask(const Tensor& mask, int64_t batch, int64_t length) {
  if (!mask.defined()) return ones({batch, length});
  MEGA_CHECK(mask.dim() == 2 && mask.size(0) == batch && mask.size(1) == length, "[mega] mask has shape ",
             shape_str(mask.shape()), ", expected (", batch, ", ", length, ")");
  return mask.to(DType::F32);
}

// Token t of x (B, L, D) as (B, D), and the reverse.
Tensor token_at(const Tensor& x, int64_t t) {
  const int64_t B = x.size(0), L = x.size(1), D = x.size(2);
  Tensor out = Tensor::empty({B, D});
  for (int64_t b = 0; b < B; ++b)
    std::memcpy(out.data<float>() + b * D, x.data<float>() + (b * L + t) * D, D * sizeof(float));
  return out;
}
void set_token_at(Tensor& x, int64_t t, const Tensor& token) {
  const int64_t B = x.size(0), L = x.size(1), D = x.size(2);
  for (int64_t b = 0; b < B; ++b)
    std::memcpy(x.data<float>() + (b * L + t) * D, token.data<float>() + b * D, D * sizeof(float));
}

Tensor concat_tokens(const Tensor& before, const Tensor& after) {
  if (!before.defined()) return after;
  return concat({Var(before), Var(after)}, 1).value();
}

// The attention settings a config fixes: the function and the dropout on the weights.
AttentionOptions attention_from(const MegaConfig& config) {
  AttentionOptions options;
  options.function = config.attention_activation;
  options.dropout = config.attention_probs_dropout_prob;
  return options;
}

// The same settings in the caller's mode, drawing dropout masks from `rng`.
AttentionOptions in_mode(AttentionOptions options, bool training, Rng& rng) {
  options.training = training;
  options.rng = &rng;
  return options;
}

}  // namespace

Var DropoutSpec::apply(const Var& x, bool training, Rng& rng) const {
  if (!training || p == 0) return x;
  return featurewise ? feature_dropout(x, p, training, rng) : dropout(x, p, training, rng);
}

SequenceNorm::SequenceNorm(NormalizationType type, int64_t dim, bool affine) {
  switch (type) {
    case NormalizationType::LayerNorm: kind_ = Kind::LayerNorm; break;
    case NormalizationType::ScaleNorm: kind_ = Kind::ScaleNorm; break;
    case NormalizationType::RmsNorm: kind_ = Kind::RmsNorm; break;
    case NormalizationType::BatchNorm: kind_ = Kind::BatchNorm; break;
    case NormalizationType::SyncBatchNorm: kind_ = Kind::SyncBatchNorm; break;  // one process: batchnorm
  }
  if (affine) {
    if (kind_ == Kind::ScaleNorm) {
      scalar_ = Var::parameter(ones({1}));
      register_parameter("norm.scalar", &scalar_);
    } else {
      weight_ = Var::parameter(ones({dim}));
      register_parameter("norm.weight", &weight_);
      if (kind_ != Kind::RmsNorm) {
        bias_ = Var::parameter(Tensor::zeros({dim}));
        register_parameter("norm.bias", &bias_);
      }
    }
  }
  if (kind_ == Kind::BatchNorm || kind_ == Kind::SyncBatchNorm) {
    state_.running_mean = Tensor::zeros({dim});
    state_.running_var = ones({dim});
    state_.num_batches_tracked = Tensor::zeros({}, DType::I64);
    register_buffer("norm.running_mean", &state_.running_mean);
    register_buffer("norm.running_var", &state_.running_var);
    register_buffer("norm.num_batches_tracked", &state_.num_batches_tracked);
  }
}

Var SequenceNorm::forward(const Var& x) {
  switch (kind_) {
    case Kind::LayerNorm: return layer_norm(x, weight_, bias_);
    case Kind::ScaleNorm: return scale_norm(x, scalar_);
    case Kind::RmsNorm: return rms_norm(x, weight_);
    case Kind::BatchNorm: return batch_norm(x, weight_, bias_, state_, training());
    case Kind::SyncBatchNorm: return sync_batch_norm(x, weight_, bias_, state_, training());
  }
  fail("[SequenceNorm] unreachable");
}

RelativePositionBias::RelativePositionBias(const MegaConfig& config)
    : rotary_(config.relative_positional_bias == RelativePositionalBias::Rotary),
      positions_(config.simple_bias_positions()),
      chunk_size_(config.chunk_size),
      max_positions_(config.max_positions) {
  if (rotary_) {
    alpha_ = Var::parameter(Tensor::zeros({1, config.shared_representation_size}));
    b_param_ = Var::parameter(Tensor::zeros({1, config.shared_representation_size}));
    float_tensor_ = Tensor::zeros({1});
    register_parameter("alpha", &alpha_);
    register_parameter("b_param", &b_param_);
    register_buffer("_float_tensor", &float_tensor_);
  } else {
    rel_pos_bias_ = Var::parameter(Tensor::zeros({2 * config.max_positions - 1}));
    register_parameter("rel_pos_bias", &rel_pos_bias_);
  }
}

Var RelativePositionBias::forward(int64_t n) {
  if (rotary_) return rotary_relative_bias(alpha_, b_param_, n);
  MEGA_CHECK(n <= positions_, "[rel_pos_bias] the simple relative bias covers at most ", positions_,
             " positions (chunk_size when positive, else max_positions; here chunk_size=", chunk_size_,
             ", max_positions=", max_positions_, "), asked for ", n);
  // HF indexes the (2 max_positions - 1) weights around M = positions_: w[M - 1 + j - i].
  Var w = positions_ == max_positions_ ? rel_pos_bias_ : narrow(rel_pos_bias_, 0, 0, 2 * positions_ - 1);
  return simple_relative_bias(w, n);
}

Var RelativePositionBias::rows(int64_t first, int64_t rows, int64_t cols, Tensor& table) {
  const int64_t n = std::max(first + rows, cols);
  if (!table.defined() || table.size(0) < n) {
    int64_t capacity = std::max<int64_t>(2 * n, 16);
    if (!rotary_) capacity = std::min(capacity, positions_);  // past M, forward(n) reports the error
    table = forward(std::max(n, capacity)).value();
  }
  return narrow(narrow(Var(table), 0, first, rows), 1, 0, cols);
}

MultiDimensionDampedEma::MultiDimensionDampedEma(const MegaConfig& config)
    : hidden_(config.hidden_size),
      ndim_(config.ema_projection_size),
      bidirectional_(config.bidirectional),
      truncation_(config.truncation.value_or(0)) {
  int64_t rows = bidirectional_ ? 2 * hidden_ : hidden_;
  damping_factor_ = Var::parameter(Tensor::zeros({rows, ndim_, 1}));
  decay_factor_ = Var::parameter(Tensor::zeros({rows, ndim_, 1}));
  ema_expansion_matrix_ = Var::parameter(Tensor::zeros({rows, ndim_, 1}));
  kernel_projection_matrix_ = Var::parameter(Tensor::zeros({rows, ndim_}));
  residual_weight_ = Var::parameter(Tensor::zeros({hidden_}));
  register_parameter("damping_factor", &damping_factor_);
  register_parameter("decay_factor", &decay_factor_);
  register_parameter("ema_expansion_matrix", &ema_expansion_matrix_);
  register_parameter("kernel_projection_matrix", &kernel_projection_matrix_);
  register_parameter("residual_weight", &residual_weight_);
}

EmaParams MultiDimensionDampedEma::params() const {
  return {damping_factor_, decay_factor_, ema_expansion_matrix_, kernel_projection_matrix_, residual_weight_};
}

Var MultiDimensionDampedEma::forward(const Var& x, const Tensor& mask) {
  return ema(x, params(), mask, bidirectional_, truncation_);
}

Var MultiDimensionDampedEma::forward_cached(const Var& x, const Tensor& mask, MegaLayerCache& cache) {
  MEGA_CHECK(!bidirectional_, "[ema] cached decoding needs a unidirectional EMA (bidirectional=false)");
  NoGradGuard no_grad;
  const int64_t B = x.size(0), L = x.size(1), D = hidden_;
  Tensor xs = x.value().to(DType::F32);
  Tensor token = float_mask(mask, B, L);
  Tensor out = Tensor::empty({B, L, D});
  EmaParams p = params();
  if (truncation_ == 0) {
    // Eq. (2): h_t = p beta x_t + q h_{t-1}, y_t = gamma h_t sqrt(1/N); the state is all it needs.
    if (!cache.ema_state.defined()) cache.ema_state = Tensor::zeros({B, D, ndim_});
    for (int64_t t = 0; t < L; ++t) {
      Tensor token_t = Tensor::empty({B});
      for (int64_t b = 0; b < B; ++b) token_t.data<float>()[b] = token.data<float>()[b * L + t];
      set_token_at(out, t, ema_step(token_at(xs, t), p, cache.ema_state, token_t));
    }
    return Var(out);
  }
  // With truncation the output is a finite convolution, y_t = sum_{j < K} k[j] x_{t-j}, which no
  // fixed-size state reproduces; keep the last K - 1 masked inputs instead (cost independent of t).
  const int64_t K = truncation_;
  Tensor kernel = ema_kernel(p, K).to(DType::F32);  // (D, K)
  const float* k = kernel.data<float>();
  Tensor omega = residual_weight_.value().to(DType::F32);
  int64_t kept = cache.ema_history.defined() ? cache.ema_history.size(1) : 0;
  Tensor window = Tensor::zeros({B, kept + L, D});  // oldest first: the history, then the new tokens
  for (int64_t b = 0; b < B; ++b) {
    if (kept)
      std::memcpy(window.data<float>() + b * (kept + L) * D, cache.ema_history.data<float>() + b * kept * D,
                  kept * D * sizeof(float));
    for (int64_t t = 0; t < L; ++t)
      for (int64_t d = 0; d < D; ++d)
        window.data<float>()[(b * (kept + L) + kept + t) * D + d] =
            xs.data<float>()[(b * L + t) * D + d] * token.data<float>()[b * L + t];
  }
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < L; ++t)
      for (int64_t d = 0; d < D; ++d) {
        int64_t now = kept + t;
        double y = 0;
        for (int64_t j = 0; j < K && j <= now; ++j)
          y += double(k[d * K + j]) * window.data<float>()[(b * (kept + L) + now - j) * D + d];
        double v = y + double(omega.data<float>()[d]) * xs.data<float>()[(b * L + t) * D + d];
        out.data<float>()[(b * L + t) * D + d] = static_cast<float>(v / (1 + std::exp(-v)));  // silu
      }
  int64_t keep = std::min(K - 1, kept + L);
  cache.ema_history = keep > 0 ? narrow(Var(window), 1, kept + L - keep, keep).value().clone() : Tensor();
  return Var(out);
}

MovingAverageGatedAttention::MovingAverageGatedAttention(const MegaConfig& config)
    : hidden_(config.hidden_size),
      shared_(config.shared_representation_size),
      intermediate_(config.intermediate_size),
      chunk_size_(config.chunk_size),
      use_chunking_(config.use_chunking),
      causal_(config.is_decoder),
      prenorm_(config.normalize_before_mega),
      activation_(config.activation),
      attention_(attention_from(config)),
      dropout_{config.dropout_prob, config.use_feature_dropout},
      hidden_dropout_{config.hidden_dropout_prob, config.use_feature_dropout},
      norm(config.normalization_type, config.hidden_size, config.norm_affine),
      ema_gate(config),
      v_proj(config.hidden_size, config.intermediate_size),
      mx_proj(config.hidden_size,
              config.shared_representation_size + config.intermediate_size + 2 * config.hidden_size),
      h_proj(config.intermediate_size, config.hidden_size),
      rel_pos_bias(config) {
  qk_weight = Var::parameter(Tensor::zeros({2, shared_}));
  qk_bias = Var::parameter(Tensor::zeros({2, shared_}));
  register_module("norm", &norm);
  register_module("ema_gate", &ema_gate);
  register_module("v_proj", &v_proj);
  register_module("mx_proj", &mx_proj);
  register_module("h_proj", &h_proj);
  register_parameter("qk_weight", &qk_weight);
  register_parameter("qk_bias", &qk_bias);
  register_module("rel_pos_bias", &rel_pos_bias);
}

Var MovingAverageGatedAttention::forward(const Var& x, const Tensor& mask, MegaLayerCache* cache, Rng& rng,
                                         Tensor* weights) {
  MEGA_CHECK(x.dim() == 3 && x.size(2) == hidden_, "[mega_layer] input has shape ", shape_str(x.shape()),
             ", expected (B, L, ", hidden_, ")");
  MEGA_CHECK(!cache || causal_, "[mega_layer] cached decoding needs a decoder (is_decoder=true)");
  const Var residual = x;
  Var h = prenorm_ ? norm.forward(x) : x;
  Var value = activate(activation_, v_proj.forward(h));  // (B, L, I), from the normalised input
  Var ema_out = cache ? ema_gate.forward_cached(h, mask, *cache) : ema_gate.forward(h, mask);
  ema_out = dropout_.apply(ema_out, training(), rng);
  // mx_proj(e) = [r | u | hx] of sizes [H | Z + I | H].
  std::vector<Var> parts = split(mx_proj.forward(ema_out), 2, {hidden_, shared_ + intermediate_, hidden_});
  Var r = sigmoid(parts[0]);
  std::vector<Var> zg = split(silu(parts[1]), 2, {shared_, intermediate_});
  const Var& z = zg[0];
  const Var& gate = zg[1];
  Var q = z * select(qk_weight, 0, 0) + select(qk_bias, 0, 0);  // (B, L, Z)
  Var k = z * select(qk_weight, 0, 1) + select(qk_bias, 0, 1);
  value = hidden_dropout_.apply(value, training(), rng);
  Var attended = cache ? attend_cached(q, k, value, mask, *cache, rng, weights)
                       : attend(q, k, value, mask, rng, weights);  // (B, L, I)
  Var hx = activate(activation_, parts[2] + h_proj.forward(attended * gate));
  hx = dropout_.apply(hx, training(), rng);
  Var out = residual + r * (hx - residual);
  return prenorm_ ? out : norm.forward(out);
}

Var MovingAverageGatedAttention::attend(const Var& q, const Var& k, const Var& v, const Tensor& mask, Rng& rng,
                                        Tensor* weights) {
  const int64_t B = q.size(0), L = q.size(1);
  // A sequence no longer than a chunk is one chunk; a longer one that is not a multiple of the chunk
  // size is padded to the next multiple here, the padding masked as keys, and cut from the output.
  const int64_t c = use_chunking_ && L > chunk_size_ ? chunk_size_ : 0;
  const int64_t padded = c ? (L + c - 1) / c * c : L;
  Var qp = q, kp = k, vp = v;
  Tensor key_mask = mask;
  if (padded != L) {
    qp = pad(q, 1, 0, padded - L);
    kp = pad(k, 1, 0, padded - L);
    vp = pad(v, 1, 0, padded - L);
    key_mask = pad(Var(float_mask(mask, B, L)), 1, 0, padded - L).value();
  }
  AttentionOptions options = in_mode(attention_, training(), rng);
  options.chunk_size = c;
  options.causal = causal_;
  Var bias = rel_pos_bias.forward(c ? c : padded);
  Var out = attention(qp, kp, vp, bias, key_mask, options, weights);
  return padded != L ? narrow(out, 1, 0, L) : out;
}

Var MovingAverageGatedAttention::attend_cached(const Var& q, const Var& k, const Var& v, const Tensor& mask,
                                               MegaLayerCache& cache, Rng& rng, Tensor* weights) {
  const int64_t B = q.size(0), L = q.size(1);
  Var keys = cache.self_key.defined() ? concat({Var(cache.self_key), k}, 1) : k;
  Var values = cache.self_value.defined() ? concat({Var(cache.self_value), v}, 1) : v;
  Tensor key_mask = concat_tokens(cache.self_mask, float_mask(mask, B, L));
  const int64_t S = keys.size(1);  // keys since the chunk start; the new queries are the last L
  MEGA_CHECK(!use_chunking_ || S <= chunk_size_, "[mega_layer] cached tokens cross a chunk boundary (", S,
             " keys, chunk_size ", chunk_size_, ")");
  AttentionOptions options = in_mode(attention_, training(), rng);
  options.causal = true;
  Var bias = rel_pos_bias.rows(S - L, L, S, cache.self_bias_table);  // (L, S): rows of the new positions
  Var out = attention(q, keys, values, bias, key_mask, options, weights);
  out = zero_left_padding_rows(out, key_mask, cache);
  if (use_chunking_ && S == chunk_size_) {  // the chunk is complete: the next token starts afresh
    cache.self_key = cache.self_value = cache.self_mask = Tensor();
  } else {
    cache.self_key = keys.value();
    cache.self_value = values.value();
    cache.self_mask = key_mask;
  }
  return out;
}

// The full forward's softmax masks no key of a chunk whose keys are all padding, but masks padding
// keys when the chunk holds a real token anywhere, leaving a padding row with no visible key at zero.
// Decoding sees only a prefix. Padding after real tokens (right padding) ends the sequence, so its chunk
// stays all padding: the attention op's rule on the prefix is right. Padding before any real token (left
// padding) is followed by real tokens, so its rows are zero. Only a chunk of pure left padding, or a row
// of nothing but padding, differs from the full forward (its rows are padding; real rows never differ).
Var MovingAverageGatedAttention::zero_left_padding_rows(const Var& out, const Tensor& key_mask,
                                                       MegaLayerCache& cache) {
  const int64_t B = out.size(0), L = out.size(1), S = key_mask.size(1);
  if (!cache.seen_token.defined()) cache.seen_token = Tensor::zeros({B});
  Tensor keep = Tensor::full({B, L, 1}, 1.0);
  bool any = false;
  for (int64_t b = 0; b < B; ++b) {
    float& seen = cache.seen_token.data<float>()[b];
    bool real_in_prefix = false;
    for (int64_t j = 0; j < S; ++j) {
      real_in_prefix = real_in_prefix || key_mask.data<float>()[b * S + j] != 0;
      int64_t i = j - (S - L);  // the query at key position j
      if (i >= 0 && seen == 0 && !real_in_prefix) {
        keep.data<float>()[b * L + i] = 0;
        any = true;
      }
    }
    if (real_in_prefix) seen = 1;
  }
  return any ? out * Var(keep) : out;
}

NormalizedFeedForwardNetwork::NormalizedFeedForwardNetwork(const MegaConfig& config)
    : prenorm_(config.normalize_before_ffn),
      activation_(config.activation),
      dropout_{config.dropout_prob, config.use_feature_dropout},
      hidden_dropout_{config.nffn_activation_dropout_prob, config.use_feature_dropout},
      norm(config.normalization_type, config.hidden_size, config.norm_affine),
      fc1(config.hidden_size, config.nffn_hidden_size),
      fc2(config.nffn_hidden_size, config.hidden_size) {
  register_module("norm", &norm);
  register_module("fc1", &fc1);
  register_module("fc2", &fc2);
}

Var NormalizedFeedForwardNetwork::forward(const Var& x, Rng& rng) {
  Var h = prenorm_ ? norm.forward(x) : x;
  h = hidden_dropout_.apply(activate(activation_, fc1.forward(h)), training(), rng);
  Var out = dropout_.apply(fc2.forward(h), training(), rng) + x;
  return prenorm_ ? out : norm.forward(out);
}

GatedCrossAttention::GatedCrossAttention(const MegaConfig& config)
    : hidden_(config.hidden_size),
      shared_(config.shared_representation_size),
      prenorm_(config.normalize_before_mega),
      activation_(config.activation),
      attention_(attention_from(config)),
      dropout_{config.dropout_prob, config.use_feature_dropout},
      hidden_dropout_{config.hidden_dropout_prob, config.use_feature_dropout},
      norm(config.normalization_type, config.hidden_size, config.norm_affine),
      k_proj(config.hidden_size, config.shared_representation_size),
      v_proj(config.hidden_size, config.hidden_size),
      q_proj(config.hidden_size, 2 * config.hidden_size + config.shared_representation_size),
      h_proj(config.hidden_size, config.hidden_size),
      rel_pos_bias(config) {
  register_module("norm", &norm);
  register_module("k_proj", &k_proj);
  register_module("v_proj", &v_proj);
  register_module("q_proj", &q_proj);
  register_module("h_proj", &h_proj);
  register_module("rel_pos_bias", &rel_pos_bias);
}

Var GatedCrossAttention::forward(const Var& query, const Var& source, const Tensor& source_mask, int64_t position,
                                 MegaLayerCache* cache, Rng& rng, Tensor* weights) {
  const int64_t L = query.size(1);
  Var h = prenorm_ ? norm.forward(query) : query;
  // q_proj = [r | gate | q] of sizes [H | H | Z].
  std::vector<Var> parts = split(q_proj.forward(h), 2, {hidden_, hidden_, shared_});
  Var r = sigmoid(parts[0]);
  Var gate = silu(parts[1]);
  Var k, v;
  if (cache && cache->cross_key.defined()) {
    k = Var(cache->cross_key);
    v = Var(cache->cross_value);
  } else {
    MEGA_CHECK(source.defined() && source.dim() == 3 && source.size(2) == hidden_,
               "[cross_attn] encoder_hidden_states must be (B, S, ", hidden_, ")");
    k = k_proj.forward(source);                             // (B, S, Z)
    v = activate(activation_, v_proj.forward(source));      // (B, S, H)
    if (cache) {
      cache->cross_key = k.value();
      cache->cross_value = v.value();
    }
  }
  v = hidden_dropout_.apply(v, training(), rng);
  const int64_t S = k.size(1);
  // bias(max(Lt, Ls))[:Lt, :Ls], with the queries at their absolute positions when decoding.
  Var bias = cache ? rel_pos_bias.rows(position, L, S, cache->cross_bias_table)
                   : narrow(narrow(rel_pos_bias.forward(std::max(position + L, S)), 0, position, L), 1, 0, S);
  Var attended = attention(parts[2], k, v, bias, source_mask, in_mode(attention_, training(), rng),
                           weights);  // (B, L, H)
  Var hx = activate(activation_, h_proj.forward(attended * gate));
  hx = dropout_.apply(hx, training(), rng);
  Var out = query + r * (hx - query);
  return prenorm_ ? out : norm.forward(out);
}

MegaBlock::MegaBlock(const MegaConfig& config) : mega_layer(config) {
  register_module("mega_layer", &mega_layer);
  if (config.use_normalized_ffn) {
    nffn = std::make_unique<NormalizedFeedForwardNetwork>(config);
    register_module("nffn", nffn.get());
  }
  if (config.add_cross_attention) {
    cross_attn = std::make_unique<GatedCrossAttention>(config);
    register_module("cross_attn", cross_attn.get());
  }
}

Var MegaBlock::forward(const Var& x, const Tensor& mask, const Var& source, const Tensor& source_mask,
                       int64_t position, MegaLayerCache* cache, Rng& rng, Tensor* self_weights,
                       Tensor* cross_weights) {
  Var h = mega_layer.forward(x, mask, cache, rng, self_weights);
  if (cross_attn) {
    MEGA_CHECK(source.defined() || (cache && cache->cross_key.defined()),
               "[MegaBlock] this decoder has cross-attention: pass encoder_hidden_states");
    h = cross_attn->forward(h, source, source_mask, position, cache, rng, cross_weights);
  }
  if (nffn) h = nffn->forward(h, rng);
  return h;
}

}  // namespace mega
