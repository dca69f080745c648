// FFTW plan cache: one forward and one inverse plan per (length, batch), created under a mutex because
// FFTW's planner is not thread-safe, then executed with fftwf_execute_dft_r2c/c2r on the caller's arrays,
// which FFTW allows from any number of threads.
#include "ops/fft.h"

#include <fftw3.h>

#include <map>
#include <mutex>
#include <utility>

#include "core/error.h"

namespace mega::fft {

int64_t fast_length(int64_t at_least) {
  MEGA_CHECK(at_least >= 1, "[fft] length must be positive, got ", at_least);
  for (int64_t n = at_least + (at_least & 1);; n += 2) {
    int64_t m = n;
    for (int64_t f : {2, 3, 5, 7})
      while (m % f == 0) m /= f;
    if (m == 1) return n;
  }
}

void FreeFftw::operator()(void* p) const { fftwf_free(p); }

Buffer<float> real_buffer(int64_t count) {
  auto* p = static_cast<float*>(fftwf_malloc(sizeof(float) * static_cast<size_t>(count)));
  MEGA_CHECK(p != nullptr, "[fft] out of memory for ", count, " floats");
  return Buffer<float>(p);
}

Buffer<std::complex<float>> complex_buffer(int64_t count) {
  auto* p = static_cast<std::complex<float>*>(fftwf_malloc(sizeof(fftwf_complex) * static_cast<size_t>(count)));
  MEGA_CHECK(p != nullptr, "[fft] out of memory for ", count, " complex values");
  return Buffer<std::complex<float>>(p);
}

namespace {

struct Plans {
  fftwf_plan forward = nullptr;
  fftwf_plan inverse = nullptr;
};

// Plans by (length, batch), made on first use and destroyed at exit (with FFTW's planner state), so a leak
// checker sees nothing left behind.
class PlanCache {
 public:
  PlanCache() = default;
  PlanCache(const PlanCache&) = delete;
  PlanCache& operator=(const PlanCache&) = delete;
  ~PlanCache() {
    for (auto& entry : plans_) {
      fftwf_destroy_plan(entry.second.forward);
      fftwf_destroy_plan(entry.second.inverse);
    }
    fftwf_cleanup();
  }

  const Plans& get(int64_t n, int64_t batch) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = plans_.find({n, batch});
    if (found != plans_.end()) return found->second;
    MEGA_CHECK(n <= (int64_t{1} << 30) && batch <= (int64_t{1} << 30), "[fft] transform too large: n ", n,
               " batch ", batch);
    int length = static_cast<int>(n), count = static_cast<int>(batch), bins = length / 2 + 1;
    // FFTW_ESTIMATE, not FFTW_MEASURE: MEASURE picks among candidate algorithms by timing them, so two runs
    // of one recipe could get different plans, whose sums round differently, and identical trainings parted
    // from about step 10. ESTIMATE decides from the sizes alone: the same plan, the same bits, every run.
    // FFTW_UNALIGNED: callers execute on sub-blocks of their buffers, which need not be aligned like the
    // planning arrays; a plan made without this flag may use aligned SIMD loads and crashes there (it did,
    // at L 2000 with truncation 1024 on two threads). ESTIMATE never touches the arrays; they only tell
    // the planner the transform is out of place.
    Buffer<float> real = real_buffer(n * batch);
    Buffer<std::complex<float>> spectrum = complex_buffer(bins * batch);
    auto* c = reinterpret_cast<fftwf_complex*>(spectrum.get());
    Plans plans;
    plans.forward = fftwf_plan_many_dft_r2c(1, &length, count, real.get(), nullptr, 1, length, c, nullptr, 1,
                                            bins, FFTW_ESTIMATE | FFTW_PRESERVE_INPUT | FFTW_UNALIGNED);
    plans.inverse = fftwf_plan_many_dft_c2r(1, &length, count, c, nullptr, 1, bins, real.get(), nullptr, 1,
                                            length, FFTW_ESTIMATE | FFTW_UNALIGNED);
    if (!plans.forward || !plans.inverse) {
      fftwf_destroy_plan(plans.forward);  // FFTW ignores a null plan
      fftwf_destroy_plan(plans.inverse);
      fail("[fft] FFTW could not plan length ", n, " batch ", batch);
    }
    return plans_.emplace(std::make_pair(n, batch), plans).first->second;
  }

 private:
  std::mutex mutex_;
  std::map<std::pair<int64_t, int64_t>, Plans> plans_;
};

const Plans& plans_for(int64_t n, int64_t batch) {
  static PlanCache cache;
  return cache.get(n, batch);
}

}  // namespace

void forward(int64_t n, int64_t batch, const float* real, std::complex<float>* spectrum) {
  // FFTW's r2c signature takes a non-const input; an out-of-place r2c plan does not write it.
  fftwf_execute_dft_r2c(plans_for(n, batch).forward, const_cast<float*>(real),
                        reinterpret_cast<fftwf_complex*>(spectrum));
}

void inverse(int64_t n, int64_t batch, std::complex<float>* spectrum, float* real) {
  fftwf_execute_dft_c2r(plans_for(n, batch).inverse, reinterpret_cast<fftwf_complex*>(spectrum), real);
}

}  // namespace mega::fft
