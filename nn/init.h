// Weight initialisation of a fresh Mega model, reproducing HF's MegaPreTrainedModel._init_weights rule by
// rule, chosen by parameter name (the names are HF's, so the rules read like the Python):
//   ema_gate.damping_factor, decay_factor      ~ N(0, ema_delta_alpha_range)          (delta, alpha)
//   ema_gate.ema_expansion_matrix (D', N, 1)   ~ N(0, ema_beta_range) + v, v[n] = +1 even n, -1 odd n (beta)
//   ema_gate.kernel_projection_matrix, residual_weight ~ N(0, ema_gamma_omega_range)   (gamma, omega)
//   rel_pos_bias.{rel_pos_bias, alpha, b_param}, qk_weight, every Linear weight, embeddings
//                                              ~ N(0, initializer_range); the padding row of the word
//                                                embeddings is zero
//   qk_bias, every Linear bias, norm biases    = 0;  norm weights and the scalenorm scalar = 1
//   batch-norm running_mean = 0, running_var = 1, num_batches_tracked = 0
//   pixel_embedding.weight ~ N(0, 1), pixel_embedding.bias ~ N(0, 0.1)   (the original Mega's
//                                                RealNumberEmbedding, for the LRA pixel input)
// Each parameter draws from a stream of its own (rng.next_stream(), in named_parameters order), so the
// result is deterministic and independent of the thread count. A parameter no rule covers is an error.
// A tied weight is initialised once, by the rule of its first name.
#pragma once
#include "core/rng.h"
#include "nn/config.h"
#include "nn/module.h"

namespace mega {

void init_mega_weights(Module& model, const MegaConfig& config, Rng& rng);

// The draws every rule above is made of, for modules with rules of their own (nn/adaptive.cpp): one
// stream per tensor, element i from block i, so the result does not depend on the thread count.
void fill_normal(Tensor& x, double std, Rng& rng);        // N(0, std)
void fill_uniform(Tensor& x, double bound, Rng& rng);     // U(-bound, bound)

}  // namespace mega
