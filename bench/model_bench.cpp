// MegaModel inference at the ListOps shape of the paper (6 layers, D 80, hidden 160, z 64, N 16,
// bidirectional, softmax, simple bias): tokens per second for B*L = 8192 tokens at L 1K to 4K, whole-
// sequence attention against Mega-chunk (c = 128).
#include <sstream>

#include "bench/bench.h"
#include "core/rng.h"
#include "nn/init.h"
#include "nn/mega_model.h"

namespace mega::bench {

namespace {

MegaConfig listops_config(int64_t length, int64_t chunk) {
  MegaConfig config;
  config.vocab_size = 32;
  config.hidden_size = 80;
  config.num_hidden_layers = 6;
  config.intermediate_size = 160;
  config.shared_representation_size = 64;
  config.ema_projection_size = 16;
  config.nffn_hidden_size = 160;
  config.bidirectional = true;
  config.attention_activation = AttentionFunction::Softmax;
  config.normalization_type = NormalizationType::LayerNorm;
  config.normalize_before_mega = false;
  config.relative_positional_bias = RelativePositionalBias::Simple;
  config.max_positions = length;
  config.use_chunking = chunk > 0;
  config.chunk_size = chunk > 0 ? chunk : -1;
  config.dropout_prob = config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0;
  config.nffn_activation_dropout_prob = 0;
  config.architectures = {"MegaModel"};
  config.validate();
  return config;
}

}  // namespace

void bench_model(Table& table, const Options& options) {
  const int64_t tokens = options.quick ? 2048 : 8192;
  std::vector<int64_t> lengths = options.quick ? std::vector<int64_t>{1024} : std::vector<int64_t>{1024, 2048, 4096};
  for (int64_t length : lengths) {
    for (int64_t chunk : {int64_t{0}, int64_t{128}}) {
      MegaConfig config = listops_config(length, chunk);
      MegaModel model(config, /*add_pooling_layer=*/false);
      Rng init_rng(1);
      init_mega_weights(model, config, init_rng);
      model.eval();
      int64_t batch = tokens / length;
      MegaInputs inputs;
      inputs.input_ids = Tensor::zeros({batch, length}, DType::I64);
      for (int64_t i = 0; i < inputs.input_ids.numel(); ++i) inputs.input_ids.data<int64_t>()[i] = 3 + i % 17;
      inputs.attention_mask = Tensor::full({batch, length}, 1.0, DType::I64);
      Rng rng(0);
      double ms = median_ms([&] {
        NoGradGuard no_grad;
        model.forward(inputs, rng);
      }, options.quick ? 1 : 3);
      std::ostringstream shape, note;
      shape << "B=" << batch << " L=" << length << (chunk ? " chunk=128" : " full");
      note << static_cast<int64_t>(tokens / (ms / 1e3)) << " tokens/s";
      table.add({"mega_model_inference", shape.str(), ms, 0, 0, note.str()});
    }
  }
}

}  // namespace mega::bench
