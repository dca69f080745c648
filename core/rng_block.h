// Philox draws for many consecutive counters at once: a mask of one draw per element (dropout's) is
// otherwise one whole Philox-4x32-10 per element, done one at a time. Apart from core/rng.h so that only
// the few users recompile when it changes.
#pragma once
#include <cstdint>

namespace mega {

constexpr int kBlockLanes = 16;
// out[l] = Rng(seed).bits(stream, first + l)[0] for l < kBlockLanes, computed side by side in lanes
// of eight (AVX2).
void philox_first_words(uint64_t seed, uint64_t stream, uint64_t first, uint32_t* out);

}  // namespace mega
