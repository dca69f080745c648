// Test helpers: random inputs, a gtest assertion around the shared gradcheck, and error messages.
#pragma once
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "autograd/gradcheck.h"
#include "core/rng.h"

namespace mega::testing {

// Normal(0, scale) + shift values of `shape`, deterministic in `seed`.
inline Tensor random_tensor(const Shape& shape, uint64_t seed, double scale = 1.0, double shift = 0.0) {
  Rng rng(seed);
  Tensor t = Tensor::empty(shape, DType::F64);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<double>()[i] = rng.normal(0, i) * scale + shift;
  return t;
}

// The message of the mega::Error that `body` throws, or "(no error)": for asserting what an error says.
inline std::string error_of(const std::function<void()>& body) {
  try {
    body();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

#define EXPECT_GRADCHECK(f, inputs, ...)                                          \
  do {                                                                            \
    ::mega::GradcheckReport report_ = ::mega::gradcheck(f, inputs, ##__VA_ARGS__); \
    EXPECT_TRUE(report_.ok) << "gradcheck failed, worst element: " << report_.message; \
  } while (0)

}  // namespace mega::testing
