// The run folder (output_dir) across processes: one run at a time writes it, and a resumed run is the
// same run. Three pieces the trainer's driver uses:
//   RunFolderLock        flock on output_dir/.lock for the run's life; a second run is refused at once,
//                        naming the holder's pid (`mega eval` only reads, and takes no lock)
//   check_resume_recipe  the recipe of a resumed run against output_dir/recipe.yaml: keys that change
//                        what an update computes must match; resumable_recipe_keys() may differ
//   TrainerState         trainer_state.json of a checkpoint, every field range-checked on reading
//   newest_valid_checkpoint  the newest checkpoint that loads and validates; newer broken ones are
//                        skipped, each with a warning saying why
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/batching.h"
#include "recipes/checkpoint.h"
#include "recipes/recipe.h"

namespace mega {

class RunFolderLock {
 public:
  // Creates run_dir when missing and locks it; fails (naming the folder and the holder's pid) when
  // another process holds the lock. The lock goes with the process, so a killed run leaves none.
  explicit RunFolderLock(const std::string& run_dir);
  ~RunFolderLock();
  RunFolderLock(const RunFolderLock&) = delete;
  RunFolderLock& operator=(const RunFolderLock&) = delete;

 private:
  int fd_ = -1;
};

// Keys a resumed run may set differently from the run folder's recipe.yaml: how long to run, how often
// to evaluate, save and log, how many threads, where the run folder and dataset are found, and the
// divergence guard. Every other key changes the updates, so a change is refused.
const std::vector<std::string>& resumable_recipe_keys();

// Fails, listing each differing key with both values, when `recipe` differs from
// run_dir/recipe.yaml in a key outside resumable_recipe_keys(). A run folder without recipe.yaml (a
// run stopped before writing it) has nothing to compare.
// A run of world_size_then ranks may resume on world_size_now ranks when the global batch
// (train.batch_size x ranks) stays the same: train.batch_size then differs as it must.
void check_resume_recipe(const Recipe& recipe, const std::string& run_dir, int64_t world_size_then = 1,
                         int64_t world_size_now = 1);

// Everything besides the model and optimizer that the next update depends on.
struct TrainerState {
  int64_t step = 0;
  DataPosition data;
  uint64_t rng_stream = 0;
  double best_val_accuracy = -1;  // classification's best; -1: none (or a language model, best by loss)
  double best_val_loss = -1;      // a language model's best (lowest) valid loss per token; -1: none
  int64_t best_step = -1;
  double loss_since_log = 0;  // sum of the finite losses of the steps since the last log row
  int64_t steps_since_log = 0;  // how many losses loss_since_log holds
  int64_t skipped_steps = 0;    // updates skipped for a non-finite loss or gradient, in all
  int64_t nonfinite_streak = 0; // of them, the consecutive ones up to `step`
  int64_t world_size = 1;       // MPI ranks of the run that saved it (recipes/distributed.h)

  nlohmann::json to_json() const;
  // Reads and range-checks every field; errors name `file`.
  static TrainerState from_json(const nlohmann::json& j, const std::string& file);
  // Checks the state against the run the recipe describes: the data position must be where `step`
  // updates of `accumulate` batches lead, and `step` must not lie past `total_updates`.
  void check_fits(const std::string& file, const BatchSource& batches, int64_t accumulate, int64_t total_updates) const;
};

struct ResumePoint {
  std::string dir;
  Checkpoint checkpoint;
  TrainerState state;
  std::vector<std::string> skipped;  // newer checkpoint folders that did not load, newest first
};

// The newest checkpoint of `checkpoints` that loads and validates (files, finite weights, optimizer
// state, trainer state, the step its folder is named after). Every newer one skipped adds a line to
// `warnings` and names the folder in ResumePoint::skipped (the trainer sets those aside with
// CheckpointDir::set_aside once the resume is known to work). No checkpoint at all: nullopt; checkpoints but none valid: an error with every reason.
std::optional<ResumePoint> newest_valid_checkpoint(const CheckpointDir& checkpoints, std::vector<std::string>& warnings);

}  // namespace mega
