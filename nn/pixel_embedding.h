// The real-valued pixel embedding of the original Mega (facebookresearch/mega,
// fairseq/modules/real_number_embedding.py, the "linear" embedding of its LRA Image and Pathfinder
// encoders): each pixel, a real number x, becomes the D-vector x * weight + bias. Here x is the
// intensity normalised as torchvision's Normalize does, x = (v / 255 - mean) / std.
// Shapes: B batch, L length (pixels), D embedding dim.
#pragma once
#include "nn/module.h"

namespace mega {

// x (B, L) real values, weight (D), bias (D) -> (B, L, D): x[b, t] * weight + bias. Built from the
// broadcasting mul and add, so its gradient (d weight = sum x * g, d bias = sum g, d x = g . weight)
// comes from those ops.
Var real_number_embedding(const Var& x, const Var& weight, const Var& bias);

class PixelEmbedding : public Module {
 public:
  PixelEmbedding(int64_t dim, double mean, double std);
  // Intensities I64 (B, L), 0-255 -> (B, L, D) F32. A value outside 0-255 is an error.
  Var forward(const Tensor& pixels) const;
  // (v / 255 - mean) / std as F32 (B, L): what forward feeds to the embedding.
  Tensor normalise(const Tensor& pixels) const;

  double mean() const { return mean_; }
  double std() const { return std_; }

  Var weight, bias;  // start at zero; nn/init draws Mega's N(0, 1) and N(0, 0.1)

 private:
  double mean_, std_;
};

}  // namespace mega
