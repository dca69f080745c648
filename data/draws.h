// Internal to data/: a sequential reader of the counter-based RNG, so shuffles and generated data are
// a pure function of (seed, stream) on every machine (std::uniform_int_distribution is not).
#pragma once
#include <array>
#include <cstdint>

#include "core/rng.h"

namespace mega {

class Draws {
 public:
  Draws(uint64_t seed, uint64_t stream) : rng_(seed), stream_(stream) {}
  uint32_t next_u32() {
    if (word_ == 4) {
      block_ = rng_.bits(stream_, index_++);
      word_ = 0;
    }
    return block_[word_++];
  }
  // Uniform in [0, 1) with 53 bits.
  double uniform() {
    uint64_t bits = (static_cast<uint64_t>(next_u32()) << 21) ^ (next_u32() >> 11);
    return static_cast<double>(bits) * 0x1.0p-53;
  }
  // Uniform integer in [0, n) (Lemire's multiply; the bias is below n / 2^64).
  int64_t below(int64_t n) {
    uint64_t bits = (static_cast<uint64_t>(next_u32()) << 32) | next_u32();
    return static_cast<int64_t>((static_cast<unsigned __int128>(bits) * static_cast<uint64_t>(n)) >> 64);
  }

 private:
  Rng rng_;
  uint64_t stream_;
  uint64_t index_ = 0;
  std::array<uint32_t, 4> block_{};
  int word_ = 4;
};

}  // namespace mega
