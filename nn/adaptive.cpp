// AdaptiveInput and AdaptiveSoftmax: options checks, parameter layout, tying and fairseq's
// initialisation; the math is in ops/adaptive_softmax.cpp.
#include "nn/adaptive.h"

#include <cmath>
#include <string>

#include "nn/init.h"
#include "ops/dropout.h"
#include "ops/shape.h"

namespace mega {
namespace {

// xavier_uniform draws U(-bound, bound) with bound = sqrt(6 / (fan_in + fan_out)).
double xavier_bound(int64_t fan_in, int64_t fan_out) {
  return std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
}

// xavier_uniform for a (rows, in) weight with fan_in = in; fan_out is its rows, or those of the larger
// matrix it is a block of (fairseq's single head matrix).
void fill_xavier(Var& weight, int64_t fan_out, Rng& rng) {
  fill_uniform(weight.value_mut(), xavier_bound(weight.size(1), fan_out), rng);
}

void check_band(int64_t band, int64_t count, const char* what) {
  MEGA_CHECK(band >= 0 && band < count, "[adaptive] ", what, " ", band, " does not exist (there are ", count, ")");
}

}  // namespace

void check_adaptive_options(const AdaptiveOptions& o) {
  MEGA_CHECK(o.vocab_size >= 2, "[adaptive] vocab_size must be at least 2, got ", o.vocab_size);
  MEGA_CHECK(o.dim >= 1, "[adaptive] dim must be positive, got ", o.dim);
  MEGA_CHECK(!o.cutoffs.empty(), "[adaptive] cutoffs is empty: an adaptive softmax needs at least one cutoff "
             "(e.g. {20000, 60000}); use a plain softmax otherwise");
  for (size_t i = 0; i < o.cutoffs.size(); ++i) {
    MEGA_CHECK(i > 0 || o.cutoffs[0] > 0, "[adaptive] cutoffs must be positive and strictly increasing: cutoffs[0] = ",
               o.cutoffs[0]);
    MEGA_CHECK(i == 0 || o.cutoffs[i] > o.cutoffs[i - 1], "[adaptive] cutoffs must be positive and strictly "
               "increasing: cutoffs[", i, "] = ", o.cutoffs[i], " after ", o.cutoffs[i > 0 ? i - 1 : 0]);
    MEGA_CHECK(o.cutoffs[i] < o.vocab_size, "[adaptive] cutoffs[", i, "] = ", o.cutoffs[i],
               " must be below vocab_size = ", o.vocab_size, " (the last band ends at vocab_size)");
  }
  MEGA_CHECK(std::isfinite(o.factor) && o.factor >= 1, "[adaptive] factor must be a finite number >= 1, got ",
             o.factor);
  MEGA_CHECK(o.dropout >= 0 && o.dropout < 1, "[adaptive] dropout must be in [0, 1), got ", o.dropout);
  MEGA_CHECK(o.padding_idx >= -1 && o.padding_idx < o.cutoffs[0], "[adaptive] padding_idx must be -1 (none) or an "
             "id of band 0, [0, ", o.cutoffs[0], "), got ", o.padding_idx);
}

std::vector<int64_t> adaptive_band_bounds(const AdaptiveOptions& o) {
  std::vector<int64_t> bounds{0};
  bounds.insert(bounds.end(), o.cutoffs.begin(), o.cutoffs.end());
  bounds.push_back(o.vocab_size);
  return bounds;
}

int64_t adaptive_band_dim(const AdaptiveOptions& o, int64_t band) {
  // fairseq: int(dim // factor ** band).
  return std::max<int64_t>(1, static_cast<int64_t>(std::floor(static_cast<double>(o.dim) / std::pow(o.factor, band))));
}

AdaptiveInput::AdaptiveInput(const AdaptiveOptions& options) : options_(options) {
  check_adaptive_options(options_);
  const std::vector<int64_t> bounds = adaptive_band_bounds(options_);
  const int64_t bands = static_cast<int64_t>(bounds.size()) - 1;
  embeddings_.resize(static_cast<size_t>(bands));
  projections_.resize(static_cast<size_t>(bands));
  for (int64_t b = 0; b < bands; ++b) {
    const int64_t d = adaptive_band_dim(options_, b);
    embeddings_[b] = Var::parameter(Tensor::zeros({bounds[b + 1] - bounds[b], d}));
    projections_[b] = Var::parameter(Tensor::zeros({options_.dim, d}));
    register_parameter("embeddings." + std::to_string(b) + ".0.weight", &embeddings_[b]);
    register_parameter("embeddings." + std::to_string(b) + ".1.weight", &projections_[b]);
  }
}

Var AdaptiveInput::forward(const Tensor& ids) {
  return adaptive_input(ids, embeddings_, projections_, options_.padding_idx);
}

void AdaptiveInput::init_weights(Rng& rng) {
  NoGradGuard no_grad;
  for (int64_t b = 0; b < num_bands(); ++b) {
    Tensor& table = embeddings_[b].value_mut();
    fill_normal(table, 1.0 / std::sqrt(static_cast<double>(table.size(1))), rng);
    if (b == 0 && options_.padding_idx >= 0) {
      // fairseq zeroes row padding_idx of every band's table; only band 0's row is the padding token.
      Tensor row = table.narrow0(options_.padding_idx, options_.padding_idx + 1);
      row.fill(0);
    }
    fill_xavier(projections_[b], options_.dim, rng);
  }
}

Var& AdaptiveInput::embedding_weight(int64_t band) {
  check_band(band, num_bands(), "band");
  return embeddings_[band];
}

Var& AdaptiveInput::projection_weight(int64_t band) {
  check_band(band, num_bands(), "band");
  return projections_[band];
}

AdaptiveSoftmax::AdaptiveSoftmax(const AdaptiveOptions& options) : options_(options) {
  check_adaptive_options(options_);
  const std::vector<int64_t> bounds = adaptive_band_bounds(options_);
  const int64_t tails = static_cast<int64_t>(options_.cutoffs.size()), H = options_.dim;
  head_words_ = Var::parameter(Tensor::zeros({bounds[1], H}));
  head_clusters_ = Var::parameter(Tensor::zeros({tails, H}));
  register_parameter("head.word_proj.weight", &head_words_);
  register_parameter("head.class_proj.weight", &head_clusters_);
  tail_projections_.resize(static_cast<size_t>(tails));
  tail_outputs_.resize(static_cast<size_t>(tails));
  for (int64_t i = 0; i < tails; ++i) {
    const int64_t d = adaptive_band_dim(options_, i + 1);
    tail_projections_[i] = Var::parameter(Tensor::zeros({d, H}));
    tail_outputs_[i] = Var::parameter(Tensor::zeros({bounds[i + 2] - bounds[i + 1], d}));
    register_parameter("tail." + std::to_string(i) + ".0.weight", &tail_projections_[i]);
    register_parameter("tail." + std::to_string(i) + ".2.weight", &tail_outputs_[i]);
  }
}

void AdaptiveSoftmax::tie_to(AdaptiveInput& input) {
  const AdaptiveOptions& in = input.options();
  auto mismatch = [&](const char* field, const auto& ours, const auto& theirs) {
    fail("[adaptive] tie_to: the input's ", field, " (", theirs, ") differs from the softmax's (", ours, ")");
  };
  if (in.vocab_size != options_.vocab_size) mismatch("vocab_size", options_.vocab_size, in.vocab_size);
  if (in.dim != options_.dim) mismatch("dim", options_.dim, in.dim);
  if (in.factor != options_.factor) mismatch("factor", options_.factor, in.factor);
  if (in.cutoffs != options_.cutoffs) {
    auto list = [](const std::vector<int64_t>& c) {
      std::string s;
      for (int64_t v : c) {
        if (!s.empty()) s += ',';
        s += std::to_string(v);
      }
      return s;
    };
    mismatch("cutoffs", list(options_.cutoffs), list(in.cutoffs));
  }
  head_words_ = input.embedding_weight(0);
  for (int64_t i = 0; i < num_tails(); ++i) {
    tail_projections_[i] = input.projection_weight(i + 1);
    tail_outputs_[i] = input.embedding_weight(i + 1);
  }
  tied_ = true;
}

AdaptiveSoftmaxWeights AdaptiveSoftmax::weights() const {
  AdaptiveSoftmaxWeights w{head_words_, head_clusters_, {}};
  for (int64_t i = 0; i < num_tails(); ++i) w.tails.push_back({tail_projections_[i], tied_, tail_outputs_[i]});
  return w;
}

Var AdaptiveSoftmax::loss(const Var& hidden, const Tensor& targets, Rng& rng, int64_t ignore_index) {
  MEGA_CHECK(hidden.defined() && hidden.dim() >= 1 && hidden.size(-1) == options_.dim,
             "[adaptive_softmax] hidden must be (..., H) with H = ", options_.dim, ", got ",
             hidden.defined() ? shape_str(hidden.shape()) : std::string("(undefined)"));
  MEGA_CHECK(targets.defined() && targets.numel() * options_.dim == hidden.numel(), "[adaptive_softmax] targets have "
             "shape ", targets.defined() ? shape_str(targets.shape()) : std::string("(undefined)"),
             " but hidden has shape ", shape_str(hidden.shape()), ": one target per row of hidden");
  // fairseq's AdaptiveSoftmax.forward drops its input once (head and tails see the same mask), then
  // again inside each tail.
  Var rows = dropout(reshape(hidden, {-1, options_.dim}), options_.dropout, training(), rng);
  return adaptive_softmax_loss(rows, weights(), targets.reshape({-1}), ignore_index, options_.dropout, training(),
                               rng);
}

AdaptiveSoftmax::Scored AdaptiveSoftmax::score(const Tensor& hidden, const Tensor& targets, int64_t ignore_index) {
  MEGA_CHECK(hidden.defined() && hidden.dim() >= 1 && hidden.size(-1) == options_.dim,
             "[adaptive_softmax] hidden must be (..., H) with H = ", options_.dim, ", got ",
             hidden.defined() ? shape_str(hidden.shape()) : std::string("(undefined)"));
  MEGA_CHECK(targets.defined() && targets.numel() * options_.dim == hidden.numel(), "[adaptive_softmax] targets have "
             "shape ", targets.defined() ? shape_str(targets.shape()) : std::string("(undefined)"),
             " but hidden has shape ", shape_str(hidden.shape()), ": one target per row of hidden");
  NoGradGuard no_grad;
  AdaptiveNll nll = adaptive_softmax_nll(hidden.reshape({-1, options_.dim}), weights(), targets.reshape({-1}),
                                         ignore_index);
  return {nll.sum, nll.count};
}

Tensor AdaptiveSoftmax::log_probs(const Tensor& hidden) {
  MEGA_CHECK(hidden.defined() && hidden.dim() >= 1 && hidden.size(-1) == options_.dim,
             "[adaptive_softmax] hidden must be (..., H) with H = ", options_.dim, ", got ",
             hidden.defined() ? shape_str(hidden.shape()) : std::string("(undefined)"));
  NoGradGuard no_grad;
  Shape out_shape = hidden.shape();
  out_shape.back() = options_.vocab_size;
  return adaptive_softmax_log_probs(hidden.reshape({-1, options_.dim}), weights()).reshape(out_shape);
}

void AdaptiveSoftmax::init_weights(Rng& rng) {
  NoGradGuard no_grad;
  const int64_t head_rows = head_words_.size(0) + head_clusters_.size(0);
  if (!tied_) fill_xavier(head_words_, head_rows, rng);
  // Tied, the cluster logits are a Linear(H, T) of their own (TiedHeadModule's class_proj).
  fill_xavier(head_clusters_, tied_ ? head_clusters_.size(0) : head_rows, rng);
  if (tied_) return;
  for (int64_t i = 0; i < num_tails(); ++i) {
    fill_xavier(tail_projections_[i], tail_projections_[i].size(0), rng);
    fill_xavier(tail_outputs_[i], tail_outputs_[i].size(0), rng);
  }
}

Var& AdaptiveSoftmax::tail_projection_weight(int64_t tail) {
  check_band(tail, num_tails(), "tail");
  return tail_projections_[tail];
}

Var& AdaptiveSoftmax::tail_output_weight(int64_t tail) {
  check_band(tail, num_tails(), "tail");
  return tail_outputs_[tail];
}

}  // namespace mega
