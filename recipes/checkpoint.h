// Checkpoints of a run: output_dir/checkpoints/step-NNNNNNNN/ holding the model in HF's layout
// (config.json + model.safetensors, so `from_pretrained(dir)` opens it), optimizer.safetensors and
// trainer_state.json (step, RNG and data position, best metric). A checkpoint is written into a hidden
// temporary folder and renamed into place, so a kill while saving never leaves a half checkpoint
// under a real name; a checkpoint of a step saved again replaces the old one, which is renamed aside
// first and removed last (a kill between the two renames is repaired when the folder is next opened).
// Only folders named step-<digits> are checkpoints. Loading validates the files, and refuses NaN or infinite weights and
// negative second moments (run_folder.h picks the newest checkpoint that loads).
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/tensor.h"

namespace mega {

struct Checkpoint {
  nlohmann::json config;                    // HF config.json
  std::map<std::string, Tensor> model;      // HF state-dict names
  std::map<std::string, Tensor> optimizer;  // the optimizer's state
  nlohmann::json trainer_state;             // step, rng, data position, best, ...
  // Further files that travel with the model, by path relative to the folder ("tokenizer/tokenizer.json",
  // a language model's "dict.txt"): what the task learnt from the data, so eval and predict read the
  // inputs as training did. Written, not read back by load (the run folder keeps the originals).
  std::map<std::string, std::string> files;
};

class CheckpointDir {
 public:
  explicit CheckpointDir(const std::string& run_dir);

  // Writes step `step` atomically, then removes all but the newest `keep_last` and `keep_also` (the
  // best step, when there is one). Returns the checkpoint's folder.
  std::string save(int64_t step, const Checkpoint& checkpoint, int64_t keep_last,
                   std::optional<int64_t> keep_also = std::nullopt);
  // Complete checkpoints, oldest first (temporary folders of an interrupted save are not listed).
  std::vector<std::string> list() const;
  std::optional<std::string> newest() const;
  // Renames a checkpoint that cannot be resumed from (a resume skipped it) to .step-N.unusable, kept
  // for inspection but no longer listed, so it neither blocks the next resume nor counts as kept.
  // Returns the new path.
  std::string set_aside(const std::string& dir);

  // Reads and validates one checkpoint folder (files, finite tensors, exp_avg_sq >= 0); errors name the
  // folder and the file.
  static Checkpoint load(const std::string& dir);

 private:
  std::string root_;
};

}  // namespace mega
