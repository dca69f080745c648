// The `pathfinder` task row (data/task.h): LRA's Pathfinder at 32, 64, 128 or 256 pixels, read from the
// release's layout (data/pathfinder.h) or generated there by our generator (data/pathfinder_gen.h).
// Path-X is this row at resolution 128 with the hard difficulty (a sequence of 16384 pixels).
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "data/generated_dataset.h"
#include "data/pathfinder.h"
#include "data/pathfinder_gen.h"
#include "data/task.h"

namespace mega {

namespace {

bool known_resolution(int64_t resolution) {
  return resolution == 32 || resolution == 64 || resolution == 128 || resolution == 256;
}

// The generated tree is the one folder pathfinder<res> (holding <difficulty>/{imgs,metadata}), so the
// marker of generated_dataset covers the whole of it.
GeneratedDataset pathfinder_generated_dataset(const TaskSettings& s) {
  const int64_t resolution = s.get_int("resolution");
  const std::string difficulty = pathfinder_difficulty(s.get_string("difficulty"));
  const int64_t count = s.get_int("count");
  const uint64_t seed = static_cast<uint64_t>(s.get_int("seed"));
  GeneratedDataset dataset;
  dataset.generator = "pathfinder";
  dataset.settings = {{"resolution", resolution}, {"difficulty", difficulty}, {"count", count}, {"seed", seed}};
  dataset.files = {"pathfinder" + std::to_string(resolution)};
  dataset.write = [=](const std::string& folder) {
    write_pathfinder_dataset(folder, difficulty, pathfinder_preset(resolution, difficulty), count, seed);
  };
  return dataset;
}

std::vector<TaskKeyProblem> check_pathfinder(const TaskSettings& s) {
  std::vector<TaskKeyProblem> problems;
  if (!known_resolution(s.get_int("resolution")))
    problems.push_back({"resolution", "must be 32, 64, 128 (Path-X) or 256, got " + std::to_string(s.get_int("resolution"))});
  return problems;
}

TaskDescription describe_pathfinder(const TaskSettings& s) {
  TaskDescription d;
  d.input = TaskInput{.kind = InputKind::Pixels, .vocab_size = kPathfinderPixelLevels, .pad_id = 0,
                      .pixel_mean = kPathfinderPixelMean, .pixel_std = kPathfinderPixelStd};
  d.num_labels = kPathfinderClasses;
  d.metric = Metric::Accuracy;
  const std::string folder = "pathfinder" + std::to_string(s.get_int("resolution")) + "/" +
                             pathfinder_difficulty(s.get_string("difficulty"));
  d.files = {folder + "/metadata/*.npy", folder + "/imgs/*/*.png"};
  return d;
}

TaskSplits load_pathfinder_task(const DataSource& source) {
  const TaskSettings& s = source.settings;
  const int64_t resolution = s.get_int("resolution");
  const std::string difficulty = pathfinder_difficulty(s.get_string("difficulty"));
  if (source.generate) {
    const GeneratedDataset generated = pathfinder_generated_dataset(s);
    const GenerationLock lock(source.dir);
    if (!generated_dataset_ready(source.dir, generated)) {
      std::printf("generating %lld Pathfinder-%lld (%s) images into %s ...\n", static_cast<long long>(s.get_int("count")),
                  static_cast<long long>(resolution), difficulty.c_str(), source.dir.c_str());
      std::fflush(stdout);
      generate_dataset(source.dir, generated);
    }
  }
  const std::string dir = pathfinder_dir(source.dir, resolution, difficulty);
  MEGA_CHECK(std::filesystem::is_directory(dir + "/metadata"), "data.dir '", source.dir, "' lacks ", dir,
             "/metadata; put LRA's release (lra_release/lra_release) there or set data.generate=true");
  PathfinderSplits splits = load_pathfinder(source.dir, resolution, difficulty, static_cast<uint64_t>(s.get_int("split_seed")));
  if (splits.skipped_images > 0)
    std::printf("pathfinder: skipped %lld listed images that are missing or empty\n",
                static_cast<long long>(splits.skipped_images));
  // data.max_length cuts sequences like every task's (a full image is resolution^2 pixels).
  for (std::vector<SequenceExample>* split : {&splits.train, &splits.val, &splits.test})
    for (SequenceExample& e : *split)
      if (source.max_length > 0 && static_cast<int64_t>(e.ids.size()) > source.max_length) e.ids.resize(source.max_length);
  return TaskSplits{std::move(splits.train), std::move(splits.val), std::move(splits.test)};
}

}  // namespace

Task pathfinder_task() {
  auto integer = [](std::string name, int64_t def, double min, double max, std::string help) {
    return TaskKey{.name = std::move(name), .default_value = def, .min = min, .max = max, .choices = {},
                   .help = std::move(help)};
  };
  return Task{
      .name = "pathfinder",
      .help = "LRA Pathfinder / Path-X (resolution 128): are the two circles connected? 2 classes over pixels; "
              "LRA's release or our generator",
      .keys = {integer("resolution", 32, 32, 256, "image side: 32, 64, 128 (Path-X) or 256"),
               TaskKey{.name = "difficulty", .default_value = std::string("curv_baseline"),
                       .choices = {"curv_baseline", "curv_contour_length_9", "curv_contour_length_14", "easy",
                                   "intermediate", "hard"},
                       .help = "contour length: curv_baseline (easy), curv_contour_length_9 (intermediate), "
                               "curv_contour_length_14 (hard)"},
               integer("split_seed", 0, 0, 9.2e18, "seed of the random 80/10/10 train/val/test split"),
               integer("count", 200000, 10, 1e9, "generated images (data.generate)"),
               integer("seed", 0, 0, 9.2e18, "generator seed")},
      .check = check_pathfinder,
      .describe = describe_pathfinder,
      .load = load_pathfinder_task,
  };
}

}  // namespace mega
