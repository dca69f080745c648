// Tasks as data: everything the trainer, `mega eval`, `mega validate` and the batcher need to know about a
// dataset, in one row of one table (task_table()). Nothing outside a row names a task; `data.task` picks
// the row. See data/README.md for adding one (ListOps is the worked example).
//
// A row says:
//   keys      its own recipe options, data.<task>.<key> (e.g. data.listops.max_depth); the recipe schema
//             takes them from the table
//   check     cross-key constraints on its own options (e.g. min_length <= max_length)
//   describe  what is known without reading any data: the input kind (token ids with a vocabulary and pad
//             id, pixel intensities 0-255 with a normalisation, or a pair of token sequences), the number
//             of labels, the metric and the files expected in data.dir
//   load      the train/val/test splits from data.dir, generated or fetched first when data.generate
//             allows it and data.dir lacks them
// A batch is formed from the description alone: make_batch (data/batching.h) with input.pad_id; a pair
// task's examples carry their second sequence in SequenceExample::pair_ids, which makes a pair batch.
#pragma once
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "data/batching.h"
#include "data/lm_data.h"

namespace mega {

// ---- What a model reads ----

enum class InputKind {
  Tokens,     // ids in [0, vocab_size), padded with pad_id (ListOps, Text)
  Pixels,     // intensities 0-255, one per step, padded with 0 (Image, Pathfinder); the model embeds each
              // as the real number (intensity / 255 - pixel_mean) / pixel_std, as torchvision's Normalize
  TokenPair,  // two token sequences per example (Retrieval): ids and pair_ids, each padded with pad_id
};
const char* input_kind_name(InputKind kind);  // "tokens", "pixels", "token_pair"

struct TaskInput {
  InputKind kind = InputKind::Tokens;
  int64_t vocab_size = 0;  // Tokens, TokenPair: ids lie in [0, vocab_size); Pixels: 256
  int64_t pad_id = 0;      // the id padding takes (Pixels: 0)
  double pixel_mean = 0;   // Pixels: normalisation on the [0, 1] scale
  double pixel_std = 1;
};

// What is learnt: a label per sequence, or the next token of a stream (data/lm_data.h). A language
// model's splits are one example each, holding the split's whole token stream, and come with the
// vocabulary (TaskSplits::vocabulary); the trainer cuts train into segments and scores valid/test in blocks.
enum class TaskKind { Classification, LanguageModel };
const char* task_kind_name(TaskKind kind);  // "classification", "language_model"

// How predictions are scored: accuracy for every LRA task; a language model's loss per token (nats) and
// its perplexity (word level) or bits per byte (byte level).
enum class Metric { Accuracy, Perplexity, BitsPerByte };
const char* metric_name(Metric metric);  // "accuracy", "perplexity", "bits_per_byte"

struct TaskDescription {
  TaskKind kind = TaskKind::Classification;
  TaskInput input;       // a word-level language model's vocab_size is 0 here: it comes from the train split
  int64_t num_labels = 0;  // classification only
  Metric metric = Metric::Accuracy;
  std::vector<std::string> files;  // what load reads in data.dir, for messages ("basic_train.tsv", ...)
  // Reported beside the metric on every evaluated split (empty for the LRA rows):
  std::vector<std::string> label_names;  // id order; saved as config.json id2label (empty: LABEL_<i>)
  std::vector<int64_t> f1_labels;        // labels whose F1 (the positive class of precision and recall)
  std::vector<std::string> groups;       // subsets scored on their own: SequenceExample::group indexes it
};

// ---- A task's own options (data.<task>.<name>) ----

using TaskValue = std::variant<bool, int64_t, double, std::string>;

struct TaskKey {
  std::string name;  // relative: "max_depth" is the recipe key data.<task>.max_depth
  TaskValue default_value;
  double min = -std::numeric_limits<double>::infinity();  // integers and numbers, inclusive
  double max = std::numeric_limits<double>::infinity();
  std::vector<std::string> choices;  // strings: the allowed values (empty: any)
  std::string help;
};

// The values of a row's keys, resolved by the recipe (every key present, typed as its default).
class TaskSettings {
 public:
  TaskSettings() = default;
  explicit TaskSettings(std::map<std::string, TaskValue> values) : values_(std::move(values)) {}
  bool get_bool(const std::string& name) const;
  int64_t get_int(const std::string& name) const;
  double get_float(const std::string& name) const;  // accepts an integer
  const std::string& get_string(const std::string& name) const;

 private:
  const TaskValue& value(const std::string& name) const;
  std::map<std::string, TaskValue> values_;
};

// The generic data keys (data.dir, data.max_length, data.generate) and the row's own.
struct DataSource {
  std::string dir;         // where the splits live, relative to the working directory
  int64_t max_length = 0;  // each sequence (each of a pair) is cut to this many steps
  bool generate = false;   // a row that can generate or fetch its data may do so when dir lacks it
  TaskSettings settings;   // data.<task>.*
  // A language model evaluated from a checkpoint: the vocabulary saved with it, used instead of one
  // built from train. Null: build it.
  std::shared_ptr<const Vocabulary> vocabulary{};
  // Where a row keeps what it learns from the training data (a tokenizer's vocabulary), so a resumed
  // run, `mega eval` and `mega predict` read it back: the trainer gives output_dir/tokenizer and copies
  // it into every checkpoint; eval and predict give the checkpoint's copy, read-only (it must be there).
  // Empty: nothing is kept.
  std::string artifacts_dir{};
  bool artifacts_read_only{false};
};

struct TaskSplits {
  std::vector<SequenceExample> train, val, test;
  std::shared_ptr<const Vocabulary> vocabulary{};  // language models: the ids' vocabulary
};

// A problem with one of a row's keys: `key` is relative ("min_length"); the recipe maps it to the origin
// of data.<task>.<key>.
struct TaskKeyProblem {
  std::string key;
  std::string message;
};

struct Task {
  std::string name;  // the value of data.task
  std::string help;
  std::vector<TaskKey> keys;
  std::vector<TaskKeyProblem> (*check)(const TaskSettings& settings) = nullptr;
  TaskDescription (*describe)(const TaskSettings& settings) = nullptr;
  TaskSplits (*load)(const DataSource& source) = nullptr;
  // A row whose description needs its files (text_classification without a labels option reads train's
  // label set) describes from the source instead of describe; describe_task prefers it when set.
  TaskDescription (*describe_source)(const DataSource& source) = nullptr;
  // Raw texts to token ids the way load tokenizes them (the tokenizer in source.artifacts_dir), for
  // `mega predict`; null for rows whose input is not text.
  std::vector<std::vector<int64_t>> (*encode_texts)(const DataSource& source, const std::vector<std::string>& texts) = nullptr;
};
// The row's description of the source: describe_source when the row has one, else describe(settings).
TaskDescription describe_row(const Task& task, const DataSource& source);

// ---- The table ----

const std::vector<Task>& task_table();
// Adds a row at run time (a test's synthetic task; a program embedding mega with its own data). Call it
// before loading a recipe: the recipe schema reads the table.
void register_task(Task task);
std::vector<std::string> task_names();         // every row's name, table order
const Task* find_task(const std::string& name);  // nullptr when no row has the name
const Task& task_named(const std::string& name);  // an error listing the known names when none has it

inline bool is_language_model(const TaskDescription& d) { return d.kind == TaskKind::LanguageModel; }

// Checks a row's description is coherent: labels >= 1 (classification); tokens and pairs have a vocabulary holding pad_id;
// pixels have vocab_size 256, pad_id 0 and pixel_std > 0. Errors name the task.
void check_description(const std::string& task, const TaskDescription& description);

// Checks loaded examples against the description: a pair task's examples have both sequences, a
// single-sequence task's have none, token ids lie in the vocabulary, pixels in 0-255, labels in
// [0, num_labels). Errors name the split and the example.
void check_examples(const TaskDescription& description, const std::vector<SequenceExample>& examples,
                    const std::string& split);

}  // namespace mega
