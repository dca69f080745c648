// The op profiler (autograd/profile.h): one table per process, guarded by a mutex, written when a scope
// closes; the scope stack is per thread.
#include "autograd/profile.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>

namespace mega {

namespace profile_detail {
std::atomic<bool> enabled{false};
}

namespace {

std::mutex table_mutex;
std::map<std::string, OpTime>& table() {
  static std::map<std::string, OpTime> times;
  return times;
}
thread_local OpScope* innermost = nullptr;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void set_profiling(bool on) {
  if (on) {
    std::lock_guard<std::mutex> lock(table_mutex);
    table().clear();
  }
  profile_detail::enabled.store(on, std::memory_order_relaxed);
}

bool profiling() { return profile_detail::enabled.load(std::memory_order_relaxed); }

std::vector<OpTime> profile_snapshot() {
  std::vector<OpTime> out;
  {
    std::lock_guard<std::mutex> lock(table_mutex);
    for (const auto& [name, time] : table()) out.push_back(time);
  }
  std::sort(out.begin(), out.end(), [](const OpTime& a, const OpTime& b) {
    return a.forward_s + a.backward_s > b.forward_s + b.backward_s;
  });
  return out;
}

void OpScope::begin(const char* name, OpPhase phase) {
  active_ = true;
  name_ = name;
  parent_ = innermost;
  phase_ = parent_ && parent_->phase_ == OpPhase::Backward ? OpPhase::Backward : phase;
  innermost = this;
  start_ns_ = now_ns();
}

void OpScope::end() {
  const int64_t elapsed = now_ns() - start_ns_;
  innermost = parent_;
  if (parent_) parent_->children_ns_ += elapsed;
  const double self_s = static_cast<double>(elapsed - children_ns_) * 1e-9;
  std::lock_guard<std::mutex> lock(table_mutex);
  OpTime& time = table()[name_];
  time.name = name_;
  if (phase_ == OpPhase::Forward) {
    time.forward_s += self_s;
    time.forward_calls += 1;
  } else {
    time.backward_s += self_s;
    time.backward_calls += 1;
  }
}

}  // namespace mega
