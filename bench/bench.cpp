// The benchmark table and timer.
#include "bench/bench.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace mega::bench {

void Table::add(const Row& row) {
  rows_.push_back(row);
  const Row& r = rows_.back();
  double total = r.forward_ms + r.backward_ms;
  double gflops = r.flops > 0 && total > 0 ? r.flops / (total * 1e6) : 0;
  std::printf("%-22s %-34s fwd %9.3f ms  bwd %9.3f ms  %8.1f GFLOP/s  %s\n", r.op.c_str(), r.shape.c_str(),
              r.forward_ms, r.backward_ms, gflops, r.note.c_str());
  std::fflush(stdout);
}

void Table::print() const {
  for (const Row& r : rows_) {
    double total = r.forward_ms + r.backward_ms;
    std::printf("%-22s %-34s %9.3f ms %9.3f ms %8.1f GFLOP/s %s\n", r.op.c_str(), r.shape.c_str(), r.forward_ms,
                r.backward_ms, r.flops > 0 && total > 0 ? r.flops / (total * 1e6) : 0.0, r.note.c_str());
  }
}

void Table::write_json(const std::string& path) const {
  nlohmann::json rows = nlohmann::json::array();
  for (const Row& r : rows_) {
    double total = r.forward_ms + r.backward_ms;
    rows.push_back({{"op", r.op},
                    {"shape", r.shape},
                    {"forward_ms", r.forward_ms},
                    {"backward_ms", r.backward_ms},
                    {"gflops", r.flops > 0 && total > 0 ? r.flops / (total * 1e6) : 0.0},
                    {"note", r.note}});
  }
  std::ofstream out(path);
  MEGA_CHECK(out.good(), "cannot write benchmark results to '", path, "'");
  out << rows.dump(2) << "\n";
}

double median_ms(const std::function<void()>& body, int repeats) {
  body();  // warm-up: plans, primitives, caches
  std::vector<double> times;
  for (int i = 0; i < std::max(repeats, 1); ++i) {
    auto start = std::chrono::steady_clock::now();
    body();
    times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace mega::bench
