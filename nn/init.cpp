// HF's _init_weights for Mega, by parameter name (see init.h for the table).
#include "nn/init.h"

#include <cstring>
#include <set>
#include <string>

#include "core/error.h"

namespace mega {

namespace {

bool ends_with(const std::string& name, const std::string& suffix) {
  return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool contains(const std::string& name, const std::string& part) { return name.find(part) != std::string::npos; }

}  // namespace

void fill_normal(Tensor& x, double std, Rng& rng) {
  const uint64_t stream = rng.next_stream();
  Tensor values = Tensor::empty(x.shape(), DType::F64);
  double* v = values.data<double>();
  for (int64_t i = 0; i < x.numel(); ++i) v[i] = std * rng.normal(stream, static_cast<uint64_t>(i));
  x.copy_from(values);
}

void fill_uniform(Tensor& x, double bound, Rng& rng) {
  const uint64_t stream = rng.next_stream();
  Tensor values = Tensor::empty(x.shape(), DType::F64);
  double* v = values.data<double>();
  for (int64_t i = 0; i < x.numel(); ++i) v[i] = (2.0 * rng.uniform(stream, static_cast<uint64_t>(i)) - 1.0) * bound;
  x.copy_from(values);
}

void init_mega_weights(Module& model, const MegaConfig& config, Rng& rng) {
  NoGradGuard no_grad;
  const double std = config.initializer_range;
  std::set<VariableImpl*> done;
  for (auto& [name, parameter] : model.named_parameters()) {
    // A tied weight is listed under each of its names; it keeps the rule of the first (HF initialises
    // the word embeddings, then ties lm_head to them).
    if (!done.insert(parameter.impl()).second) continue;
    Tensor& x = parameter.value_mut();
    if (ends_with(name, "ema_gate.damping_factor") || ends_with(name, "ema_gate.decay_factor")) {
      fill_normal(x, config.ema_delta_alpha_range, rng);  // delta, alpha
    } else if (ends_with(name, "ema_gate.ema_expansion_matrix")) {
      // beta: N(0, ema_beta_range) + [1, -1, 1, -1, ...] along N ("seems more stable", HF).
      MEGA_CHECK(x.dim() == 3, "[init] ", name, " should be (D', N, 1), got ", shape_str(x.shape()));
      fill_normal(x, config.ema_beta_range, rng);
      Tensor beta = x.to(DType::F64);
      double* b = beta.data<double>();
      const int64_t N = x.size(1), inner = x.size(2);
      for (int64_t i = 0; i < x.numel(); ++i) b[i] += (i / inner) % N % 2 == 0 ? 1.0 : -1.0;
      x.copy_from(beta);
    } else if (ends_with(name, "ema_gate.kernel_projection_matrix") || ends_with(name, "ema_gate.residual_weight")) {
      fill_normal(x, config.ema_gamma_omega_range, rng);  // gamma, omega
    } else if (ends_with(name, "rel_pos_bias.rel_pos_bias") || ends_with(name, "rel_pos_bias.alpha") ||
               ends_with(name, "rel_pos_bias.b_param") || ends_with(name, "qk_weight")) {
      fill_normal(x, std, rng);
    } else if (ends_with(name, "qk_bias")) {
      x.fill(0);
    } else if (ends_with(name, "norm.scalar")) {
      x.fill(1);  // scalenorm
    } else if (contains(name, "norm.norm.") && ends_with(name, ".weight")) {
      x.fill(1);  // layernorm, rmsnorm, batchnorm gains
    } else if (contains(name, "norm.norm.") && ends_with(name, ".bias")) {
      x.fill(0);
    } else if (ends_with(name, "word_embeddings.weight") || ends_with(name, "token_type_embeddings.weight")) {
      fill_normal(x, std, rng);
      if (ends_with(name, "word_embeddings.weight") && config.pad_token_id) {
        const int64_t pad = *config.pad_token_id, width = x.size(1);
        MEGA_CHECK(pad >= 0 && pad < x.size(0), "[init] pad_token_id ", pad, " outside the vocabulary of ", name);
        Tensor row = Tensor::zeros({width}, x.dtype());
        std::memcpy(static_cast<char*>(x.raw()) + pad * width * dtype_size(x.dtype()), row.raw(), row.nbytes());
      }
    } else if (ends_with(name, "pixel_embedding.weight")) {
      fill_normal(x, 1.0, rng);  // Mega's RealNumberEmbedding: weight ~ N(0, 1), bias ~ N(0, 0.1)
    } else if (ends_with(name, "pixel_embedding.bias")) {
      fill_normal(x, 0.1, rng);
    } else if (ends_with(name, ".weight") && x.dim() == 2) {
      fill_normal(x, std, rng);  // Linear
    } else if (ends_with(name, ".bias") && x.dim() == 1) {
      x.fill(0);  // Linear
    } else {
      fail("[init] no initialisation rule for parameter '", name, "' of shape ", shape_str(x.shape()));
    }
  }
  for (auto& [name, buffer] : model.named_buffers()) {
    if (ends_with(name, "running_mean") || ends_with(name, "num_batches_tracked")) buffer->fill(0);
    else if (ends_with(name, "running_var")) buffer->fill(1);
  }
}

}  // namespace mega
