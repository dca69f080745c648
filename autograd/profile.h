// Per-op wall time for `mega bench train`: an OpScope at an op's entry (and the autograd engine around
// every backward closure) adds the time spent inside it to that op's name, forward and backward apart.
// Time is self time: a scope nested in another (an op built from ops, a forward op a backward calls)
// is taken out of its parent, so the ops' times add up to at most the wall time of the profiled code.
// A scope nested in a backward one counts as backward. Off by default; a scope then costs one relaxed
// atomic load.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace mega {

enum class OpPhase { Forward, Backward };

struct OpTime {
  std::string name;
  double forward_s = 0, backward_s = 0;
  int64_t forward_calls = 0, backward_calls = 0;
};

namespace profile_detail {
extern std::atomic<bool> enabled;
}

// Turning profiling on clears what was recorded before.
void set_profiling(bool on);
bool profiling();
// Every op recorded since profiling was turned on, the most time (forward + backward) first.
std::vector<OpTime> profile_snapshot();

class OpScope {
 public:
  explicit OpScope(const char* name, OpPhase phase = OpPhase::Forward) {
    if (profile_detail::enabled.load(std::memory_order_relaxed)) begin(name, phase);
  }
  ~OpScope() {
    if (active_) end();
  }
  OpScope(const OpScope&) = delete;
  OpScope& operator=(const OpScope&) = delete;

 private:
  void begin(const char* name, OpPhase phase);
  void end();
  bool active_ = false;
  const char* name_ = "";
  OpPhase phase_ = OpPhase::Forward;
  int64_t start_ns_ = 0;
  int64_t children_ns_ = 0;  // wall time of the scopes nested in this one
  OpScope* parent_ = nullptr;
};

}  // namespace mega
