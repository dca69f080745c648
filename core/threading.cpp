// Thread-count policy for the OpenMP pool.
#include "core/threading.h"

#include <omp.h>

#include <cstdlib>
#include <string>

#include "core/error.h"

namespace mega {

static int default_threads() {
  if (const char* env = std::getenv("MEGA_NUM_THREADS")) {
    try {
      int n = std::stoi(env);
      if (n > 0) return n;
    } catch (const std::exception&) {
    }
    fail("MEGA_NUM_THREADS must be a positive integer, got '", env, "'");
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
  current_threads() = threads > 0 ? threads : default_threads();
  omp_set_num_threads(current_threads());
}

int num_threads() { return current_threads(); }

}  // namespace mega
