// Philox-4x32-10 (Random123's constants).
#include "core/rng.h"
#include "core/rng_block.h"

#include <cmath>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace mega {

namespace {
constexpr uint32_t kMul0 = 0xD2511F53, kMul1 = 0xCD9E8D57;
constexpr uint32_t kWeyl0 = 0x9E3779B9, kWeyl1 = 0xBB67AE85;
}  // namespace

std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> c, std::array<uint32_t, 2> k) {
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = static_cast<uint64_t>(kMul0) * c[0];
    uint64_t p1 = static_cast<uint64_t>(kMul1) * c[2];
    c = {static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<uint32_t>(p1),
         static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k[1], static_cast<uint32_t>(p0)};
    k[0] += kWeyl0;
    k[1] += kWeyl1;
  }
  return c;
}

std::array<uint32_t, 4> Rng::bits(uint64_t stream, uint64_t index) const {
  return philox4x32({static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32),
                     static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32)},
                    {static_cast<uint32_t>(seed_), static_cast<uint32_t>(seed_ >> 32)});
}

void philox_first_words(uint64_t seed, uint64_t stream, uint64_t first, uint32_t* out) {
#if defined(__AVX2__)
  // The rounds of philox4x32 above on kBlockLanes counters, eight to a vector: mul_epu32 gives the 64-bit
  // products of the even 32-bit lanes, so the odd lanes go through it shifted down.
  const __m256i mul0 = _mm256_set1_epi32(static_cast<int>(kMul0)), mul1 = _mm256_set1_epi32(static_cast<int>(kMul1));
  const __m256i c2_start = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(stream)));
  const __m256i c3_start = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(stream >> 32)));
  for (int v = 0; v < kBlockLanes; v += 8) {
    alignas(32) uint32_t lo[8], hi[8];
    for (int l = 0; l < 8; ++l) {
      const uint64_t index = first + static_cast<uint64_t>(v + l);
      lo[l] = static_cast<uint32_t>(index);
      hi[l] = static_cast<uint32_t>(index >> 32);
    }
    __m256i c0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(lo));
    __m256i c1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(hi));
    __m256i c2 = c2_start, c3 = c3_start;
    uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
    auto mulhi = [](__m256i x, __m256i m) {
      const __m256i even = _mm256_srli_epi64(_mm256_mul_epu32(x, m), 32);
      const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(x, 32), m);
      return _mm256_blend_epi32(even, odd, 0xAA);
    };
    for (int round = 0; round < 10; ++round) {
      const __m256i hi0 = mulhi(c0, mul0), hi1 = mulhi(c2, mul1);
      const __m256i lo0 = _mm256_mullo_epi32(c0, mul0), lo1 = _mm256_mullo_epi32(c2, mul1);
      c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32(static_cast<int>(k0)));
      c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32(static_cast<int>(k1)));
      c1 = lo1;
      c3 = lo0;
      k0 += kWeyl0;
      k1 += kWeyl1;
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + v), c0);
  }
#else
  const Rng rng(seed);
  for (int l = 0; l < kBlockLanes; ++l) out[l] = rng.bits(stream, first + static_cast<uint64_t>(l))[0];
#endif
}

float Rng::uniform(uint64_t stream, uint64_t index, int k) const {
  return static_cast<float>(bits(stream, index)[k & 3] >> 8) * (1.0f / 16777216.0f);
}

float Rng::normal(uint64_t stream, uint64_t index) const {
  auto b = bits(stream, index);
  double u1 = (static_cast<double>(b[0] >> 8) + 1.0) / 16777217.0;  // (0, 1]: log is finite
  double u2 = static_cast<double>(b[1] >> 8) / 16777216.0;
  return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

}  // namespace mega
