// `mega pathfinder-data`: generates a Pathfinder / Path-X dataset with our generator
// (data/pathfinder_gen.h) in the layout of LRA's release, then reads it back with the loader and
// reports the counts, labels and speed.
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>

#include "core/threading.h"
#include "data/pathfinder.h"
#include "data/pathfinder_gen.h"
#include "recipes/commands.h"
#include "recipes/cli_options.h"

namespace po = boost::program_options;

namespace mega::cli {

int pathfinder_data(const Args& args) {
  std::string out, difficulty = "curv_baseline";
  int64_t resolution = 32, count = 0, images_per_folder = 1000;
  uint64_t seed = 0, split_seed = 0;
  int threads = 0;
  po::options_description description("mega pathfinder-data options");
  description.add_options()("help,h", "show this help")(
      "out", po::value(&out)->required(), "root folder: writes OUT/pathfinder<res>/<difficulty>/")(
      "resolution", po::value(&resolution)->default_value(resolution), "32, 64, 128 (Path-X) or 256")(
      "difficulty", po::value(&difficulty)->default_value(difficulty),
      "curv_baseline (easy), curv_contour_length_9 (intermediate) or curv_contour_length_14 (hard)")(
      "count", po::value(&count)->required(), "number of images")(
      "seed", po::value(&seed)->default_value(0), "generator seed")(
      "split-seed", po::value(&split_seed)->default_value(0), "seed of the 80/10/10 split in the report")(
      "images-per-folder", po::value(&images_per_folder)->default_value(images_per_folder),
      "images per imgs/<n> folder and metadata/<n>.npy file")(
      "threads", po::value(&threads), "threads (as 'mega --threads N'; default MEGA_NUM_THREADS or every core)");
  po::variables_map vm;
  if (!parse_command_options(args, description, vm)) return 0;
  if (vm.count("threads")) set_num_threads(threads);

  const PathfinderGeneratorOptions options = pathfinder_preset(resolution, difficulty);
  auto start = std::chrono::steady_clock::now();
  write_pathfinder_dataset(out, difficulty, options, count, seed, images_per_folder);
  const double generated = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::string dir = pathfinder_dir(out, resolution, difficulty);
  std::printf("wrote %lld images to %s in %.2f s (%.0f images/s, %d threads)\n", static_cast<long long>(count),
              dir.c_str(), generated, count / generated, num_threads());

  start = std::chrono::steady_clock::now();
  PathfinderSplits splits = load_pathfinder(out, resolution, difficulty, split_seed);
  const double loaded = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("read back in %.2f s, %lld images skipped (missing or empty)\n", loaded,
              static_cast<long long>(splits.skipped_images));
  const std::pair<const char*, const std::vector<SequenceExample>&> parts[] = {
      {"train", splits.train}, {"val", splits.val}, {"test", splits.test}};
  for (const auto& [name, examples] : parts) {
    int64_t positives = 0;
    for (const SequenceExample& e : examples) positives += e.label;
    std::printf("%-5s %7zu examples of %lld pixels, label 1: %lld\n", name, examples.size(),
                static_cast<long long>(resolution * resolution), static_cast<long long>(positives));
  }
  return 0;
}

}  // namespace mega::cli
