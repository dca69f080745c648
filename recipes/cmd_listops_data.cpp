// `mega listops-data RECIPE.yaml [key=value ...]`: writes the recipe's ListOps dataset (data.dir, with the
// data.listops.* settings) and reports what the loader reads back: counts, lengths and labels.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <utility>

#include "data/listops.h"
#include "recipes/commands.h"
#include "recipes/recipe.h"

namespace mega::cli {

int listops_data(const Args& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << "usage: mega listops-data RECIPE.yaml [key.sub=value ...]\n"
                 "Generates data.dir/basic_{train,val,test}.tsv from data.listops.* (a folder already generated\n"
                 "with the same settings is kept; one with other settings or foreign files is refused).\n";
    return args.empty() ? 2 : 0;
  }
  Recipe recipe = load_recipe(args[0], Args(args.begin() + 1, args.end()));
  const DataRecipe& d = recipe.data;
  MEGA_CHECK(d.task == "listops", "listops-data: the recipe's data.task is '", d.task, "'");
  const GeneratedDataset generated =
      listops_generated_dataset(d.source.settings);
  const GenerationLock lock(d.source.dir);
  if (generated_dataset_ready(d.source.dir, generated)) {
    std::printf("%s already holds this generation (%s); nothing written\n", d.source.dir.c_str(), kGeneratedMarker);
  } else {
    auto start = std::chrono::steady_clock::now();
    generate_dataset(d.source.dir, generated);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("wrote %s/basic_{train,val,test}.tsv in %.1f s\n", d.source.dir.c_str(), seconds);
  }
  ListOpsSplits splits = load_listops_splits(d.source.dir, d.source.max_length);
  const std::pair<const char*, const ListOpsFile&> files[] = {
      {"train", splits.train}, {"val", splits.val}, {"test", splits.test}};
  for (const auto& [split, file] : files) {
    std::array<int64_t, kListOpsClasses> labels{};
    int64_t longest = 0, total = 0;
    for (const SequenceExample& e : file.examples) {
      labels[e.label] += 1;
      longest = std::max<int64_t>(longest, static_cast<int64_t>(e.ids.size()));
      total += static_cast<int64_t>(e.ids.size());
    }
    std::printf("%-5s %6zu examples, mean length %.0f, longest %lld, truncated %lld; labels 0-9:", split,
                file.examples.size(), static_cast<double>(total) / std::max<size_t>(file.examples.size(), 1),
                static_cast<long long>(longest), static_cast<long long>(file.truncated));
    for (int64_t count : labels) std::printf(" %lld", static_cast<long long>(count));
    std::printf("\n");
  }
  return 0;
}

}  // namespace mega::cli
