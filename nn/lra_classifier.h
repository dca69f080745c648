// The Long Range Arena classifier of the original Mega (facebookresearch/mega, its sentence-classification
// head on the LRA encoder): a Mega encoder over token ids or pixel intensities (no pooler), a sentence
// representation (the mean over non-padding tokens, or the first token), then classifier_layers x
// (Linear -> activation -> dropout) and a Linear to the labels. Parameters are "mega.*" (HF's MegaModel
// under the base-model prefix), "classifier.*" and, for pixel input, "pixel_embedding.{weight,bias}",
// so a saved folder is in HF's layout and HF's MegaModel.from_pretrained reads the encoder (the head and
// the pixel embedding are keys it reports as unused). Single-sequence tasks (ListOps, Text, Image,
// Pathfinder); Retrieval's dual encoder is nn/lra_dual_encoder.h, built from the pieces declared here.
// Shapes: B batch, L length, H hidden size, F head input features, C labels.
#pragma once
#include <memory>
#include <vector>

#include "nn/mega_model.h"
#include "nn/pixel_embedding.h"

namespace mega {

enum class Pooling { Mean, First };
EnumNames<Pooling> pooling_names();  // the one list of pooling names (recipes' model.pooling)
Pooling pooling_from_name(const std::string& name);
const char* pooling_name(Pooling pooling);

// What the encoder reads: token ids through its word embeddings, or pixel intensities 0-255 through
// the original Mega's real-valued embedding (nn/pixel_embedding.h), fed to MegaModel as inputs_embeds.
enum class LraInput { Tokens, Pixels };
LraInput lra_input_from_name(const std::string& name);  // "tokens", "pixels"
const char* lra_input_name(LraInput input);

struct LraClassifierOptions {
  MegaConfig encoder;  // the Mega encoder (vocabulary, padding id, layers, ...)
  Pooling pooling = Pooling::Mean;
  int64_t classifier_layers = 1;  // hidden Linear+activation layers before the output projection
  int64_t classifier_hidden_size = 0;
  Activation classifier_activation = Activation::Gelu;
  double classifier_dropout = 0.0;
  int64_t num_labels = 2;
  LraInput input = LraInput::Tokens;
  // Pixels: x = (v / 255 - pixel_mean) / pixel_std before the embedding; 0.5, 0.5 is the default of
  // Mega's lra-image task (--pixel-normalization), mapping 0-255 onto [-1, 1].
  double pixel_mean = 0.5;
  double pixel_std = 0.5;
};

// The sentence representation of encoder states h (B, L, H) under mask (B, L): (B, H).
Var pool_sentence(const Var& h, const Tensor& mask, Pooling pooling);

// The encoder's inputs for ids (B, L) and mask: input_ids, or the pixel embedding as inputs_embeds.
MegaInputs lra_encoder_inputs(const Tensor& ids, const Tensor& mask, const PixelEmbedding* pixels);

// classifier_layers x (Linear -> activation -> dropout), then "out_proj", Linear to the labels.
class LraHead : public Module {
 public:
  LraHead(int64_t in_features, const LraClassifierOptions& options);
  Var forward(const Var& features, Rng& rng);  // (B, F) -> (B, C)

 private:
  Activation activation_;
  double dropout_;
  std::vector<std::unique_ptr<Linear>> hidden_;  // "layers.<i>"
  Linear out_proj_;
};

// config.json of a saved LRA model: the encoder's MegaConfig with architectures ["MegaModel"] and the
// head's options under "lra_classifier" (HF keeps it as an unknown key); and back.
nlohmann::json lra_config_json(const LraClassifierOptions& options);
LraClassifierOptions lra_options_from_config_json(const nlohmann::json& json);

class LraClassifier : public Module {
 public:
  explicit LraClassifier(const LraClassifierOptions& options);
  // ids I64 (B, L), mask F32 (B, L) 1 = token -> logits (B, C).
  Var forward(const Tensor& ids, const Tensor& mask, Rng& rng);

  const LraClassifierOptions& options() const { return options_; }
  // config.json of a saved model (lra_config_json); options_from_config_json reads it back and refuses a
  // dual encoder's.
  nlohmann::json config_json() const;
  static LraClassifierOptions options_from_config_json(const nlohmann::json& json);

  MegaModel mega;
  std::unique_ptr<PixelEmbedding> pixel_embedding;  // pixel input only

 private:
  LraClassifierOptions options_;
  LraHead classifier;
};

}  // namespace mega
