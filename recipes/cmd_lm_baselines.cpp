// `mega lm-baselines RECIPE.yaml [key.sub=value ...]`: the unigram and add-one bigram baselines of a
// language-modelling recipe, counted on its train split and scored on valid and test exactly as the model
// is (every token once, after the split's context token; recipes/lm_objective.h), so their perplexity or
// bits per byte sit next to the model's.
#include <cstdio>
#include <iostream>

#include "core/error.h"
#include "recipes/commands.h"
#include "recipes/lm_objective.h"
#include "recipes/trainer.h"

namespace mega::cli {

int lm_baselines(const Args& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << "usage: mega lm-baselines RECIPE.yaml [key.sub=value ...]\n"
                 "Unigram and add-one bigram loss and perplexity (word level) or bits per byte (byte level) of a\n"
                 "language-modelling recipe's valid and test splits, counted on its train split.\n";
    return args.empty() ? 2 : 0;
  }
  Recipe recipe = load_recipe(args[0], Args(args.begin() + 1, args.end()));
  const TaskDescription task = describe_task(recipe);
  MEGA_CHECK(is_language_model(task), problem_at(recipe, "data.task", "task " + recipe.data.task +
                                                                         " is not a language-modelling task"));
  TaskSplits data;
  try {
    data = task_named(recipe.data.task).load(recipe.data.source);
  } catch (const Error& e) {
    fail(problem_at(recipe, "data.dir", std::string("task ") + recipe.data.task + ": " + e.what()));
  }
  const Vocabulary& vocabulary = *data.vocabulary;
  const std::vector<int64_t>& train = data.train[0].ids;
  std::printf("%s: vocabulary %lld, train %zu tokens\n", recipe.data.task.c_str(),
              static_cast<long long>(vocabulary.size()), train.size());
  for (const auto& [name, split] : {std::pair{"valid", &data.val}, std::pair{"test", &data.test}}) {
    const std::vector<int64_t>& ids = (*split)[0].ids;
    for (const auto& [model, m] :
         {std::pair{"unigram", unigram_baseline(train, ids, vocabulary.size(), vocabulary.begin_id())},
          std::pair{"bigram (add-one)", bigram_baseline(train, ids, vocabulary.size(), vocabulary.begin_id())}}) {
      if (task.metric == Metric::Perplexity)
        std::printf("%-5s %-16s loss %.4f  perplexity %.2f  (%lld tokens)\n", name, model, m.loss, m.perplexity,
                    static_cast<long long>(m.tokens));
      else
        std::printf("%-5s %-16s loss %.4f  bits per byte %.4f  (%lld bytes)\n", name, model, m.loss, m.bits_per_byte,
                    static_cast<long long>(m.tokens));
    }
  }
  return 0;
}

}  // namespace mega::cli
