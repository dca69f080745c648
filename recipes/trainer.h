// The trainer: one readable driver for a recipe, in the order a run happens.
//   setup     recipe -> the task's description (data/task.h: input kind, labels, metric), MegaConfig and
//             head options (the builders below), model, init, optimizer groups; everything that can fail
//             on the recipe alone is built before any data is read (check_setup does the same for
//             `mega validate`); then the task's splits (generated when data.generate and data.dir lacks
//             them), batch streams, schedule. The trainer names no task: data.task picks a table row.
//   train     micro-batches of batch_size, loss / accumulate, backward, clip, skip non-finite, step, zero;
//             train.max_nonfinite_steps skipped updates in a row stop the run as diverged
//   evaluate  loss and accuracy on val / test in eval mode without autograd
//   save      output_dir/checkpoints/step-N: model (HF layout), optimizer state, trainer_state.json
//             (step, data position, rng stream position, best val accuracy); keeps the last 2 and the best
//   resume    the newest valid checkpoint: a run resumed after a kill logs the same losses, bit for bit, as
//             one never interrupted (same thread count), since every source of change is in the checkpoint.
//             The recipe must match the run's recipe.yaml but for resumable_recipe_keys() (run_folder.h);
//             nothing is written until the resume is known to work.
// The run directory (output_dir) holds recipe.yaml (the resolved recipe), metrics.jsonl, checkpoints/
// and .lock (held by the one process that trains into it; run_folder.h).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include <vector>

#include "nn/lra_classifier.h"
#include "recipes/recipe.h"
#include "recipes/task_model.h"

namespace mega {

// ---- Builders: the only place where recipe keys turn into constructor arguments. ----

// The recipe's task row (data.task) described from its options; no data is read.
TaskDescription describe_task(const Recipe& recipe);

// What the dataset decides for the model when the recipe leaves it null.
struct TaskInfo {
  int64_t vocab_size = 0;
  int64_t num_labels = 0;
  int64_t pad_id = 0;
  std::vector<std::string> label_names{};  // config.json id2label when the task names its labels
};
TaskInfo task_info(const Recipe& recipe);  // from describe_task (listops: 17 tokens, 10 labels, pad 0)

MegaConfig mega_config_from_recipe(const Recipe& recipe, const TaskInfo& task);
LraClassifierOptions classifier_options_from_recipe(const Recipe& recipe, const TaskInfo& task);
// The model the recipe's model section and its task's input kind call for (make_task_model). An error
// in construction names the recipe key it comes from: "FILE:LINE: model.key: message".
// A language model's (model.head causal_lm, recipes/lm_objective.h) vocabulary size is lm_vocab_size when
// known (its train split read), else the task's (a stand-in for a word-level one in `mega validate`).
std::unique_ptr<TaskModel> build_model(const Recipe& recipe, int64_t lm_vocab_size = 0);

// Builds what train builds from the recipe before reading data (task description, model, optimizer
// groups, and the schedule when its length does not depend on the data) and returns every problem as
// "FILE:LINE: key: message"; none means train's construction will not fail on the recipe.
std::vector<std::string> check_setup(const Recipe& recipe);

// ---- The driver ----

struct EvalResult {
  double loss = 0;      // mean cross-entropy per example (a language model: per token, nats)
  double accuracy = 0;  // fraction correct
  int64_t examples = 0;
  double perplexity = 0;     // language models: exp(loss)
  double bits_per_byte = 0;  // language models: loss / ln 2
  int64_t tokens = 0;        // language models: tokens scored
  // What the task reports beside accuracy (TaskDescription f1_labels, groups): "f1_<label>" and
  // "<group>_accuracy" (absent when the split has no example of the group), in name order.
  std::map<std::string, double> scores{};
};
// "f1_spam 0.9712, hard-ham_accuracy 0.8840" (empty when there are no scores).
std::string format_scores(const EvalResult& result);

struct TrainSummary {
  int64_t steps = 0;
  EvalResult val, test;
  double best_val_accuracy = 0;
  double best_val_loss = -1;  // language models: the best (lowest) valid loss
  Metric metric = Metric::Accuracy;
  double seconds = 0;           // wall time of this process's training loop
  double tokens_per_second = 0; // training tokens (non-padding) per second, this process
};

struct TrainOptions {
  bool resume = false;   // continue from the newest checkpoint in output_dir/checkpoints
  bool terminal = false; // draw a progress bar instead of log lines
};

TrainSummary train(const Recipe& recipe, const TrainOptions& options);

// Loads a checkpoint folder's model and evaluates it on the recipe's val and test splits.
struct EvalSummary {
  EvalResult val, test;
  Metric metric = Metric::Accuracy;
};
EvalSummary evaluate_checkpoint(const Recipe& recipe, const std::string& checkpoint_dir);

// `mega predict`: the model saved in a checkpoint folder applied to raw texts, tokenized by the task's
// tokenizer saved with the checkpoint (the task must take text: Task::encode_texts).
struct Prediction {
  int64_t label = 0;
  std::vector<double> probabilities;  // softmax of the logits, label id order
};
struct Predictions {
  std::vector<std::string> label_names;  // config.json id2label in id order
  std::vector<Prediction> rows;          // one per text, in order
};
Predictions predict_texts(const Recipe& recipe, const std::string& checkpoint_dir, const std::vector<std::string>& texts);

}  // namespace mega
