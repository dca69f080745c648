// The task table and the checks shared by every row (data/task.h).
#include "data/task.h"

#include <algorithm>

#include "core/error.h"
#include "data/image_data.h"
#include "data/listops.h"
#include "data/lm_data.h"
#include "data/lra_text_tasks.h"
#include "data/pathfinder.h"
#include "data/spam.h"
#include "data/text_classification.h"

namespace mega {

namespace {
// The one table: a task is one line here (its row is built in its own data file).
std::vector<Task> build_table() {
  return {listops_task(), text_task(), retrieval_task(), image_task(), fashion_mnist_task(), pathfinder_task(),
          wikitext_task(), enwik8_task(), text_corpus_task(), sotu_lm_task(),
          text_classification_task(), spam_task()};
}

std::vector<Task>& table() {
  static std::vector<Task> rows = build_table();
  return rows;
}
}  // namespace

const char* input_kind_name(InputKind kind) {
  switch (kind) {
    case InputKind::Tokens: return "tokens";
    case InputKind::Pixels: return "pixels";
    case InputKind::TokenPair: return "token_pair";
  }
  return "?";
}

const char* task_kind_name(TaskKind kind) {
  switch (kind) {
    case TaskKind::Classification: return "classification";
    case TaskKind::LanguageModel: return "language_model";
  }
  return "?";
}

const char* metric_name(Metric metric) {
  switch (metric) {
    case Metric::Accuracy: return "accuracy";
    case Metric::Perplexity: return "perplexity";
    case Metric::BitsPerByte: return "bits_per_byte";
  }
  return "?";
}

const TaskValue& TaskSettings::value(const std::string& name) const {
  auto found = values_.find(name);
  MEGA_CHECK(found != values_.end(), "[task] no option '", name, "'");
  return found->second;
}
bool TaskSettings::get_bool(const std::string& name) const {
  const bool* v = std::get_if<bool>(&value(name));
  MEGA_CHECK(v, "[task] option '", name, "' is not true or false");
  return *v;
}
int64_t TaskSettings::get_int(const std::string& name) const {
  const int64_t* v = std::get_if<int64_t>(&value(name));
  MEGA_CHECK(v, "[task] option '", name, "' is not an integer");
  return *v;
}
double TaskSettings::get_float(const std::string& name) const {
  if (const int64_t* i = std::get_if<int64_t>(&value(name))) return static_cast<double>(*i);
  const double* v = std::get_if<double>(&value(name));
  MEGA_CHECK(v, "[task] option '", name, "' is not a number");
  return *v;
}
const std::string& TaskSettings::get_string(const std::string& name) const {
  const std::string* v = std::get_if<std::string>(&value(name));
  MEGA_CHECK(v, "[task] option '", name, "' is not a string");
  return *v;
}

const std::vector<Task>& task_table() { return table(); }

TaskDescription describe_row(const Task& task, const DataSource& source) {
  return task.describe_source ? task.describe_source(source) : task.describe(source.settings);
}

void register_task(Task task) {
  MEGA_CHECK(!find_task(task.name), "[task] a task named '", task.name, "' is already in the table");
  MEGA_CHECK((task.describe || task.describe_source) && task.load, "[task] task '", task.name, "' lacks describe or load");
  table().push_back(std::move(task));
}

std::vector<std::string> task_names() {
  std::vector<std::string> names;
  for (const Task& task : task_table()) names.push_back(task.name);
  return names;
}

const Task* find_task(const std::string& name) {
  for (const Task& task : task_table())
    if (task.name == name) return &task;
  return nullptr;
}

const Task& task_named(const std::string& name) {
  if (const Task* task = find_task(name)) return *task;
  std::string known;
  for (const std::string& n : task_names()) known += (known.empty() ? "" : ", ") + n;
  fail("[task] no task '", name, "' (known: ", known, ")");
}

void check_description(const std::string& task, const TaskDescription& d) {
  const TaskInput& in = d.input;
  if (is_language_model(d)) {
    MEGA_CHECK(in.kind == InputKind::Tokens, "[task] ", task, ": a language model reads tokens");
    MEGA_CHECK(in.vocab_size == 0 || (in.pad_id >= 0 && in.pad_id < in.vocab_size), "[task] ", task, ": pad_id ",
               in.pad_id, " outside the vocabulary of ", in.vocab_size);
    return;
  }
  MEGA_CHECK(d.num_labels >= 1, "[task] ", task, ": num_labels must be >= 1, got ", d.num_labels);
  if (in.kind == InputKind::Pixels) {
    MEGA_CHECK(in.vocab_size == 256 && in.pad_id == 0, "[task] ", task,
               ": pixel input has vocab_size 256 and pad_id 0, got ", in.vocab_size, " and ", in.pad_id);
    MEGA_CHECK(in.pixel_std > 0, "[task] ", task, ": pixel_std must be > 0, got ", in.pixel_std);
  } else {
    MEGA_CHECK(in.vocab_size >= 1 && in.pad_id >= 0 && in.pad_id < in.vocab_size, "[task] ", task,
               ": pad_id ", in.pad_id, " outside the vocabulary of ", in.vocab_size);
  }
  MEGA_CHECK(d.label_names.empty() || static_cast<int64_t>(d.label_names.size()) == d.num_labels, "[task] ", task, ": ",
             d.label_names.size(), " label names for ", d.num_labels, " labels");
  for (int64_t label : d.f1_labels)
    MEGA_CHECK(label >= 0 && label < d.num_labels, "[task] ", task, ": F1 of label ", label, " outside [0, ",
               d.num_labels, ")");
}

void check_examples(const TaskDescription& description, const std::vector<SequenceExample>& examples,
                    const std::string& split) {
  const TaskInput& input = description.input;
  if (is_language_model(description)) {
    MEGA_CHECK(examples.size() == 1, "[task] a language model's ", split, " split is one token stream, got ",
               examples.size(), " examples");
    MEGA_CHECK(!examples[0].ids.empty(), "[task] the ", split, " split holds no tokens");
    for (int64_t id : examples[0].ids)
      MEGA_CHECK(id >= 0 && id < input.vocab_size, "[task] ", split, " token id ", id, " outside [0, ",
                 input.vocab_size, ")");
    return;
  }
  const bool pair = input.kind == InputKind::TokenPair;
  const int64_t limit = input.kind == InputKind::Pixels ? 256 : input.vocab_size;
  auto check_ids = [&](const std::vector<int64_t>& ids, size_t index, const char* which) {
    MEGA_CHECK(!ids.empty(), "[task] ", split, " example ", index, ": empty ", which);
    for (int64_t id : ids)
      MEGA_CHECK(id >= 0 && id < limit, "[task] ", split, " example ", index, ": ", which, " value ", id,
                 " outside [0, ", limit, ")");
  };
  for (size_t i = 0; i < examples.size(); ++i) {
    const SequenceExample& e = examples[i];
    check_ids(e.ids, i, "sequence");
    if (pair) check_ids(e.pair_ids, i, "second sequence");
    else
      MEGA_CHECK(e.pair_ids.empty(), "[task] ", split, " example ", i,
                 " has a second sequence, but the task's input is ", input_kind_name(input.kind));
    MEGA_CHECK(e.group >= -1 && e.group < static_cast<int64_t>(description.groups.size()), "[task] ", split,
               " example ", i, ": group ", e.group, " outside the task's ", description.groups.size(), " groups");
    MEGA_CHECK(e.label >= 0 && e.label < description.num_labels, "[task] ", split, " example ", i, ": label ", e.label,
               " outside [0, ", description.num_labels, ")");
  }
}

}  // namespace mega
