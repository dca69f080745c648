// Counter-based random numbers (Philox-4x32-10, Salmon et al. 2011): the value at position i of stream s
// depends only on (seed, s, i), never on thread count or call order, so dropout masks and
// initialisations are reproducible and parallel loops need no shared state.
#pragma once
#include <array>
#include <cstdint>

namespace mega {

std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  // Draws from stream `stream` at counter `index`: four independent 32-bit words.
  std::array<uint32_t, 4> bits(uint64_t stream, uint64_t index) const;
  // Uniform in [0, 1) with 24 bits, the k-th (0..3) word of block `index`.
  float uniform(uint64_t stream, uint64_t index, int k = 0) const;
  // Standard normal by Box-Muller from words 0,1 of the block.
  float normal(uint64_t stream, uint64_t index) const;

  // A fresh stream id for each user (a dropout call, an init): the counter the trainer checkpoints.
  uint64_t next_stream() { return next_stream_++; }
  uint64_t stream_position() const { return next_stream_; }
  void set_stream_position(uint64_t position) { next_stream_ = position; }

 private:
  uint64_t seed_;
  uint64_t next_stream_ = 0;
};

}  // namespace mega
