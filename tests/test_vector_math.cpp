// ops/vector_math.h: the vectorisable exp against libm's, over its whole range, and at its edges.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "ops/vector_math.h"

TEST(VectorMath, ExpIsWithinTwoUlpOfLibmOverItsRange) {
  double worst = 0;
  float worst_x = 0;
  for (float x = -87.0f; x <= 88.0f; x += 0.000731f) {
    const double exact = std::exp(static_cast<double>(x));
    const double error = std::abs(static_cast<double>(mega::exp_of(x)) - exact) / exact;
    if (error > worst) worst = error, worst_x = x;
  }
  // Two ulp of a float is 2^-22 relative at worst.
  EXPECT_LT(worst, std::ldexp(1.0, -22)) << "at x = " << worst_x;
  EXPECT_EQ(mega::exp_of(0.0f), 1.0f);
}

TEST(VectorMath, ExpClampsOutsideItsRangeAndKeepsNaN) {
  EXPECT_TRUE(std::isnan(mega::exp_of(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(std::isfinite(mega::exp_of(1000.0f)));
  EXPECT_GT(mega::exp_of(1000.0f), 1e38f);
  EXPECT_GE(mega::exp_of(-1000.0f), 0.0f);
  EXPECT_LT(mega::exp_of(-1000.0f), 1e-37f);
  EXPECT_EQ(mega::sigmoid_of(-1000.0f), mega::sigmoid_of(-1000.0f));  // no NaN at the edges
  EXPECT_EQ(mega::sigmoid_of(1000.0f), 1.0f);
  EXPECT_LT(mega::sigmoid_of(-1000.0f), 1e-37f);
  EXPECT_TRUE(std::isnan(mega::sigmoid_of(std::numeric_limits<float>::quiet_NaN())));
}
