// `mega train RECIPE.yaml [key.sub=value ...] [--resume]` runs the trainer (recipes/trainer.h) and prints a
// summary; `mega eval RECIPE.yaml --checkpoint DIR [key.sub=value ...]` evaluates a saved model on the
// recipe's val and test splits.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "recipes/commands.h"
#include "recipes/distributed.h"
#include "recipes/metrics.h"
#include "recipes/trainer.h"

namespace mega::cli {

namespace {

// "val loss 4.1234 nats/token, perplexity 61.78 (245569 tokens)" or "..., bits per byte 1.0200 (...)".
void print_lm_result(const char* split, const EvalResult& r, Metric metric) {
  if (metric == Metric::Perplexity)
    std::printf("%s loss %.4f nats/token, perplexity %.2f (%lld tokens)\n", split, r.loss, r.perplexity,
                static_cast<long long>(r.tokens));
  else
    std::printf("%s loss %.4f nats/byte, bits per byte %.4f (%lld bytes)\n", split, r.loss, r.bits_per_byte,
                static_cast<long long>(r.tokens));
}

}  // namespace

int train(const Args& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << "usage: mega train RECIPE.yaml [key.sub=value ...] [--resume]\n"
                 "Trains the recipe's model; output_dir receives recipe.yaml, metrics.jsonl and checkpoints/.\n"
                 "--resume continues from the newest checkpoint in output_dir/checkpoints.\n";
    return args.empty() ? 2 : 0;
  }
  TrainOptions options;
  Args overrides;
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--resume") options.resume = true;
    else if (!args[i].empty() && args[i][0] == '-') {
      std::cerr << "mega train: unknown option '" << args[i] << "'\n";
      return 2;
    } else overrides.push_back(args[i]);
  }
  Recipe recipe = load_recipe(args[0], overrides);
  options.terminal = isatty(fileno(stdout));
  Communicator& comm = Communicator::world();
  TrainSummary s;
  try {
    s = train(recipe, options);
  } catch (const std::exception& e) {
    if (comm.size() == 1) throw;
    // One rank's failure ends the job at once: the others would wait for it in their next collective.
    std::fprintf(stderr, "mega train: rank %d of %d: error: %s\n", comm.rank(), comm.size(), e.what());
    std::fflush(stderr);
    comm.abort(1);
  }
  if (!comm.is_root()) return 0;  // rank 0 reports
  std::printf("done: %lld updates in %s, %.0f tokens/s\n", static_cast<long long>(s.steps),
              format_duration(s.seconds).c_str(), s.tokens_per_second);
  if (s.metric != Metric::Accuracy) {
    print_lm_result("val", s.val, s.metric);
    print_lm_result("test", s.test, s.metric);
    return 0;
  }
  std::printf("val accuracy %.4f (best %.4f), val loss %.4f\n", s.val.accuracy, s.best_val_accuracy, s.val.loss);
  std::printf("test accuracy %.4f, test loss %.4f (%lld examples)\n", s.test.accuracy, s.test.loss,
              static_cast<long long>(s.test.examples));
  if (!s.test.scores.empty()) std::printf("test %s\n", format_scores(s.test).c_str());
  return 0;
}

int eval(const Args& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << "usage: mega eval RECIPE.yaml --checkpoint DIR [key.sub=value ...]\n"
                 "Evaluates the model saved in DIR (a checkpoint folder) on the recipe's val and test splits.\n";
    return args.empty() ? 2 : 0;
  }
  std::string checkpoint;
  Args overrides;
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--checkpoint" && i + 1 < args.size()) checkpoint = args[++i];
    else if (!args[i].empty() && args[i][0] == '-') {
      std::cerr << "mega eval: unknown option '" << args[i] << "'\n";
      return 2;
    } else overrides.push_back(args[i]);
  }
  if (checkpoint.empty()) {
    std::cerr << "mega eval: --checkpoint DIR is required\n";
    return 2;
  }
  Recipe recipe = load_recipe(args[0], overrides);
  EvalSummary s = evaluate_checkpoint(recipe, checkpoint);
  if (s.metric != Metric::Accuracy) {
    print_lm_result("val", s.val, s.metric);
    print_lm_result("test", s.test, s.metric);
    return 0;
  }
  std::printf("val accuracy %.4f, val loss %.4f (%lld examples)\n", s.val.accuracy, s.val.loss,
              static_cast<long long>(s.val.examples));
  if (!s.val.scores.empty()) std::printf("val %s\n", format_scores(s.val).c_str());
  std::printf("test accuracy %.4f, test loss %.4f (%lld examples)\n", s.test.accuracy, s.test.loss,
              static_cast<long long>(s.test.examples));
  if (!s.test.scores.empty()) std::printf("test %s\n", format_scores(s.test).c_str());
  return 0;
}

}  // namespace mega::cli
