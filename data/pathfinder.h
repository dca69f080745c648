// Pathfinder and Path-X (Linsley et al. 2018; Long Range Arena, Tay et al. 2021): is there a path
// between the two circles? Images are read from the layout of LRA's release (lra_release.gz), which our
// generator (data/pathfinder_gen.h) also writes:
//   ROOT/pathfinder{32,64,128}/<difficulty>/metadata/<n>.npy    text despite the name: one line per image,
//                                                                 whitespace-separated fields, 0 the
//                                                                 sub-folder, 1 the file name, 3 the label
//   ROOT/pathfinder{32,64,128}/<difficulty>/imgs/<n>/sample_<i>.png
// (LRA's lra_benchmarks/data/pathfinder.py: image = <difficulty>/<field 0>/<field 1>, label = int(field 3)).
// Difficulties: curv_baseline (easy), curv_contour_length_9 (intermediate), curv_contour_length_14
// (hard); Path-X is pathfinder128 (hard), a sequence of 16384 pixels.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/batching.h"
#include "data/task.h"

namespace mega {

// The model sees one grey value per step, pixels in row-major order: ids are the intensities 0-255
// (a vocabulary of 256 when embedded), and a model that reads them as numbers scales them to [0, 1]
// (x / 255) and then normalises with this mean and std, as LRA's input pipeline and S4/Mega do:
// (x / 255 - 0.5) / 0.5, in [-1, 1].
constexpr int64_t kPathfinderPixelLevels = 256;
constexpr double kPathfinderPixelMean = 0.5;
constexpr double kPathfinderPixelStd = 0.5;
constexpr int64_t kPathfinderClasses = 2;

// "easy" | "curv_baseline" -> "curv_baseline", "intermediate" | "curv_contour_length_9", "hard" |
// "curv_contour_length_14"; anything else is an error listing the names.
std::string pathfinder_difficulty(const std::string& name);
// ROOT/pathfinder<resolution>/<difficulty folder>; resolution 32, 64, 128 or 256.
std::string pathfinder_dir(const std::string& root, int64_t resolution, const std::string& difficulty);

struct PathfinderImages {
  std::vector<SequenceExample> examples;  // metadata files in numeric order (0.npy, 1.npy, ...), lines in order
  int64_t skipped_images = 0;  // listed in the metadata but missing or empty (LRA's release has a few)
};

// Reads every image listed under DIR/metadata/*.npy (DIR is a difficulty folder). Lines may end in LF or
// CRLF; blank lines are ignored. A line with fewer than 4 fields, a label other than 0 or 1, an image
// that is not `resolution` x `resolution`, or a corrupt PNG is an error naming the file (and line).
// Images are decoded on the process's thread pool (core/threading.h); the result does not depend on it.
PathfinderImages load_pathfinder_images(const std::string& dir, int64_t resolution);

struct PathfinderSplits {
  std::vector<SequenceExample> train, val, test;
  int64_t skipped_images = 0;
};

// A random 80/10/10 split (train gets floor(0.8 n), val floor(0.1 n), test the rest), a pure function of
// (examples, seed): a Philox-driven Fisher-Yates permutation, the same on every machine.
PathfinderSplits split_pathfinder(std::vector<SequenceExample> examples, uint64_t seed);

// load_pathfinder_images(pathfinder_dir(root, resolution, difficulty), resolution), then the split.
PathfinderSplits load_pathfinder(const std::string& root, int64_t resolution, const std::string& difficulty,
                                 uint64_t split_seed);

// The task row (data/lra_pathfinder_task.cpp), data.task = pathfinder: keys data.pathfinder.{resolution,
// difficulty, split_seed, count, seed}; with data.generate it writes `count` images with our generator
// into data.dir/pathfinder<res>/ (atomically, through data/generated_dataset.h). Path-X: resolution 128.
Task pathfinder_task();

}  // namespace mega
