// The learning-rate schedules of schedule.h.
#include "optim/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace mega {

ScheduleKind schedule_kind_from_name(const std::string& name) {
  if (name == "constant") return ScheduleKind::Constant;
  if (name == "linear") return ScheduleKind::Linear;
  if (name == "cosine") return ScheduleKind::Cosine;
  if (name == "inverse_sqrt") return ScheduleKind::InverseSqrt;
  fail("unknown schedule '", name, "' (expected constant, linear, cosine or inverse_sqrt)");
}

const char* schedule_kind_name(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::Constant: return "constant";
    case ScheduleKind::Linear: return "linear";
    case ScheduleKind::Cosine: return "cosine";
    case ScheduleKind::InverseSqrt: return "inverse_sqrt";
  }
  return "?";
}

void validate(const Schedule& s) {
  MEGA_CHECK(s.peak_lr >= 0 && s.warmup_init_lr >= 0 && s.end_lr >= 0,
             "[schedule] learning rates must be >= 0");
  MEGA_CHECK(s.warmup_steps >= 0, "[schedule] warmup_steps must be >= 0, got ", s.warmup_steps);
  MEGA_CHECK(s.warmup_power > 0, "[schedule] warmup_power must be > 0, got ", s.warmup_power);
  if (s.kind == ScheduleKind::Linear || s.kind == ScheduleKind::Cosine)
    MEGA_CHECK(s.total_steps > s.warmup_steps, "[schedule] ", schedule_kind_name(s.kind),
               " needs total_steps (", s.total_steps, ") > warmup_steps (", s.warmup_steps, ")");
}

double learning_rate(const Schedule& s, int64_t step) {
  MEGA_CHECK(step >= 0, "[schedule] step must be >= 0, got ", step);
  if (s.warmup_steps > 0 && step <= s.warmup_steps) {
    double fraction = static_cast<double>(step) / static_cast<double>(s.warmup_steps);
    return s.warmup_init_lr + (s.peak_lr - s.warmup_init_lr) * std::pow(fraction, s.warmup_power);
  }
  const double after = static_cast<double>(step - s.warmup_steps);
  const double span = static_cast<double>(s.total_steps - s.warmup_steps);
  switch (s.kind) {
    case ScheduleKind::Constant: return s.peak_lr;
    case ScheduleKind::Linear:
      if (step >= s.total_steps) return s.end_lr;
      return s.end_lr + (s.peak_lr - s.end_lr) * (span - after) / span;
    case ScheduleKind::Cosine: {
      double progress = std::clamp(after / span, 0.0, 1.0);
      return s.end_lr + (s.peak_lr - s.end_lr) * 0.5 * (1 + std::cos(std::numbers::pi * progress));
    }
    case ScheduleKind::InverseSqrt:
      if (step == 0) return s.peak_lr;
      return s.peak_lr * std::sqrt(static_cast<double>(std::max<int64_t>(s.warmup_steps, 1)) / step);
  }
  return s.peak_lr;
}

}  // namespace mega
