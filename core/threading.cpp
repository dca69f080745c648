// Thread-count policy for the OpenMP pool.
#include "core/threading.h"

#include <omp.h>

#include <cstdlib>
#include <string>

#include "core/error.h"

namespace mega {

static int default_threads() {
  if (const char* env = std::getenv("MEGA_NUM_THREADS")) {
    // The whole value must be the number: std::stoi alone would read "4abc" as 4.
    const std::string text = env;
    size_t used = 0;
    long long n = 0;
    try {
      n = std::stoll(text, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != text.size() || n < 1 || n > kMaxThreads)
      fail("MEGA_NUM_THREADS must be an integer in 1..", kMaxThreads, ", got '", text, "'");
    return static_cast<int>(n);
  }
  return omp_get_num_procs();
}

static int& current_threads() {
  static int threads = [] {
    int n = default_threads();
    omp_set_num_threads(n);
    return n;
  }();
  return threads;
}

void set_num_threads(int threads) {
  MEGA_CHECK(threads <= kMaxThreads, "thread count ", threads, " is outside 1..", kMaxThreads);
  current_threads() = threads > 0 ? threads : default_threads();
  omp_set_num_threads(current_threads());
}

int num_threads() { return current_threads(); }

}  // namespace mega
