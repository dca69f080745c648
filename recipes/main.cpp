// `mega`: the command line. Global options come before the subcommand; each subcommand parses its own.
#include <boost/program_options.hpp>
#include <iostream>
#include <map>

#include "core/error.h"
#include "core/threading.h"
#include "recipes/commands.h"

namespace po = boost::program_options;

namespace {

struct Command {
  int (*run)(const mega::cli::Args&);
  const char* summary;
};

const std::map<std::string, Command>& commands() {
  static const std::map<std::string, Command> table{
      {"version", {mega::cli::version, "version, commit, compiler, oneDNN/FFTW versions, ISA, threads"}},
      {"bench", {mega::cli::bench, "benchmarks: 'mega bench ops' times every op family"}},
      {"hf-run", {mega::cli::hf_run, "run an HF Mega checkpoint on an inputs file; outputs under fixture names"}},
      {"generate", {mega::cli::generate, "generate tokens from a causal Mega checkpoint with the cache"}},
      {"train-mlp", {mega::cli::train_mlp, "train a small MLP on a generated task (engine smoke run)"}},
      {"validate", {mega::cli::validate, "check a recipe without training and print it resolved"}},
      {"train", {mega::cli::train, "train a recipe: 'mega train RECIPE.yaml [key=value ...] [--resume]'"}},
      {"eval", {mega::cli::eval, "evaluate a checkpoint: 'mega eval RECIPE.yaml --checkpoint DIR'"}},
      {"predict", {mega::cli::predict, "classify lines of text: 'mega predict RECIPE.yaml --checkpoint DIR --input FILE'"}},
      {"report", {mega::cli::report, "an HTML page comparing run folders: 'mega report RUN_DIR... [-o FILE]'"}},
      {"listops-data", {mega::cli::listops_data, "generate a recipe's ListOps dataset (LRA format)"}},
      {"lra-data", {mega::cli::lra_data, "State of the Union as LRA Text/Retrieval in their release layouts"}},
      {"pathfinder-data", {mega::cli::pathfinder_data, "generate a Pathfinder/Path-X dataset (LRA layout)"}},
      {"lm-baselines", {mega::cli::lm_baselines, "unigram and add-one bigram baselines of a language-model recipe"}},
      {"lra-table", {mega::cli::lra_table, "the LRA table of finished runs next to the Mega paper's row"}},
  };
  return table;
}

void print_usage(const po::options_description& global) {
  std::cout << "usage: mega [--threads N] <command> [args...]\n\ncommands:\n";
  for (const auto& [name, command] : commands()) {
    std::cout << "  " << name << std::string(name.size() < 14 ? 14 - name.size() : 1, ' ') << command.summary
              << "\n";
  }
  std::cout << "\n" << global << "\nRun 'mega <command> --help' for a command's options.\n";
}

}  // namespace

int main(int argc, char** argv) {
  po::options_description global("global options");
  global.add_options()("help,h", "show this help")("threads", po::value<int>(),
                                                   "OpenMP threads (default: $MEGA_NUM_THREADS or all cores)");
  // Global options end at the first positional argument: the subcommand.
  int first = 1;
  while (first < argc && argv[first][0] == '-') {
    std::string a = argv[first];
    if (a == "--threads" && first + 1 < argc) first += 2;
    else first += 1;
  }
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(first, argv).options(global).run(), vm);
    po::notify(vm);
    if (vm.count("threads")) {
      const int threads = vm["threads"].as<int>();
      MEGA_CHECK(threads >= 1 && threads <= mega::kMaxThreads, "--threads must be in 1..", mega::kMaxThreads,
                 ", got ", threads);
      mega::set_num_threads(threads);
    }
    if (vm.count("help") || first >= argc) {
      print_usage(global);
      return first >= argc && !vm.count("help") ? 1 : 0;
    }
    std::string name = argv[first];
    auto found = commands().find(name);
    if (found == commands().end()) {
      std::cerr << "mega: unknown command '" << name << "'\n";
      print_usage(global);
      return 2;
    }
    mega::cli::Args args(argv + first + 1, argv + argc);
    return found->second.run(args);
  } catch (const po::error& e) {
    std::cerr << "mega: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "mega: error: " << e.what() << "\n";
    return 1;
  }
}
