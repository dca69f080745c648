// `mega validate RECIPE.yaml [key=value ...]`: loads a recipe with its bases and overrides, checks every
// key, type, range and cross-key constraint without training, and prints the resolved recipe.
#include <iostream>

#include "recipes/commands.h"
#include "recipes/recipe.h"

namespace mega::cli {

int validate(const Args& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << "usage: mega validate RECIPE.yaml [key.sub=value ...]\n"
                 "Checks the recipe (bases, overrides, every key known, every value in range) and prints it\n"
                 "resolved, every key with its value.\n";
    return args.empty() ? 2 : 0;
  }
  Recipe recipe = load_recipe(args[0], Args(args.begin() + 1, args.end()));
  std::cout << recipe_to_yaml(recipe);
  std::cerr << "recipe OK: " << args[0] << "\n";
  return 0;
}

}  // namespace mega::cli
