// Classification of a user's own labelled text: `data.task: text_classification`, and the pieces the
// SpamAssassin row (data/spam.h) shares with it: the tokenizer keys and the step from labelled texts to
// token ids with a tokenizer that is learnt once and then travels with the run.
//
// Files in data.dir, by data.text_classification.format:
//   csv, tsv  train.csv, val.csv, test.csv (.tsv): a header line naming the columns, then one record per
//             example; text_column and label_column name the two that are read. Quoting as RFC 4180: a
//             field in double quotes may hold the delimiter, line ends and doubled quotes (""); LF or
//             CRLF line ends; blank lines are skipped.
//   jsonl     train.jsonl, ...: one JSON object per line with the text and label keys (the same two
//             options); blank lines are skipped. JSON is UTF-8 by definition: other bytes are an error.
//   folder    train/<label>/*.txt, val/<label>/*.txt, test/<label>/*.txt: one example per file, the
//             folder's name its label; files in byte order of their path.
// train is required. A missing val or test is carved from train by a seeded permutation (val_fraction,
// test_fraction, split_seed), both keeping file order.
// Labels are strings or integers (JSON numbers that are integers). Their ids: the order of the labels
// option (a comma-separated list) when given, else the train split's labels sorted, numerically when
// every one is an integer (so "2" < "10") and by bytes otherwise. They are saved with the model as
// config.json id2label/label2id.
// Errors name FILE:LINE (FILE for the folder form): a record without the label (or an empty one), a
// label of val or test that train lacks (or that the labels option lacks), an empty text (an empty labelled
// document is almost always a wrong column or a broken quote, so it is refused rather than skipped), a
// record with another field count than the header, an unclosed quote. Bytes that are not UTF-8 are kept
// in csv, tsv and folder texts (the tokenizer decides what they become: data/tokenizer.h).
#pragma once
#include <string>
#include <vector>

#include "data/task.h"
#include "data/tokenizer.h"

namespace mega {

// ---- Reading labelled text ----

struct LabelledText {
  std::string text;
  std::string label;
  int64_t line = 0;  // where the record starts (0 in the folder form)
  std::string file;  // the file it was read from
  int64_t group = -1;  // a reported subset (TaskDescription::groups), -1 none
};

// RFC 4180 records of a delimited file, header included; each record with the line it starts on.
struct DelimitedRecord {
  std::vector<std::string> fields;
  int64_t line = 0;
};
std::vector<DelimitedRecord> read_delimited_records(const std::string& path, char delimiter);

std::vector<LabelledText> read_delimited(const std::string& path, char delimiter, const std::string& text_column,
                                         const std::string& label_column);
std::vector<LabelledText> read_jsonl(const std::string& path, const std::string& text_key, const std::string& label_key);
std::vector<LabelledText> read_label_folders(const std::string& split_dir);

// Label names in id order: `given` when not empty, else the sorted set of `train`'s labels (see above).
std::vector<std::string> label_order(const std::vector<LabelledText>& train, const std::vector<std::string>& given);

// ---- Shared by the text rows ----

// tokenizer, vocab_size, min_frequency, lowercase, subword_model, model_file (data/tokenizer.h).
std::vector<TaskKey> tokenizer_keys();
TokenizerOptions tokenizer_options(const TaskSettings& settings);

struct LabelledSplits {
  std::vector<LabelledText> train, val, test;
};

// Moves round(fraction * n) of `from`, chosen by a Philox permutation of `seed` (stream `stream`), into the
// result; both keep their order.
std::vector<LabelledText> carve_labelled(std::vector<LabelledText>& from, double fraction, uint64_t seed,
                                         uint64_t stream);

// The splits as token ids, labels mapped by `labels` (an unknown one is an error naming file and line),
// each sequence cut to source.max_length. The tokenizer: read from source.artifacts_dir when it holds one
// (a resumed run; eval and predict, which require it), else learnt on train's texts and saved there
// (written to a temporary folder and renamed).
TaskSplits tokenize_splits(const DataSource& source, const LabelledSplits& splits, const std::vector<std::string>& labels);
// Texts to ids with the tokenizer in source.artifacts_dir (which must hold one), cut to max_length.
std::vector<std::vector<int64_t>> encode_with_saved_tokenizer(const DataSource& source,
                                                              const std::vector<std::string>& texts);

// data.task: text_classification.
Task text_classification_task();

}  // namespace mega
