// The real-valued pixel embedding (nn/pixel_embedding.h).
#include "nn/pixel_embedding.h"

#include "core/error.h"
#include "ops/elementwise.h"
#include "ops/shape.h"

namespace mega {

Var real_number_embedding(const Var& x, const Var& weight, const Var& bias) {
  MEGA_CHECK(x.dim() == 2, "[real_number_embedding] x should be (B, L), got ", shape_str(x.shape()));
  MEGA_CHECK(weight.dim() == 1 && bias.dim() == 1 && weight.size(0) == bias.size(0),
             "[real_number_embedding] weight and bias should both be (D), got ", shape_str(weight.shape()), " and ",
             shape_str(bias.shape()));
  // x.unsqueeze(-1) * weight + bias: (B, L, 1) * (D) + (D) -> (B, L, D).
  return add(mul(reshape(x, {x.size(0), x.size(1), 1}), weight), bias);
}

PixelEmbedding::PixelEmbedding(int64_t dim, double mean, double std) : mean_(mean), std_(std) {
  MEGA_CHECK(dim >= 1, "[pixel_embedding] dim must be >= 1, got ", dim);
  MEGA_CHECK(std > 0, "[pixel_embedding] std must be > 0, got ", std);
  weight = Var::parameter(Tensor::zeros({dim}));
  bias = Var::parameter(Tensor::zeros({dim}));
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
}

Tensor PixelEmbedding::normalise(const Tensor& pixels) const {
  MEGA_CHECK(pixels.dim() == 2, "[pixel_embedding] pixels should be (B, L), got ", shape_str(pixels.shape()));
  const Tensor ids = pixels.to(DType::I64);
  Tensor x = Tensor::empty(pixels.shape(), DType::F32);
  const int64_t* v = ids.data<int64_t>();
  float* out = x.data<float>();
  for (int64_t i = 0; i < ids.numel(); ++i) {
    MEGA_CHECK(v[i] >= 0 && v[i] <= 255, "[pixel_embedding] pixel ", i, " has intensity ", v[i], " (expected 0-255)");
    out[i] = static_cast<float>((static_cast<double>(v[i]) / 255.0 - mean_) / std_);
  }
  return x;
}

Var PixelEmbedding::forward(const Tensor& pixels) const { return real_number_embedding(Var(normalise(pixels)), weight, bias); }

}  // namespace mega
