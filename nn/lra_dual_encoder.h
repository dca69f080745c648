// The Long Range Arena Retrieval model (document matching, AAN) as a dual encoder: one Mega encoder,
// shared, reads both documents; each is pooled to a vector (u for the first, v for the second) and the
// classifier head (nn/lra_classifier.h's LraHead) reads a combination of the two:
//   concat       [u, v]                the original Mega (facebookresearch/mega, fairseq/models/lra/model.py
//                                      concatenates the two sentence representations, classifier_in_dim =
//                                      2 H; its first is net_input1's, so pass that document first)
//   interaction  [u, v, u * v, u - v]  LRA's own dual-encoder head (lra_benchmarks classifier_head_dual)
// Parameters and config.json as LraClassifier's ("mega.*", "classifier.*", "pixel_embedding.*"), the
// combination saved as lra_classifier.pair_features.
// Shapes: B batch, L1 and L2 the documents' lengths, H hidden size, C labels.
#pragma once
#include "nn/lra_classifier.h"

namespace mega {

enum class PairFeatures { Concat, Interaction };
EnumNames<PairFeatures> pair_features_names();  // "concat", "interaction"
PairFeatures pair_features_from_name(const std::string& name);
const char* pair_features_name(PairFeatures features);

struct LraDualEncoderOptions {
  LraClassifierOptions classifier;  // encoder, pooling, head, input
  PairFeatures pair_features = PairFeatures::Concat;
};

// The head's input for pooled u, v (B, H): (B, 2H) or (B, 4H).
Var combine_pair(const Var& u, const Var& v, PairFeatures features);

class LraDualEncoder : public Module {
 public:
  explicit LraDualEncoder(const LraDualEncoderOptions& options);
  // ids I64 (B, L1), (B, L2) with their masks F32 1 = token -> logits (B, C).
  Var forward(const Tensor& ids1, const Tensor& mask1, const Tensor& ids2, const Tensor& mask2, Rng& rng);
  // One document's pooled representation (B, H), what forward feeds to combine_pair.
  Var encode(const Tensor& ids, const Tensor& mask, Rng& rng);

  const LraDualEncoderOptions& options() const { return options_; }
  nlohmann::json config_json() const;
  // Refuses a config.json without lra_classifier.pair_features (a single-sequence classifier).
  static LraDualEncoderOptions options_from_config_json(const nlohmann::json& json);

  MegaModel mega;
  std::unique_ptr<PixelEmbedding> pixel_embedding;  // pixel input only

 private:
  LraDualEncoderOptions options_;
  LraHead classifier;
};

}  // namespace mega
