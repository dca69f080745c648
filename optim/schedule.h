// Learning-rate schedules as pure functions of the step, so resuming needs only the step count.
// `step` is the number of updates already made: the first update uses learning_rate(s, 0), as in
// fairseq (whose scheduler sets the rate for update k+1 after update k).
//   warmup (every kind, when warmup_steps > 0 and step <= warmup_steps):
//     lr = warmup_init_lr + (peak_lr - warmup_init_lr) * (step / warmup_steps)^warmup_power
//   after warmup:
//     constant:      peak_lr
//     linear:        end_lr + (peak_lr - end_lr) (total - step) / (total - warmup), end_lr from total on
//                    (fairseq's linear_decay, Mega's LRA recipes)
//     cosine:        end_lr + (peak_lr - end_lr) (1 + cos(pi p)) / 2, p = (step - warmup) / (total - warmup)
//                    clamped to [0, 1]
//     inverse_sqrt:  peak_lr sqrt(max(warmup, 1) / step)  (fairseq's inverse_sqrt)
#pragma once
#include <cstdint>
#include <string>

namespace mega {

enum class ScheduleKind { Constant, Linear, Cosine, InverseSqrt };
ScheduleKind schedule_kind_from_name(const std::string& name);  // constant, linear, cosine, inverse_sqrt
const char* schedule_kind_name(ScheduleKind kind);

struct Schedule {
  ScheduleKind kind = ScheduleKind::Constant;
  double peak_lr = 1e-3;
  int64_t warmup_steps = 0;
  double warmup_init_lr = 0.0;
  double warmup_power = 1.0;
  int64_t total_steps = 0;  // linear, cosine: where the rate reaches end_lr
  double end_lr = 0.0;
};

// Checks the fields (total_steps > warmup_steps for linear and cosine, warmup_power > 0, ...).
void validate(const Schedule& schedule);
double learning_rate(const Schedule& schedule, int64_t step);

}  // namespace mega
