// `mega bench ops [--json FILE] [--quick] [--filter NAME]`: every op family's benchmark in one table;
// `mega bench train ...` (bench/train_bench.cpp): the training step of a model.
#include <boost/program_options.hpp>
#include <iostream>

#include "bench/bench.h"
#include "core/threading.h"
#include "recipes/commands.h"

namespace po = boost::program_options;

namespace mega::cli {

int bench(const Args& args) {
  if (!args.empty() && args[0] == "train") return bench::train_command(Args(args.begin() + 1, args.end()));
  std::string what, json;
  bench::Options options;
  po::options_description described("mega bench ops options");
  described.add_options()("help,h", "show this help")("json", po::value(&json), "also write the rows as JSON")(
      "quick", po::bool_switch(&options.quick), "small shapes, few repeats")(
      "filter", po::value(&options.filter), "only families whose name contains this");
  po::options_description all;
  all.add(described).add_options()("what", po::value(&what));
  po::positional_options_description positional;
  positional.add("what", 1);
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(all).positional(positional).run(), vm);
  po::notify(vm);
  if (vm.count("help") || what != "ops") {
    std::cout << "usage: mega bench ops [options]\n       mega bench train --help\n" << described;
    return vm.count("help") ? 0 : 2;
  }
  struct Family {
    const char* name;
    void (*run)(bench::Table&, const bench::Options&);
  };
  const Family families[] = {
      {"matmul", bench::bench_matmul},
      {"norm", bench::bench_norm},
      {"ema", bench::bench_ema},
      {"attention", bench::bench_attention},
      {"model", bench::bench_model},
      {"adaptive", bench::bench_adaptive},
  };
  std::cout << "threads: " << num_threads() << "\n";
  bench::Table table;
  for (const Family& family : families)
    if (options.filter.empty() || std::string(family.name).find(options.filter) != std::string::npos)
      family.run(table, options);
  if (!json.empty()) table.write_json(json);
  return 0;
}

}  // namespace mega::cli
