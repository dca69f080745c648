// ListOps (Nangia & Bowman 2018) as the Long Range Arena defines it (google-research/long-range-arena,
// lra_benchmarks/data/listops.py): a generator of our own with the same tree distribution and the same
// TSV format, and a loader for that format so LRA's own release loads unchanged.
//
// The task: nested operators over digits 0-9, MAX, MIN, MED (median, int(np.median): the mean of the two
// middle values rounded down for an even count) and SM (sum mod 10); the label is the value, 0-9.
// TSV: a header "Source\tTarget", then one row per example. The source is written the way LRA's
// to_string writes its binary tuples, each argument closing one '(':
//   [MAX 2 9 [MIN 4 7 ] 0 ]   is written   ( ( ( ( ( [MAX 2 ) 9 ) ( ( ( [MIN 4 ) 7 ) ] ) ) 0 ) ] )
// Tokenisation (LRA's pipeline as S4 and Mega reproduce it): '(' and ')' are deleted, the rest split on
// whitespace, so the tokens are "[MAX", "2", ..., "]".
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "data/batching.h"
#include "data/task.h"
#include "data/generated_dataset.h"

namespace mega {

// ---- Generation ----

struct ListOpsGeneratorOptions {
  int64_t max_depth = 10;  // LRA: 10
  int64_t max_args = 10;   // LRA: 10; an operator takes 2..max_args arguments
  // Accepted lengths in tokens (operators, digits and ']'; parentheses not counted), inclusive.
  // LRA keeps 500 < length < 2000.
  int64_t min_length = 500;
  int64_t max_length = 2000;
};

struct ListOpsRow {
  std::string source;  // LRA's parenthesised text
  int64_t target = 0;  // 0-9
};

// `count` distinct expressions (no source repeats), deterministic in `seed` (Philox draws, so the same
// on every machine). Fails if `count` distinct expressions cannot be found in a bounded number of
// tries (a length range that is too narrow or too short).
std::vector<ListOpsRow> generate_listops(const ListOpsGeneratorOptions& options, int64_t count, uint64_t seed);

// Writes DIR/basic_train.tsv, basic_val.tsv and basic_test.tsv (DIR is created), with sources distinct
// across the three files, as LRA's generator does. Rows end in "\r\n" like Python's csv writer.
void write_listops_dataset(const std::string& dir, const ListOpsGeneratorOptions& options, int64_t train,
                           int64_t val, int64_t test, uint64_t seed);
void write_listops_tsv(const std::string& path, const std::vector<ListOpsRow>& rows);
// write_listops_dataset as a generated dataset (data/generated_dataset.h), its marker recording these
// settings under the recipe's data.generator names.
GeneratedDataset listops_generated_dataset(const ListOpsGeneratorOptions& options, int64_t train, int64_t val,
                                           int64_t test, uint64_t seed);

// ---- Vocabulary and loading ----

// Fixed ids: 0 pad, 1 unk, 2-11 the digits 0-9, 12 [MAX, 13 [MIN, 14 [MED, 15 [SM, 16 ].
constexpr int64_t kListOpsPad = 0;
constexpr int64_t kListOpsUnk = 1;
constexpr int64_t kListOpsVocabSize = 17;
constexpr int64_t kListOpsClasses = 10;
int64_t listops_token_id(std::string_view token);  // kListOpsUnk for anything else
std::string_view listops_token(int64_t id);          // "<pad>", "<unk>", "0", ..., "]"

// LRA's tokenisation: '(' and ')' deleted, split on whitespace.
std::vector<std::string_view> tokenize_listops(std::string_view source);

struct ListOpsFile {
  std::string path;
  std::vector<SequenceExample> examples;  // file order
  int64_t truncated = 0;       // rows cut to max_length
  int64_t unknown_tokens = 0;  // tokens mapped to <unk>
};

// Reads an LRA ListOps TSV (LF or CRLF line ends). Rows longer than max_length tokens are cut to it, as
// LRA's pipeline does (max_length <= 0: no limit). A missing header, a row without exactly two
// tab-separated fields, an empty source or a target outside 0-9 is an error naming the file and line.
ListOpsFile load_listops_tsv(const std::string& path, int64_t max_length);

struct ListOpsSplits {
  ListOpsFile train, val, test;
};

// Loads DIR/basic_{train,val,test}.tsv (the LRA release's names), each cut to max_length tokens.
ListOpsSplits load_listops_splits(const std::string& dir, int64_t max_length);
// True when DIR holds the three files.
bool listops_dataset_exists(const std::string& dir);

// ---- The task row (data/task.h) ----

// data.task: listops. Its options data.listops.{seed, train_examples, val_examples, test_examples,
// min_length, max_length, max_depth, max_args} drive the generator when data.generate is set and data.dir
// lacks the three files; the loaded splits are cut to data.max_length.
Task listops_task();
// The generator run with the row's options, as a generated dataset (what load writes when data.generate
// is set and data.dir lacks the files).
GeneratedDataset listops_generated_dataset(const TaskSettings& settings);

}  // namespace mega
