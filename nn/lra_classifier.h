// The Long Range Arena classifier of the original Mega (facebookresearch/mega, its sentence-classification
// head on the LRA encoder): a Mega encoder over token ids (no pooler), a sentence representation (the
// mean over non-padding tokens, or the first token), then classifier_layers x (Linear -> activation ->
// dropout) and a Linear to the labels. Parameters are "mega.*" (HF's MegaModel under the base-model prefix)
// and "classifier.*", so a saved folder is in HF's layout and HF's MegaModel.from_pretrained reads the
// encoder. Single-sequence tasks only (ListOps, Text, Image, Pathfinder); Retrieval's dual encoder is
// another class when it comes.
// Shapes: B batch, L length, H hidden size, C labels.
#pragma once
#include <memory>
#include <vector>

#include "nn/mega_model.h"

namespace mega {

enum class Pooling { Mean, First };
EnumNames<Pooling> pooling_names();  // the one list of pooling names (recipes' model.pooling)
Pooling pooling_from_name(const std::string& name);
const char* pooling_name(Pooling pooling);

struct LraClassifierOptions {
  MegaConfig encoder;  // the Mega encoder (vocabulary, padding id, layers, ...)
  Pooling pooling = Pooling::Mean;
  int64_t classifier_layers = 1;  // hidden Linear+activation layers before the output projection
  int64_t classifier_hidden_size = 0;
  Activation classifier_activation = Activation::Gelu;
  double classifier_dropout = 0.0;
  int64_t num_labels = 2;
};

class LraClassifier : public Module {
 public:
  explicit LraClassifier(const LraClassifierOptions& options);
  // ids I64 (B, L), mask F32 (B, L) 1 = token -> logits (B, C).
  Var forward(const Tensor& ids, const Tensor& mask, Rng& rng);

  const LraClassifierOptions& options() const { return options_; }
  // config.json of a saved model: the encoder's MegaConfig with architectures ["MegaModel"] and the head
  // under "lra_classifier" (kept by HF as an unknown key); from_config_json reads it back.
  nlohmann::json config_json() const;
  static LraClassifierOptions options_from_config_json(const nlohmann::json& json);

  MegaModel mega;

 private:
  struct Head : Module {
    Head(const LraClassifierOptions& options);
    std::vector<std::unique_ptr<Linear>> hidden;  // "classifier.layers.<i>"
    Linear out_proj;                              // "classifier.out_proj"
  };
  LraClassifierOptions options_;
  Head classifier;
};

}  // namespace mega
