// Our Pathfinder generator, modelled on Linsley et al. 2018 ("Learning long-range spatial dependencies
// with horizontal gated recurrent units", github.com/drewlinsley/pathfinder), which made LRA's data:
// two target snakes of short straight paddles grow from seeds `seed_distance` apart, each paddle turning
// at most `max_turn_degrees` from the previous one; distractor snakes and single paddles fill the rest;
// circles mark two snake ends: the origin of one target and the far end of the same target (label 1)
// or of the other (label 0). Strokes are anti-aliased by distance coverage.
//
// One deliberate difference: Linsley's paddles are dashes separated by the same margin that separates
// snakes. Ours are separated by a gap smaller than the stroke (`paddle_gap`), while different snakes,
// paddles and markers keep a clearance derived from the stroke width, so every snake (with its
// markers) is exactly one 8-connected set of inked pixels and no two touch: the label is then a fact
// about the drawn image (a flood fill from one marker reaches the other iff the label is 1), which the
// tests check.
#pragma once
#include <array>
#include <cstdint>
#include <string>

#include "data/png.h"

namespace mega {

struct PathfinderGeneratorOptions {
  int64_t resolution = 32;
  int64_t contour_length = 6;      // paddles per target snake: LRA's 6 / 9 / 14 by difficulty
  int64_t distractor_length = 2;   // paddles per distractor snake: LRA's contour_length / 3
  int64_t distractor_snakes = 10;  // LRA: 20 / distractor_length at 32 px (22 at 64, 35 at 128)
  int64_t single_paddle_tries = 256;  // random placements tried for single distractor paddles
  double paddle_length = 2;        // pixels
  double paddle_thickness = 1;     // stroke width in pixels (coverage ramps over one more pixel)
  double paddle_gap = 0.5;         // between consecutive paddles of a snake; below the stroke width
  double max_turn_degrees = 30;    // the bound on the angle between consecutive paddles
  double seed_distance = 7;        // between the origins of the two target snakes
  double marker_radius = 1.5;
  double padding = 1;              // paddles stay this far inside the image
  int64_t max_paddle_tries = 20;   // directions tried for each new paddle before a snake gives up
  int64_t max_image_tries = 2000;  // fresh starts for the two target snakes before an error
};

// LRA's configurations (lra_benchmarks/data/pathfinder.py docstrings) in our units: resolution 32,
// 64, 128 or 256 and a difficulty (data/pathfinder.h: curv_baseline, curv_contour_length_9,
// curv_contour_length_14 or easy / intermediate / hard). Path-X is (128, hard).
PathfinderGeneratorOptions pathfinder_preset(int64_t resolution, const std::string& difficulty);

struct PathfinderSample {
  GreyImage image;
  int64_t label = 0;
  std::array<std::array<double, 2>, 2> markers{};  // marker centres (x, y) in pixels, for tests
};

// One image with the given label, a pure function of (options, label, seed, stream).
PathfinderSample generate_pathfinder_sample(const PathfinderGeneratorOptions& options, int64_t label,
                                            uint64_t seed, uint64_t stream);

// The label of image `index` of a dataset of seed `seed`: images 2k and 2k+1 get one label each, in a
// random order, so the labels are balanced exactly (for an even count) and unpredictable from order.
int64_t pathfinder_label(uint64_t seed, int64_t index);

// Writes `count` images under ROOT/pathfinder<res>/<difficulty>/ in the layout of LRA's release
// (data/pathfinder.h): imgs/<n>/sample_<i>.png and metadata/<n>.npy, `images_per_folder` per n. The
// fields of a metadata line follow Linsley's: folder, file, index, label, then our max turn (degrees),
// contour length, distractor length, paddle length, thickness, gap and the number of contrasts (1).
// The tree is built in a hidden sibling folder and renamed into place when complete; an existing
// folder is an error, never overwritten. Images are drawn on the thread pool; the bytes written do not
// depend on the thread count.
void write_pathfinder_dataset(const std::string& root, const std::string& difficulty,
                              const PathfinderGeneratorOptions& options, int64_t count, uint64_t seed,
                              int64_t images_per_folder = 1000);

}  // namespace mega
