// The op benchmarks behind `mega bench ops`: each family adds rows (forward and backward time, GFLOP/s)
// to one table, printed and optionally written as JSON. Timings are medians over repeats.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "nn/config.h"

namespace mega::bench {

struct Row {
  std::string op;           // "linear", "ema", ...
  std::string shape;        // "B=8 L=1024 D=128"
  double forward_ms = 0;
  double backward_ms = 0;   // 0 when not measured
  double flops = 0;         // forward + backward floating-point operations, 0 when not meaningful
  std::string note;         // "fft", "direct", "oneDNN sgemm peak", ...
};

struct Options {
  bool quick = false;      // smaller shapes and fewer repeats (CI smoke run)
  std::string filter;      // run only families whose name contains this
};

class Table {
 public:
  void add(const Row& row);
  void print() const;
  void write_json(const std::string& path) const;
  const std::vector<Row>& rows() const { return rows_; }

 private:
  std::vector<Row> rows_;
};

// Median wall time of `body` in milliseconds over `repeats` runs after one warm-up.
double median_ms(const std::function<void()>& body, int repeats);

// One function per op family; bench/cmd_bench.cpp lists them.
void bench_matmul(Table& table, const Options& options);
void bench_norm(Table&, const Options&);
void bench_ema(Table&, const Options&);
void bench_attention(Table&, const Options&);
void bench_model(Table&, const Options&);
void bench_adaptive(Table&, const Options&);

// `mega bench train ...` (bench/train_bench.cpp), the arguments after "train".
int train_command(const std::vector<std::string>& args);
// The encoder of ../shared/baselines/torch_mega/bench_torch.py's listops_config at this length; chunk 0:
// full attention.
MegaConfig baseline_mega_config(int64_t length, int64_t chunk);
// Matmul FLOPs per token of the encoder at this length: projections (v, mx, h), attention QK^T and AV over
// the keys a query sees (the chunk or the sequence), the FFN, and the EMA's convolution on the path
// ema_auto_path takes (direct: 2 K D per direction; FFT: D (5 n log2 n + 3 n) / L). The head, embeddings
// and elementwise work are left out. training: x3 (backward is two products per forward one).
double model_flops_per_token(const MegaConfig& config, int64_t length, bool training);
// oneDNN sgemm GFLOP/s on a size^3 product, median of `repeats`.
double sgemm_peak_gflops(int64_t size, int repeats);

}  // namespace mega::bench
