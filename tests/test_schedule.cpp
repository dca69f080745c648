// Every learning-rate schedule at its key steps: start, inside and at the end of warmup, middle, end
// and past the end.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "core/error.h"
#include "optim/schedule.h"

using namespace mega;

namespace {
Schedule make(ScheduleKind kind, int64_t warmup, int64_t total) {
  Schedule s;
  s.kind = kind;
  s.peak_lr = 1e-3;
  s.warmup_steps = warmup;
  s.total_steps = total;
  return s;
}
}  // namespace

TEST(Schedule, ConstantWithWarmup) {
  Schedule s = make(ScheduleKind::Constant, 10, 0);
  EXPECT_DOUBLE_EQ(learning_rate(s, 0), 0.0);
  EXPECT_DOUBLE_EQ(learning_rate(s, 5), 5e-4);
  EXPECT_DOUBLE_EQ(learning_rate(s, 10), 1e-3);
  EXPECT_DOUBLE_EQ(learning_rate(s, 1000000), 1e-3);
  s.warmup_steps = 0;
  EXPECT_DOUBLE_EQ(learning_rate(s, 0), 1e-3);
}

TEST(Schedule, LinearMatchesFairseqLinearDecay) {
  // Mega's ListOps recipe: 3k warmup from 1e-7, linear to 0 at 90k.
  Schedule s = make(ScheduleKind::Linear, 3000, 90000);
  s.warmup_init_lr = 1e-7;
  EXPECT_DOUBLE_EQ(learning_rate(s, 0), 1e-7);
  EXPECT_NEAR(learning_rate(s, 1500), 1e-7 + (1e-3 - 1e-7) * 0.5, 1e-18);
  EXPECT_DOUBLE_EQ(learning_rate(s, 3000), 1e-3);
  EXPECT_NEAR(learning_rate(s, 3000 + 87000 / 2), 5e-4, 1e-15);
  EXPECT_NEAR(learning_rate(s, 89999), 1e-3 / 87000, 1e-15);
  EXPECT_DOUBLE_EQ(learning_rate(s, 90000), 0.0);
  EXPECT_DOUBLE_EQ(learning_rate(s, 95000), 0.0);
}

TEST(Schedule, WarmupPower) {
  Schedule s = make(ScheduleKind::Linear, 100, 200);
  s.warmup_power = 2;
  EXPECT_NEAR(learning_rate(s, 50), 1e-3 * 0.25, 1e-18);
  EXPECT_DOUBLE_EQ(learning_rate(s, 100), 1e-3);
  s.end_lr = 1e-4;  // decays to end_lr, not to zero
  EXPECT_NEAR(learning_rate(s, 150), 1e-4 + 0.9e-3 * 0.5, 1e-15);
  EXPECT_DOUBLE_EQ(learning_rate(s, 300), 1e-4);
}

TEST(Schedule, CosineWithWarmup) {
  Schedule s = make(ScheduleKind::Cosine, 10, 110);
  EXPECT_DOUBLE_EQ(learning_rate(s, 10), 1e-3);
  EXPECT_NEAR(learning_rate(s, 35), 1e-3 * 0.5 * (1 + std::cos(std::numbers::pi / 4)), 1e-15);
  EXPECT_NEAR(learning_rate(s, 60), 5e-4, 1e-15);
  EXPECT_NEAR(learning_rate(s, 110), 0.0, 1e-18);
  EXPECT_NEAR(learning_rate(s, 500), 0.0, 1e-18);
}

TEST(Schedule, InverseSqrt) {
  Schedule s = make(ScheduleKind::InverseSqrt, 100, 0);
  EXPECT_DOUBLE_EQ(learning_rate(s, 50), 5e-4);
  EXPECT_DOUBLE_EQ(learning_rate(s, 100), 1e-3);
  EXPECT_DOUBLE_EQ(learning_rate(s, 400), 5e-4);
  s.warmup_steps = 0;
  EXPECT_DOUBLE_EQ(learning_rate(s, 0), 1e-3);
  EXPECT_DOUBLE_EQ(learning_rate(s, 4), 5e-4);
}

TEST(Schedule, ValidateRejectsADecayThatEndsBeforeWarmup) {
  Schedule s = make(ScheduleKind::Linear, 100, 100);
  EXPECT_THROW(validate(s), Error);
  s.total_steps = 101;
  EXPECT_NO_THROW(validate(s));
  EXPECT_THROW(schedule_kind_from_name("step"), Error);
}
