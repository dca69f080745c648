// One OpenMP pool for the whole process. The thread count comes from set_num_threads (the --threads
// flag), else MEGA_NUM_THREADS (an integer in 1..kMaxThreads, else an error), else every core.
#pragma once
#include <omp.h>

#include <cstdint>

namespace mega {

// The most threads a run may ask for (--threads, MEGA_NUM_THREADS, train.threads). Fixed rather than a
// multiple of this machine's cores so a recipe valid here is valid on any machine; far above any
// useful count (past the cores, OpenMP threads only take turns), yet it catches a typo like 100000,
// which would make the runtime try to create that many OS threads.
constexpr int kMaxThreads = 1024;

void set_num_threads(int threads);  // <= 0 restores the default; above kMaxThreads is an error
int num_threads();
// Calls body(begin, end) over [0, n) split in contiguous blocks, one per thread; serial when n is
// smaller than `grain` so tiny loops do not pay for a parallel region.
template <class F>
void parallel_for(int64_t n, int64_t grain, F&& body) {
  if (n <= 0) return;
  if (n < grain || num_threads() == 1) {
    body(int64_t{0}, n);
    return;
  }
#pragma omp parallel
  {
    int64_t threads = omp_get_num_threads(), id = omp_get_thread_num();
    int64_t chunk = (n + threads - 1) / threads;
    int64_t begin = id * chunk, end = begin + chunk < n ? begin + chunk : n;
    if (begin < end) body(begin, end);
  }
}

}  // namespace mega
