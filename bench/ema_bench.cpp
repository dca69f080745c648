// The EMA at the LRA shape (B 8, D 128, N 16, bidirectional) over L = 1K..16K, plus both convolution
// paths forced at short lengths to show where the FFT overtakes the direct sums (the crossover the Auto
// path encodes in ops/ema.cpp).
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "bench/bench.h"
#include "core/rng.h"
#include "ops/ema_internal.h"
#include "ops/fft.h"

namespace mega::bench {

static Tensor random_f32(const Shape& shape, uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(rng.normal(0, i) * scale);
  return t;
}

static const char* path_name(EmaPath path) {
  return path == EmaPath::Fft ? "fft" : path == EmaPath::Direct ? "direct" : "auto";
}

// Median CPU time of the whole process (all threads) in ms: on a shared machine wall time also counts the
// time other processes hold the cores, CPU time only the work this op did.
static double median_cpu_ms(const std::function<void()>& body, int repeats) {
  auto cpu_ms = [] {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
  };
  std::vector<double> times;
  for (int i = 0; i < std::max(repeats, 1); ++i) {
    double start = cpu_ms();
    body();
    times.push_back(cpu_ms() - start);
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// Times forward and backward of one shape on one path; backward is (forward + backward) - forward. The
// note adds the same two numbers in CPU time.
static void time_ema(Table& table, int64_t B, int64_t L, int64_t D, int64_t N, EmaPath path, int repeats,
                     const std::string& note) {
  int64_t rows = 2 * D;
  Var x(random_f32({B, L, D}, 1), true);
  EmaParams params{Var::parameter(random_f32({rows, N, 1}, 2, 0.2)), Var::parameter(random_f32({rows, N, 1}, 3, 0.2)),
                   Var::parameter(random_f32({rows, N, 1}, 4, 0.02)), Var::parameter(random_f32({rows, N}, 5)),
                   Var::parameter(random_f32({D}, 6))};
  Tensor cotangent = random_f32({B, L, D}, 7);
  Var y;
  double fwd = median_ms([&] { y = ema_with_path(x, params, Tensor(), true, 0, path); }, repeats);
  double total = median_ms([&] {
    Var yy = ema_with_path(x, params, Tensor(), true, 0, path);
    yy.backward(cotangent);
  }, repeats);
  double cpu_fwd = median_cpu_ms([&] { y = ema_with_path(x, params, Tensor(), true, 0, path); }, repeats);
  double cpu_total = median_cpu_ms([&] {
    Var yy = ema_with_path(x, params, Tensor(), true, 0, path);
    yy.backward(cotangent);
  }, repeats);
  EmaPath taken = path == EmaPath::Auto ? ema_auto_path(L, L, 2) : path;
  std::ostringstream shape, what;
  shape << "B=" << B << " L=" << L << " D=" << D << " N=" << N << " bi";
  what << path_name(taken);
  if (taken == EmaPath::Fft) what << " n=" << fft::fast_length(2 * L - 1);
  if (!note.empty()) what << " " << note;
  char cpu[64];
  std::snprintf(cpu, sizeof cpu, " cpu fwd %.2f bwd %.2f ms", cpu_fwd, std::max(cpu_total - cpu_fwd, 0.0));
  what << cpu;
  table.add({"ema", shape.str(), fwd, std::max(total - fwd, 0.0), 0, what.str()});
}

void bench_ema(Table& table, const Options& options) {
  int repeats = options.quick ? 2 : 5;
  int64_t B = options.quick ? 2 : 8, D = options.quick ? 16 : 128, N = 16;
  // The crossover: both paths at short lengths (the direct path costs 2 L^2 per channel).
  std::vector<int64_t> short_lengths = options.quick ? std::vector<int64_t>{32, 128}
                                                     : std::vector<int64_t>{32, 48, 64, 128, 256, 512, 1024};
  for (int64_t L : short_lengths) {
    time_ema(table, B, L, D, N, EmaPath::Direct, L >= 512 ? 2 : repeats, "crossover");
    time_ema(table, B, L, D, N, EmaPath::Fft, repeats, "crossover");
  }
  // The scaling in L on the path Auto picks (16x the length should cost about 16 log 16K / log 1K = 22x).
  std::vector<int64_t> lengths = options.quick ? std::vector<int64_t>{256, 1024}
                                               : std::vector<int64_t>{1024, 2048, 4096, 8192, 16384};
  for (int64_t L : lengths) time_ema(table, B, L, D, N, EmaPath::Auto, options.quick ? 2 : 3, "scaling");
}

}  // namespace mega::bench
